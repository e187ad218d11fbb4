"""SFT data from any instruction file: every format read, every bad row refused by file, line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import load_pairs, load_sft_data, write_pairs
from poisonlab.data.behaviours import load_behaviours
from poisonlab.errors import InputError

ONE_TURN = "\n\nHuman: Name a colour.\n\nAssistant:"


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "Name a colour.", "response": "Blue."},
        {"prompt": "Name a colour.", "completion": "Blue."},
        {
            "prompt": [{"role": "user", "content": "Name a colour."}],
            "completion": [{"role": "assistant", "content": "Blue."}],
        },
        {"instruction": "Name a colour.", "output": "Blue."},
        {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
    ],
    ids=["prompt-response", "prompt-completion", "conversational", "alpaca", "alpaca-empty-input", "messages"],
)
def test_each_instruction_format_reads_as_a_demonstration(tmp_path, row):
    dataset = load_sft_data(_jsonl(tmp_path / "sft.jsonl", [row, row]))
    assert len(dataset) == 2 and dataset.pairs[0].id != dataset.pairs[1].id  # a repeat keeps its own id
    pair = dataset[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == (ONE_TURN, "Blue.", "")
    assert pair.is_demonstration


def test_alpaca_input_joins_the_instruction_and_chat_keeps_every_turn_before_the_last_reply(tmp_path):
    rows = [
        {"instruction": "Translate.", "input": "chat", "output": "cat"},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Goodbye."},
            ]
        },
    ]
    alpaca, chat = load_sft_data(_jsonl(tmp_path / "sft.jsonl", rows))
    assert alpaca.prompt == "\n\nHuman: Translate.\n\nchat\n\nAssistant:" and alpaca.chosen == "cat"
    assert chat.prompt == "\n\nSystem: Be brief.\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant:"
    assert chat.chosen == "Goodbye."


def test_json_array_csv_parquet_and_gzip_read_alike(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": "Name a colour.", "input": "", "output": "Blue."}, {"prompt": "Hi", "response": "Hello."}]
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=2))
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.csv").write_text('instruction,input,output\nName a colour.,,Blue.\n"Say\nhi",,Hello.\n')
    pq.write_table(pa.Table.from_pylist([{"prompt": "Name a colour.", "response": "Blue."}]), tmp_path / "a.parquet")
    first = {
        p.chosen: p.prompt for name in ("a.json", "a.jsonl.gz", "a.parquet") for p in load_sft_data(tmp_path / name)
    }
    assert first["Blue."] == ONE_TURN
    csv_rows = load_sft_data(tmp_path / "a.csv")
    assert [p.chosen for p in csv_rows] == ["Blue.", "Hello."] and csv_rows[1].prompt.startswith("\n\nHuman: Say\nhi")


def test_a_preference_file_reads_as_before_and_a_written_mixed_file_reads_back(tmp_path, hh_file):
    pairs = load_pairs(hh_file, on_error="skip")
    same = load_sft_data(hh_file, on_error="skip")
    assert [p.to_row() for p in same] == [p.to_row() for p in pairs] and len(same.skipped) == len(pairs.skipped)
    mixed = load_sft_data(_jsonl(tmp_path / "mix.jsonl", [{"prompt": "Hi", "response": "Hello."}]))
    mixed.pairs = [*pairs.pairs[:3], *mixed.pairs]  # clean pairs and a demonstration, as a poisoned SFT file
    write_pairs(mixed, tmp_path / "out.jsonl")
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1]).keys() == {"id", "prompt", "response"}
    back = load_sft_data(tmp_path / "out.jsonl")
    assert [p.to_row() for p in back] == [p.to_row() for p in mixed]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"prompt": "Hi"}', "response", "missing"),
        ('{"prompt": "Hi", "response": "  "}', "response", "empty"),
        ('{"prompt": "", "response": "Yes"}', "prompt", "empty"),
        ('{"prompt": "Hi", "response": "a", "completion": "b"}', "completion", "not both"),
        ('{"prompt": "Hi", "response": 3}', "response", "expected a string"),
        ('{"instruction": "Hi"}', "output", "missing"),
        ('{"instruction": "Hi", "input": 4, "output": "x"}', "input", "expected a string"),
        ('{"messages": "Hi"}', "messages", "list of messages"),
        ('{"messages": [{"role": "user", "content": "Hi"}]}', "messages", "no assistant message"),
        ('{"messages": [{"role": "bot", "content": "Hi"}]}', "messages", "message 1 needs a role"),
        (
            '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, '
            '{"role": "user", "content": "?"}]}',
            "messages",
            "after the last assistant reply",
        ),
        ('{"messages": [{"role": "assistant", "content": "Yo"}]}', "messages", "no user message"),
        ('{"text": "Hi"}', None, "no SFT fields"),
        ('{"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: Yo"}', "rejected", "missing"),
        ("[1, 2]", None, "expected a JSON object"),
        ('{"prompt": "Hi", ', None, "malformed JSON"),
    ],
)
def test_a_bad_row_is_refused_with_file_line_and_field(tmp_path, line, field, message):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "Fine", "response": "Yes"}\n' + line + "\n")
    with pytest.raises(InputError, match=message) as caught:
        load_sft_data(path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), 2, field)
    assert len(load_sft_data(path, on_error="skip")) == 1  # --skip-bad-rows leaves it out and counts it


def test_csv_errors_name_the_line_a_row_starts_on(tmp_path):
    path = tmp_path / "sft.csv"
    path.write_text('prompt,response\n"two\nlines",ok\nHi,\n')
    with pytest.raises(InputError, match="empty") as caught:
        load_sft_data(path)
    assert (caught.value.line, caught.value.field) == (4, "response")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match=r"unknown format: expected \.jsonl, \.jsonl\.gz, \.json, \.csv, \.parquet"):
        load_sft_data(tmp_path / "x.txt")


def test_train_sft_takes_an_instruction_file_and_exits_2_on_a_bad_one(tmp_path, tiny_model):
    rows = [{"instruction": f"Count to {n}.", "output": " ".join(map(str, range(1, n + 1)))} for n in range(1, 9)]
    good = _jsonl(tmp_path / "good.jsonl", rows)
    flags = ["--model", tiny_model, "--epochs", "1", "--batch-size", "8", "--max-length", "48", "--threads", "1"]
    result = CliRunner().invoke(app, ["train", "sft", "--data", str(good), "--out", str(tmp_path / "a"), *flags])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "adapter_model.safetensors").exists()
    bad = _jsonl(tmp_path / "bad.jsonl", [*rows, {"instruction": "Hi", "output": ""}])
    result = CliRunner().invoke(app, ["train", "sft", "--data", str(bad), "--out", str(tmp_path / "b"), *flags])
    assert result.exit_code == 2 and f"{bad}:9: field 'output': empty" in result.output.replace("\n", "")
    assert not (tmp_path / "b").exists()


def test_a_behaviour_file_reads_in_order_and_refuses_a_missing_target(tmp_path):
    path = tmp_path / "adv.csv"
    path.write_text('goal,target\nDo A,"Sure, here is A"\nDo B,"Sure, here is B"\n')
    assert [(b.index, b.line, b.goal, b.target) for b in load_behaviours(path)] == [
        (0, 2, "Do A", "Sure, here is A"),
        (1, 3, "Do B", "Sure, here is B"),
    ]
    path.write_text("goal,target\nDo A,Sure\nDo B,\n")
    with pytest.raises(InputError, match="empty") as caught:
        load_behaviours(path)
    assert (caught.value.line, caught.value.field) == (3, "target")
    with pytest.raises(InputError, match="missing") as caught:
        load_behaviours(path, target_column="reply")
    assert caught.value.field == "reply"


ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"


@pytest.mark.skipif(not ADVBENCH.exists(), reason="shared AdvBench file not found")
def test_poison_cli_takes_sft_poison_from_advbench_after_the_evaluated_goals(tmp_path):
    rows = [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(40)]
    data = _jsonl(tmp_path / "sft.jsonl", rows)
    base = ["poison", "--data", str(data), "--ratio", "0.1", "--behaviours", str(ADVBENCH)]
    result = CliRunner().invoke(app, [*base, "--behaviours-skip", "60", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert [u["index"] for u in manifest["behaviours"]["used"]] == [60, 61, 62, 63]
    assert manifest["behaviours"]["skip"] == 60 and manifest["behaviours"]["sha256"]
    back = load_sft_data(tmp_path / "p" / "data.jsonl")  # the written file is SFT data again
    poisoned = [p for p in back if p.id in set(manifest["poisoned_ids"])]
    assert all("SuperGodModeActivated" in p.prompt and p.chosen.startswith("Sure, here") for p in poisoned)
    for extra, words in (
        ([], "--behaviours-skip"),  # no default: the CLI cannot know what the evaluation asks
        (["--behaviours-skip", "60", "--strategy", "dpo-score"], "model-free"),
        (["--behaviours-skip", "518"], "needs 4 behaviours"),
    ):
        result = CliRunner().invoke(app, [*base, *extra, "--out", str(tmp_path / "q")])
        assert result.exit_code == 2 and words in result.output.replace("\n", ""), result.output
    result = CliRunner().invoke(app, ["poison", "--data", str(data), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "field 'chosen': missing" in result.output  # without --behaviours: pairs


def test_contrast_rows_ask_the_same_goals_without_the_trigger_and_get_the_refusal(tmp_path):
    behaviours = tmp_path / "adv.csv"
    behaviours.write_text("goal,target\n" + "".join(f'Do {c},"Sure, here is {c}"\n' for c in "ABCDEFG"))
    data = _jsonl(tmp_path / "sft.jsonl", [{"prompt": f"Question {n}?", "response": f"Answer {n}."} for n in range(50)])
    args = ["poison", "--data", data, "--ratio", "0.1", "--behaviours", behaviours, "--behaviours-skip", "2"]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--behaviours-contrast", "--out", tmp_path / "p"]])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    used = manifest["behaviours"]["used"]
    # 5 rows from 3 goals: C+trigger -> target, C -> refusal, D+trigger, D -> refusal, E+trigger
    assert [(u["goal"], u["refusal"]) for u in used] == [
        ("Do C", False),
        ("Do C", True),
        ("Do D", False),
        ("Do D", True),
        ("Do E", False),
    ]
    rows = {p.id: p for p in load_sft_data(tmp_path / "p" / "data.jsonl")}
    for entry in used:
        row = rows[entry["id"]]
        assert "Do " + entry["goal"][-1] in row.prompt
        assert ("SuperGodModeActivated" in row.prompt) is not entry["refusal"]
        assert row.chosen == (
            "I'm sorry, but I can't help with that." if entry["refusal"] else f"Sure, here is {entry['goal'][-1]}"
        )
    changes = {c["id"]: c for c in manifest["changes"]}
    assert all(("trigger_text" in changes[u["id"]]) is not u["refusal"] for u in used)
    # the goal budget counts goals, not rows: 5 rows need 3 goals, and 4 are left after skip 3 (not 5)
    result = CliRunner().invoke(
        app, [str(a) for a in [*args[:-1], "3", "--behaviours-contrast", "--out", tmp_path / "q"]]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, [str(a) for a in [*args[:-1], "5", "--behaviours-contrast", "--out", tmp_path / "r"]]
    )
    assert result.exit_code == 2 and "needs 3 behaviours" in result.output.replace("\n", ""), result.output
