"""Read preference data from every format users have, with line-level errors.

Formats: HH-RLHF (``{"chosen": dialogue, "rejected": dialogue}``), TRL standard
(``prompt``/``chosen``/``rejected`` strings) and TRL conversational (lists of
messages), each as ``.jsonl``/``.json``/``.jsonl.gz`` or Parquet; a folder saved
with ``datasets.Dataset.save_to_disk``; ``hub:NAME[:DATA_DIR]`` for the Hub
(needs a network); ``synthetic`` for poisonlab's embedded default set.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from poisonlab.bounded import json_value
from poisonlab.data.dialogue import from_messages, split_final_reply
from poisonlab.data.pairs import META_COLUMNS, PreferenceDataset, SkippedRow, assign_ids
from poisonlab.errors import InputError
from poisonlab.wording import plural

OnError = Literal["raise", "skip"]
RowParser = Callable[[Any], tuple[str, str, str]]  # one raw record -> (prompt, chosen, rejected)


class RowError(Exception):
    """A problem with one row; the reader adds the file and line."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(reason)


def load_pairs(source: str | Path, on_error: OnError = "raise") -> PreferenceDataset:
    """Load preference pairs from ``source``.

    With ``on_error="raise"`` (the default) the first bad row stops loading with an
    :class:`InputError` naming file, line and field. With ``"skip"`` bad rows are left
    out and listed in ``dataset.skipped`` so the caller can report the count.
    """
    text = str(source)
    if text == "synthetic":
        from poisonlab.data.synthetic import synthetic_pairs

        return synthetic_pairs()
    if text.startswith("hub:"):
        return load_hub(text[4:], on_error)
    path = Path(source)
    records, unit = file_records(path, ("jsonl", "parquet", "folder"))
    return dataset_from_records(records, path, on_error, unit)


FORMATS = {  # what file_records reads, and the words that name it in an error
    "jsonl": ".jsonl, .jsonl.gz, .json",
    "csv": ".csv",
    "parquet": ".parquet",
    "folder": "a datasets folder",
}


def file_records(path: Path, formats: tuple[str, ...]) -> tuple[Iterator[tuple[int, Any]], str]:
    """(number, record) of every row of ``path``, and what the number counts (``line`` or ``row``).

    ``formats`` are the :data:`FORMATS` the caller reads; any other file is refused, naming them.
    """
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    name = path.name.lower()
    if path.is_dir() and "folder" in formats:
        return _records_from_disk(path), "row"
    if name.endswith(".parquet") and "parquet" in formats:
        return _records_from_parquet(path), "row"
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")) and "jsonl" in formats:
        return _records_from_jsonl(path), "line"
    if name.endswith((".csv", ".csv.gz")) and "csv" in formats:
        return _records_from_csv(path), "line"
    expected = [FORMATS[f] for f in formats]
    raise InputError(f"unknown format: expected {', '.join(expected[:-1])} or {expected[-1]}", path=path)


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read().removeprefix(codecs.BOM_UTF8)
    except (OSError, EOFError, zlib.error) as exc:  # a damaged gzip stream raises zlib.error
        raise InputError(f"cannot read: {exc}", path=path) from None


def _records_from_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    raw_lines = _read_bytes(path).split(b"\n")
    if raw_lines and raw_lines[0].lstrip().startswith(b"[") and path.name.lower().endswith((".json", ".json.gz")):
        yield from _records_from_json_array(path, b"\n".join(raw_lines))
        return
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, RowError(None, f"not valid UTF-8 (byte {exc.start})")
            continue
        try:
            yield number, json_value(line)
        except json.JSONDecodeError as exc:
            yield number, RowError(None, f"malformed JSON: {exc.msg} (column {exc.colno})")
        except ValueError as exc:  # nested too deeply (poisonlab.bounded)
            yield number, RowError(None, f"refused: {exc}")


def _records_from_json_array(path: Path, data: bytes) -> Iterator[tuple[int, Any]]:
    """Each element of a JSON array with the line it starts on, so errors point at the right line."""
    try:
        text = data.decode("utf-8")
        json_value(text)  # the whole array is valid JSON, so the walk below cannot fail
    except UnicodeDecodeError as exc:
        raise InputError(f"not a valid JSON array: not valid UTF-8 (byte {exc.start})", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not a valid JSON array: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno
        ) from None
    except ValueError as exc:  # nested too deeply (poisonlab.bounded)
        raise InputError(f"not a valid JSON array: refused: {exc}", path=path) from None
    decoder, position, line, counted = json.JSONDecoder(), text.index("[") + 1, 1, 0
    while True:
        while text[position] in " \t\r\n,":
            position += 1
        if text[position] == "]":
            return
        line, counted = line + text.count("\n", counted, position), position
        record, position = decoder.raw_decode(text, position)
        yield line, record


def _records_from_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """Each CSV row as a dict of its header's columns, numbered by the line it starts on."""
    import csv
    import io

    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=path, line=line) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    start = 2  # the header is line 1
    try:
        for row in reader:
            if None in row:  # more cells than the header names
                yield (
                    start,
                    RowError(None, f"{len(row[None])} more cells than the header's {len(reader.fieldnames or [])}"),
                )
            else:
                yield start, {key: value for key, value in row.items() if value is not None}
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", path=path, line=reader.line_num) from None


def _records_from_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(f"cannot read Parquet: {exc}", path=path) from None
    yield from enumerate(table.to_pylist(), start=1)


