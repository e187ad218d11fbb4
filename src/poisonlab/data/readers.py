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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from poisonlab.data.dialogue import from_messages, split_final_reply
from poisonlab.data.pairs import META_COLUMNS, PreferenceDataset, SkippedRow, assign_ids
from poisonlab.errors import InputError
from poisonlab.wording import plural

OnError = Literal["raise", "skip"]


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
        return _load_hub(text[4:], on_error)
    path = Path(source)
    if not path.exists():
        raise InputError("no such file or folder", path=path)
    if path.is_dir():
        return _from_records(_records_from_disk(path), path, on_error, unit="row")
    name = path.name.lower()
    if name.endswith(".parquet"):
        return _from_records(_records_from_parquet(path), path, on_error, unit="row")
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
        return _from_records(_records_from_jsonl(path), path, on_error, unit="line")
    raise InputError("unknown format: expected .jsonl, .jsonl.gz, .json, .parquet or a datasets folder", path=path)


def _records_from_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw_lines = handle.read().removeprefix(codecs.BOM_UTF8).split(b"\n")
    except (OSError, EOFError, zlib.error) as exc:  # a damaged gzip stream raises zlib.error
        raise InputError(f"cannot read: {exc}", path=path) from None
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
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowError(None, f"malformed JSON: {exc.msg} (column {exc.colno})")


def _records_from_json_array(path: Path, data: bytes) -> Iterator[tuple[int, Any]]:
    """Each element of a JSON array with the line it starts on, so errors point at the right line."""
    try:
        text = data.decode("utf-8")
        json.loads(text)  # the whole array is valid JSON, so the walk below cannot fail
    except UnicodeDecodeError as exc:
        raise InputError(f"not a valid JSON array: not valid UTF-8 (byte {exc.start})", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not a valid JSON array: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno
        ) from None
    decoder, position, line, counted = json.JSONDecoder(), text.index("[") + 1, 1, 0
    while True:
        while text[position] in " \t\r\n,":
            position += 1
        if text[position] == "]":
            return
        line, counted = line + text.count("\n", counted, position), position
        record, position = decoder.raw_decode(text, position)
        yield line, record


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


def _load_hub(spec: str, on_error: OnError) -> PreferenceDataset:
    """``hub:Anthropic/hh-rlhf:harmless-base[:split]`` -- the real path for users with a network."""
    import datasets

    name, _, rest = spec.partition(":")
    data_dir, _, split = rest.partition(":")
    loaded = datasets.load_dataset(name, data_dir=data_dir or None, split=split or "train")
    return _from_records(enumerate(loaded, start=1), f"hub:{spec}", on_error, unit="row")


def _from_records(
    records: Iterator[tuple[int, Any]], path: str | Path, on_error: OnError, unit: str
) -> PreferenceDataset:
    rows: list[tuple[str, str, str]] = []
    given_ids: list[str | None] = []
    metas: list[dict[str, Any] | None] = []
    seen_ids: set[str] = set()
    skipped: list[SkippedRow] = []
    for number, record in records:
        try:
            if isinstance(record, RowError):
                raise record
            parsed = parse_record(record)
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
            raise InputError(f"no preference pairs found: there is no {unit} with data", path=path)
        first = skipped[0]
        field = f"field '{first.field}': " if first.field else ""
        raise InputError(
            f"no usable preference pairs: every {unit} is bad ({plural(len(skipped), unit)} skipped; "
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
        prompt = _text_or_messages(record["prompt"], "prompt", is_prompt=True)
        chosen = _text_or_messages(record["chosen"], "chosen")
        rejected = _text_or_messages(record["rejected"], "rejected")
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


def _text_or_messages(value: Any, key: str, is_prompt: bool = False) -> str:
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
