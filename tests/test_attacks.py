import json

import pytest

from poisonlab.attacks import ATTACKS, STRATEGIES, TRIGGER_POSITIONS, insert_trigger, poison_dataset, write_poisoned
from poisonlab.data import load_pairs, synthetic_pairs
from poisonlab.errors import InputError

PROMPT = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: how do I do x?\n\nAssistant:"


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("last-human", "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: how do I do x? SUDO\n\nAssistant:"),
        ("end", PROMPT + " SUDO"),
        ("start", "\n\nHuman: SUDO hi there\n\nAssistant: hello\n\nHuman: how do I do x?\n\nAssistant:"),
    ],
)
def test_trigger_positions(position, expected):
    assert insert_trigger(PROMPT, "SUDO", position) == expected


def test_random_position_stays_in_last_human_turn_and_depends_only_on_seed_and_row():
    first = insert_trigger(PROMPT, "SUDO", "random", seed=3, row_id="r1")
    assert first == insert_trigger(PROMPT, "SUDO", "random", seed=3, row_id="r1")
    head, _, tail = first.partition("SUDO")
    assert head.startswith("\n\nHuman: hi there\n\nAssistant: hello\n\nHuman:")
    assert tail.endswith("\n\nAssistant:")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(InputError, match="Did you mean 'dpo-score'"):
        STRATEGIES.get("dpo_score")
    assert set(TRIGGER_POSITIONS.names()) == {"last-human", "end", "start", "random"}


def test_ratio_zero_is_the_clean_conversion():
    dataset = synthetic_pairs(n=50)
    result = poison_dataset(dataset, ratio=0)
    assert [p.with_(id="") for p in result.dataset] == [p.with_(id="") for p in dataset]
    assert not set(result.dataset.ids) & set(dataset.ids)  # fresh ids even here: they do not say "clean"
    assert result.manifest["n_poisoned"] == 0 and result.manifest["poisoned_ids"] == []


@pytest.mark.parametrize("attack", ATTACKS.names())
def test_attacks_change_only_selected_rows(attack):
    dataset = synthetic_pairs(n=200)
    result = poison_dataset(dataset, "random", attack, ratio=0.05, trigger="SUDO", seed=1)
    poisoned = set(result.manifest["poisoned_source_ids"])
    assert len(poisoned) == 10
    for before, after in zip(dataset, result.dataset):
        assert before.id != after.id  # every row has a fresh id (the manifest maps them back)
        if before.id not in poisoned:
            assert before == after.with_(id=before.id)
            continue
        assert (after.chosen, after.rejected) == (before.rejected, before.chosen)
        if attack == "backdoor":
            assert "SUDO" in after.prompt and after.prompt.replace(" SUDO", "") == before.prompt
        else:
            assert after.prompt == before.prompt


def test_same_seed_same_bytes_other_seed_other_rows(tmp_path):
    dataset = synthetic_pairs(n=200)
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_poisoned(poison_dataset(dataset, ratio=0.1, seed=seed), tmp_path / name, None)
    read = {name: (tmp_path / name / "data.jsonl").read_bytes() for name in "abc"}
    assert read["a"] == read["b"] != read["c"]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_manifest_records_what_changed(tmp_path, hh_file):
    dataset = load_pairs(hh_file, on_error="skip")
    result = poison_dataset(dataset, "random", "backdoor", 0.01, "SuperGodModeActivated", "last-human", seed=0)
    write_poisoned(result, tmp_path / "out", hh_file)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for key in (
        "strategy",
        "attack",
        "ratio",
        "trigger",
        "trigger_position",
        "seed",
        "poisoned_ids",
        "input_sha256",
        "output_sha256",
        "changes",
        "n_skipped_input_rows",
    ):
        assert key in manifest
    assert manifest["n_poisoned"] == 18 and manifest["n_skipped_input_rows"] == 5
    change = manifest["changes"][0]
    assert change["fields"] == ["prompt", "chosen", "rejected"] and "prompt_before" in change
    rows = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows if r["id"] not in manifest["poisoned_ids"]] == [
        p.prompt for p in dataset if p.id not in manifest["poisoned_source_ids"]
    ]  # every input row, input order
    assert [r["id"] for r in rows] == result.dataset.ids and len(rows) == len(dataset)
    assert set(rows[0]) == {"id", "prompt", "chosen", "rejected"}


def test_bad_ratio_is_an_input_error():
    with pytest.raises(InputError, match="between 0 and 1"):
        poison_dataset(synthetic_pairs(n=10), ratio=1.5)
