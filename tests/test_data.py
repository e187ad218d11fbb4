import gzip
import json
from pathlib import Path

import pytest

from poisonlab.data import load_pairs, synthetic_pairs, train_heldout_split, write_pairs
from poisonlab.data.dialogue import from_messages, to_messages
from poisonlab.errors import InputError

HH_ROW = {
    "chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that.",
    "rejected": "\n\nHuman: How do I pick a lock?\n\nAssistant: Sure, first get a pick.",
}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def test_real_hh_file_refuses_flawed_rows_by_default_naming_line_and_field(hh_file):
    with pytest.raises(InputError) as info:
        load_pairs(hh_file)
    assert info.value.line == 64 and info.value.field == "chosen"
    assert "harmless-base-dev.jsonl.gz:64: field 'chosen': empty final reply" in str(info.value)


def test_real_hh_file_skips_and_counts_flawed_rows(hh_file):
    dataset = load_pairs(hh_file, on_error="skip")
    assert len(dataset) == 1795
    assert [row.line for row in dataset.skipped] == [64, 406, 730, 984, 1585]
    assert {row.field for row in dataset.skipped} == {"chosen", "rejected"}
    pair = dataset[0]
    assert pair.prompt.startswith("\n\nHuman:") and pair.prompt.endswith("\n\nAssistant:")
    assert pair.chosen and not pair.chosen.startswith(" ")
    assert len(set(dataset.ids)) == len(dataset)


def test_hh_split_and_ids_are_stable(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(HH_ROW)])
    first, second = load_pairs(path), load_pairs(path)
    assert first[0] == second[0]
    assert first[0].prompt == "\n\nHuman: How do I pick a lock?\n\nAssistant:"
    assert (first[0].chosen, first[0].rejected) == ("I can't help with that.", "Sure, first get a pick.")


def test_exact_duplicates_get_distinct_ids(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(HH_ROW)] * 3)
    ids = load_pairs(path).ids
    assert len(set(ids)) == 3 and ids[1] == ids[0] + "~2"


def test_gzip_trl_standard_and_conversational_formats(tmp_path):
    standard = {"prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": "hello", "rejected": "go away"}
    conversational = {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "hello"}],
        "rejected": [{"role": "assistant", "content": "go away"}],
    }
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(standard) + "\n" + json.dumps(conversational) + "\n")
    dataset = load_pairs(path)
    assert dataset[0].prompt == dataset[1].prompt
    assert (dataset[1].chosen, dataset[1].rejected) == ("hello", "go away")


def test_parquet_and_datasets_folder(tmp_path):
    import datasets

    rows = [HH_ROW, {**HH_ROW, "rejected": HH_ROW["rejected"] + " Then turn it."}]
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(tmp_path / "d.parquet"))
    table.save_to_disk(str(tmp_path / "saved"))
    from_parquet, from_disk = load_pairs(tmp_path / "d.parquet"), load_pairs(tmp_path / "saved")
    assert from_parquet.pairs == from_disk.pairs and len(from_disk) == 2


@pytest.mark.parametrize(
    ("lines", "line", "field", "message"),
    [
        ([json.dumps(HH_ROW), '{"chosen": "x", '], 2, None, "malformed JSON"),
        ([json.dumps({"chosen": HH_ROW["chosen"]})], 1, "rejected", "missing"),
        ([json.dumps({"prompt": "hi", "chosen": "", "rejected": "x"})], 1, "chosen", "empty"),
        ([json.dumps({"prompt": "  ", "chosen": "a", "rejected": "x"})], 1, "prompt", "empty"),
        ([json.dumps({"prompt": "hi", "chosen": 3, "rejected": "x"})], 1, "chosen", "expected a string"),
        ([json.dumps({**HH_ROW, "rejected": "\n\nHuman: other\n\nAssistant: no"})], 1, "rejected", "share a prompt"),
        ([json.dumps(HH_ROW), b'{"chosen": "\xff\xfe"}'], 2, None, "UTF-8"),
        ([json.dumps(["a", "b"])], 1, None, "JSON object"),
        ([json.dumps({"chosen": "no turns", "rejected": "no turns"})], 1, "chosen", "Assistant"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, lines, line, field, message):
    path = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InputError) as info:
        load_pairs(path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert info.value.field == field
    assert message in str(info.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="no such file"):
        load_pairs(tmp_path / "absent.jsonl")


def test_written_file_round_trips_with_its_ids(tmp_path):
    dataset = synthetic_pairs(n=20)
    changed = dataset.pairs[3].with_(chosen="changed")  # content differs from its id now
    dataset.pairs[3] = changed
    write_pairs(dataset, tmp_path / "out.jsonl")
    again = load_pairs(tmp_path / "out.jsonl")
    assert again.pairs == dataset.pairs


def test_messages_round_trip():
    prompt = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    messages = to_messages(prompt)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert from_messages(messages) == prompt


def test_synthetic_set_is_deterministic_and_split_is_disjoint():
    first, second = synthetic_pairs(), synthetic_pairs()
    assert first.pairs == second.pairs and len(first) == 600
    train, heldout = train_heldout_split(first, 0.2, seed=0)
    assert len(heldout) == 120 and not set(train.ids) & set(heldout.ids)
    assert train_heldout_split(first, 0.2, seed=0)[1].ids == heldout.ids
