"""Generators of malformed and adversarial preference files, and the oracle every reader must satisfy.

Shared by ``tests/test_fuzz_inputs.py`` (a modest number of cases in CI) and
``benchmarks/fuzz_inputs.py`` (thousands, with counts of what users see).

Each generated file carries its own expectation: the rows it was built from, and for each row
whether it is good or bad (and which fields may be blamed). The oracle then demands that the
reader either returns exactly the good rows, or refuses with an :class:`InputError` that names
the file, the line of the *first* bad row (or its row number, for Parquet and datasets folders)
and one of the blamed fields. Anything else, a traceback included, fails.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from poisonlab.errors import InputError

FORMATS = ("hh", "standard", "conversational")
LINE_CONTAINERS = ("jsonl", "jsonl.gz", "json", "json-array", "jsonl-array", "gz-damaged")
COLUMN_CONTAINERS = ("parquet", "disk")
CONTAINERS = LINE_CONTAINERS + COLUMN_CONTAINERS

PLACEHOLDER = "\u2603PLACE\u2603"
# Text of good rows: anything but surrogates, non-blank, and no HH role tag inside a turn.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24).filter(
    lambda t: t.strip() and "\n\nAssistant:" not in t and "\n\nHuman:" not in t and PLACEHOLDER not in t
)
BLANK = st.sampled_from(["", " ", "\n", "\t \r\n", "\u3000", "\x1c\x1f"])  # str.strip() removes them all
CONTROLS = st.text(st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=5)
WRONG = st.sampled_from([0, 1.5, True, {}, [1], {"role": "user"}, None])


class Unwritable(Exception):
    """The case cannot be stored in its container (Arrow columns hold one type): not a test of the reader."""


@dataclass
class Row:
    """One line (or row) of the file: a record, or raw bytes for lines JSON cannot express."""

    record: Any = None
    raw: bytes | None = None
    bad_fields: frozenset | None = None  # None: a good row; else the fields the error may name
    mutation: str = "ok"


@dataclass
class Case:
    format: str
    container: str
    rows: list[Row]
    bom: bool = False
    crlf: bool = False
    blank_before: list[bool] = field(default_factory=list)
    cut: float = 1.0  # gz-damaged: keep this share of the compressed bytes
    flip: int | None = None  # gz-damaged: flip this byte of the compressed stream

    def describe(self) -> str:
        return f"{self.format}/{self.container}: " + ", ".join(r.mutation for r in self.rows)


def _good(fmt: str, prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
    if fmt == "hh":
        head = f"\n\nHuman: {prompt}\n\nAssistant:"
        return {"chosen": f"{head} {chosen}", "rejected": f"{head} {rejected}"}
    if fmt == "standard":
        return {"prompt": f"\n\nHuman: {prompt}\n\nAssistant:", "chosen": chosen, "rejected": rejected}
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def _set_reply(fmt: str, record: dict[str, Any], key: str, text: str) -> None:
    if fmt == "hh":
        record[key] = record[key][: record[key].rfind("\n\nAssistant:")] + "\n\nAssistant: " + text
    elif fmt == "standard":
        record[key] = text
    else:
        record[key] = [{"role": "assistant", "content": text}]


LINE_ONLY = ("raw-control", "bad-utf8", "garbage", "not-object")


@st.composite
def rows(draw: st.DrawFn, fmt: str, columnar: bool) -> Row:
    record = _good(fmt, draw(TEXT), draw(TEXT), draw(TEXT))
    mutations = ["ok", "ok", "drop", "none", "blank", "huge", "controls", "dup-id", "bad-id", "extra"]
    if not columnar:
        mutations += ["wrong-type", *LINE_ONLY]
    if fmt == "hh":
        mutations.append("hh-differ")
    if fmt == "standard":
        mutations.append("blank-prompt")
    mutation = draw(st.sampled_from(mutations))
    reply = draw(st.sampled_from(["chosen", "rejected"]))
    keys = list(record)
    if mutation == "ok":
        return Row(record)
    if mutation == "drop":
        key = draw(st.sampled_from(keys))
        del record[key]
        return Row(record, bad_fields=frozenset({"chosen" if key == "prompt" else key}), mutation=f"drop-{key}")
    if mutation in ("none", "wrong-type"):
        key = draw(st.sampled_from(keys))
        value = None if mutation == "none" else draw(WRONG)
        record[key] = value
        blamed = "chosen" if key == "prompt" and value is None else key  # no prompt: read as an HH row
        return Row(record, bad_fields=frozenset({blamed}), mutation=f"{mutation}-{key}")
    if mutation == "blank":
        _set_reply(fmt, record, reply, draw(BLANK))
        return Row(record, bad_fields=frozenset({reply}), mutation=f"blank-{reply}")
    if mutation == "blank-prompt":
        record["prompt"] = draw(BLANK)
        return Row(record, bad_fields=frozenset({"prompt"}), mutation=mutation)
    if mutation == "huge":
        _set_reply(fmt, record, reply, "x" * draw(st.integers(50_000, 300_000)) + draw(TEXT))
        return Row(record, mutation=mutation)
    if mutation == "controls":
        _set_reply(fmt, record, reply, "a" + draw(CONTROLS) + "\u2028\x7f\ufeff" + "b")
        return Row(record, mutation=mutation)
    if mutation == "dup-id":
        record["id"] = "same-id"  # the second row that carries it is the bad one
        return Row(record, mutation=mutation)
    if mutation == "bad-id":
        record["id"] = draw(st.sampled_from([7, ""] if not columnar else [7]))
        return Row(record, bad_fields=frozenset({"id"}), mutation=mutation)
    if mutation == "extra":
        record["note"] = draw(TEXT)
        return Row(record, mutation=mutation)
    if mutation == "hh-differ":
        record["rejected"] = "\n\nHuman: something else" + record["rejected"]
        return Row(record, bad_fields=frozenset({"rejected"}), mutation=mutation)
    if mutation == "raw-control":  # an unescaped control character inside a JSON string
        _set_reply(fmt, record, reply, PLACEHOLDER)
        text = json.dumps(record, ensure_ascii=False).replace(PLACEHOLDER, "a\x01b")
        return Row(raw=text.encode(), bad_fields=frozenset({None}), mutation=mutation)
    if mutation == "bad-utf8":
        _set_reply(fmt, record, reply, PLACEHOLDER)
        raw = json.dumps(record, ensure_ascii=False).encode().replace(PLACEHOLDER.encode(), b"a\xff\xfeb")
        return Row(raw=raw, bad_fields=frozenset({None}), mutation=mutation)
    if mutation == "garbage":
        text = "#" + draw(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=20))
        return Row(raw=text.encode(), bad_fields=frozenset({None}), mutation=mutation)
    value = draw(st.sampled_from([[record], 3, "text", None, True]))  # not-object
    return Row(value, bad_fields=frozenset({None}), mutation=mutation)


@st.composite
def cases(draw: st.DrawFn, containers: tuple[str, ...] = CONTAINERS) -> Case:
    container = draw(st.sampled_from(containers))
    fmt = draw(st.sampled_from(FORMATS))
    columnar = container in COLUMN_CONTAINERS
    structured = columnar or container in ("json-array", "jsonl-array")
    generated = draw(st.lists(rows(fmt, columnar), min_size=0, max_size=6))
    if structured:  # a JSON array or a table holds records, not raw lines
        generated = [r for r in generated if r.raw is None]
    if container == "json":  # a .json file whose first line is a list is read as a JSON array, rightly
        generated = [r for r in generated if not isinstance(r.record, list)]
    if container == "gz-damaged" and not generated:
        generated = [Row(_good(fmt, "p", "c", "r"))]
    n = len(generated)
    return Case(
        fmt,
        container,
        generated,
        bom=not columnar and draw(st.booleans()),
        crlf=not columnar and draw(st.booleans()),
        blank_before=[draw(st.booleans()) for _ in range(n)] if not structured else [False] * n,
        cut=draw(st.floats(0.0, 0.95)),
        flip=draw(st.one_of(st.none(), st.integers(0, 10_000))),
    )


def _line_bytes(row: Row) -> bytes:
    return row.raw if row.raw is not None else json.dumps(row.record).encode()


def write_case(case: Case, folder: Path) -> tuple[Path, list[int]]:
    """Write the case's file; return its path and the line (or row number) of each row."""
    folder.mkdir(parents=True, exist_ok=True)
    end = b"\r\n" if case.crlf else b"\n"
    bom = b"\xef\xbb\xbf" if case.bom else b""
    if case.container in COLUMN_CONTAINERS:
        import pyarrow as pa

        keys = list(dict.fromkeys(k for r in case.rows for k in r.record))
        try:
            table = pa.Table.from_pylist([{k: r.record.get(k) for k in keys} for r in case.rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # a column of mixed types: no such table exists
            raise Unwritable(str(exc)) from None
        if case.container == "parquet":
            import pyarrow.parquet as pq

            path = folder / "data.parquet"
            pq.write_table(table, path)
        else:
            import datasets

            path = folder / "saved"
            datasets.Dataset(table).save_to_disk(str(path))
        return path, list(range(1, len(case.rows) + 1))
    if case.container in ("json-array", "jsonl-array"):
        body = b"[" + end + (b"," + end).join(_line_bytes(r) for r in case.rows) + end + b"]" + end
        name = "data.json" if case.container == "json-array" else "data.jsonl"
        path = folder / name
        path.write_bytes(bom + body)
        return path, list(range(2, len(case.rows) + 2))
    lines, numbers = [], []
    for row, blank in zip(case.rows, case.blank_before):
        if blank:
            lines.append(b"  ")
        lines.append(_line_bytes(row))
        numbers.append(len(lines))
    data = bom + end.join(lines) + (end if lines else b"")
    if case.container in ("jsonl.gz", "gz-damaged"):
        data = gzip.compress(data, mtime=0)
        if case.container == "gz-damaged":
            if case.flip is not None:
                index = 10 + case.flip % max(1, len(data) - 18)  # inside the deflate stream
                data = data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1 :]
            else:
                data = data[: int(len(data) * case.cut)]
        path = folder / "data.jsonl.gz"
    else:
        path = folder / ("data.json" if case.container == "json" else "data.jsonl")
    path.write_bytes(data)
    return path, numbers


def expected_failure(case: Case) -> tuple[int, frozenset] | None:
    """(index of the first bad row, fields that may be blamed), or None if every row is good."""
    seen: set[str] = set()
    for index, row in enumerate(case.rows):
        if row.bad_fields is not None:
            return index, row.bad_fields
        record_id = row.record.get("id") if isinstance(row.record, dict) else None
        if isinstance(record_id, str) and record_id:
            if record_id in seen:
                return index, frozenset({"id"})
            seen.add(record_id)
    return None


@dataclass
class Outcome:
    refused: bool
    message: str = ""
    n_pairs: int = 0


def check_case(case: Case, folder: Path) -> Outcome:
    """Read the case's file and assert the oracle; return what the user saw."""
    from poisonlab.data import load_pairs

    path, numbers = write_case(case, folder)
    expected = expected_failure(case)
    try:
        dataset = load_pairs(path)
    except InputError as exc:
        assert exc.path == str(path), f"{case.describe()}: error names {exc.path}, not {path}"
        if case.container in ("gz-damaged", "jsonl-array") or not case.rows:
            return Outcome(True, exc.describe())  # the whole file is refused (damaged, an array, empty)
        assert expected is not None, f"{case.describe()}: refused good data: {exc.describe()}"
        index, fields = expected
        if case.container in COLUMN_CONTAINERS:
            assert exc.line is None and f"row {numbers[index]}:" in exc.message, f"{case.describe()}: {exc}"
        else:
            assert exc.line == numbers[index], f"{case.describe()}: line {exc.line}, expected {numbers[index]}"
        assert exc.field in fields, f"{case.describe()}: blamed {exc.field!r}, expected one of {set(fields)}"
        return Outcome(True, exc.describe())
    assert case.container != "jsonl-array", f"{case.describe()}: a JSON array in a .jsonl file was read"
    if case.container == "gz-damaged" and len(dataset) == len(case.rows) and expected is None:
        return Outcome(False, n_pairs=len(dataset))  # a flipped bit in a stored block's padding changes nothing
    assert expected is None, f"{case.describe()}: bad row {expected[0] + 1} was accepted"
    assert len(dataset) == len(case.rows), f"{case.describe()}: {len(dataset)} pairs from {len(case.rows)} rows"
    assert len(set(dataset.ids)) == len(dataset), f"{case.describe()}: duplicate ids"
    for pair, row in zip(dataset, case.rows):
        if case.format == "standard":
            assert (pair.prompt, pair.chosen, pair.rejected) == tuple(row.record[k] for k in FORMAT_KEYS)
    return Outcome(False, n_pairs=len(dataset))


FORMAT_KEYS = ("prompt", "chosen", "rejected")


def message_template(message: str) -> str:
    """A user-visible message with its file, numbers and quoted values taken out: what kind of message it is."""
    text = re.sub(r"^[^:]*?(\.jsonl\.gz|\.jsonl|\.json|\.parquet|saved|\.yaml)(:\d+)?: ", "FILE: ", message)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:160]