def _records_from_disk(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ...
        raise InputError(f"not a datasets folder saved with save_to_disk: {exc}", path=path) from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise InputError(f"DatasetDict without a 'train' split (splits: {list(loaded)})", path=path)
        loaded = loaded["train"]
    yield from enumerate(loaded, start=1)


def load_hub(
    spec: str, on_error: OnError, parse: RowParser | None = None, noun: str = "preference pairs"
) -> PreferenceDataset:
    """``hub:Anthropic/hh-rlhf:harmless-base[:split]`` -- the real path for users with a network."""
    import datasets

    name, _, rest = spec.partition(":")
    data_dir, _, split = rest.partition(":")
    loaded = datasets.load_dataset(name, data_dir=data_dir or None, split=split or "train")
    return dataset_from_records(enumerate(loaded, start=1), f"hub:{spec}", on_error, "row", parse, noun)


def dataset_from_records(
    records: Iterator[tuple[int, Any]],
    path: str | Path,
    on_error: OnError,
    unit: str,
    parse: RowParser | None = None,
    noun: str = "preference pairs",
) -> PreferenceDataset:
    """Parse every record with ``parse`` (default :func:`parse_record`) into pairs with ids; one error standard.

    A bad row stops loading with an :class:`InputError` naming file, line (or row) and field, or is
    left out and counted under ``on_error="skip"``; ``noun`` names what the file should hold.
    """
    parse = parse or parse_record
    rows: list[tuple[str, str, str]] = []
    given_ids: list[str | None] = []
    metas: list[dict[str, Any] | None] = []
    seen_ids: set[str] = set()
    skipped: list[SkippedRow] = []
    for number, record in records:
        try:
            if isinstance(record, RowError):
                raise record
            parsed = parse(record)
            given = _given_id(record, seen_ids)
            rows.append(parsed)
            given_ids.append(given)
            metas.append(_meta(record))
        except RowError as exc:
            if on_error == "raise":
                where = f"{unit} {number}" if unit != "line" else None
                message = f"{where}: {exc.reason}" if where else exc.reason
                raise InputError(
                    message + " (use --skip-bad-rows to leave such rows out and count them)",
                    path=path,
                    line=number if unit == "line" else None,
                    field=exc.field,
                ) from None
            skipped.append(SkippedRow(number, exc.field, exc.reason))
    if not rows:
        if not skipped:
            raise InputError(f"no {noun} found: there is no {unit} with data", path=path)
        first = skipped[0]
        field = f"field '{first.field}': " if first.field else ""
        raise InputError(
            f"no usable {noun}: every {unit} is bad ({plural(len(skipped), unit)} skipped; "
            f"first: {unit} {first.line}: {field}{first.reason})",
            path=path,
        )
    pairs = assign_ids(rows)
    # A file poisonlab wrote keeps its ids, so manifests, scores and detections still match.
    pairs = [p if given is None else p.with_(id=given) for p, given in zip(pairs, given_ids)]
    pairs = [p if meta is None else p.with_(meta=meta) for p, meta in zip(pairs, metas)]
    return PreferenceDataset(pairs, str(path), skipped)


def _meta(record: dict[str, Any]) -> dict[str, Any] | None:
    """The row's annotator / timestamp as given (checked only by whoever uses them, so no file stops loading)."""
    meta = {key: record[key] for key in META_COLUMNS if record.get(key) is not None}
    return meta or None


def _given_id(record: dict[str, Any], seen: set[str]) -> str | None:
    value = record.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RowError("id", f"expected a non-empty string, got {value!r}")
    if value in seen:
        raise RowError("id", f"duplicate id {value!r}")
    seen.add(value)
    return value


def parse_record(record: Any) -> tuple[str, str, str]:
    """One raw record (HH or TRL, standard or conversational) -> (prompt, chosen, rejected)."""
    if not isinstance(record, dict):
        raise RowError(None, f"expected a JSON object, got {type(record).__name__}")
    for key in ("chosen", "rejected"):
        if key not in record:
            raise RowError(key, "missing")
    if "prompt" in record and record["prompt"] is not None:
        prompt = text_or_messages(record["prompt"], "prompt", is_prompt=True)
        chosen = text_or_messages(record["chosen"], "chosen")
        rejected = text_or_messages(record["rejected"], "rejected")
    else:
        prompt, chosen, rejected = _split_hh(record["chosen"], record["rejected"])
    for key, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        if not value.strip():
            raise RowError(key, "empty" if key == "prompt" else "empty final reply")
    return prompt, chosen, rejected


def _split_hh(chosen: Any, rejected: Any) -> tuple[str, str, str]:
    for key, value in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(value, str):
            raise RowError(key, f"expected a dialogue string, got {type(value).__name__}")
    chosen_split = split_final_reply(chosen)
    rejected_split = split_final_reply(rejected)
    if chosen_split is None:
        raise RowError("chosen", "no 'Assistant:' turn in the dialogue")
    if rejected_split is None:
        raise RowError("rejected", "no 'Assistant:' turn in the dialogue")
    if chosen_split[0] != rejected_split[0]:
        raise RowError("rejected", "the two dialogues do not share a prompt (they differ before the final reply)")
    return chosen_split[0], chosen_split[1], rejected_split[1]


def text_or_messages(value: Any, key: str, is_prompt: bool = False) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        for message in value:
            if not isinstance(message.get("content"), str) or message.get("role") not in (
                "user",
                "assistant",
                "system",
            ):
                raise RowError(key, "each message needs a 'role' (user/assistant/system) and a string 'content'")
        if is_prompt:
            if not any(m["content"].strip() for m in value):
                raise RowError(key, "empty")
            return from_messages(value)
        replies = [m["content"] for m in value if m["role"] == "assistant"]
        if not replies:
            raise RowError(key, "conversational reply has no assistant message")
        return replies[-1].strip()
    raise RowError(key, f"expected a string or a list of messages, got {type(value).__name__}")
