"""Read prompt sets to generate from: AdvBench, HarmBench, JSONL, plain text, or any preference file.

Every prompt is kept as an HH-style dialogue ("\\n\\nHuman: ...\\n\\nAssistant:"), the
form the rest of poisonlab uses, so a trigger goes in exactly where the attack put
it and the model's chat template sees the same messages as in training.

Formats, by file name:
- ``.csv``: a column of requests; ``goal`` (AdvBench) or ``Behavior`` (HarmBench) is
  found on its own, any other column is named with ``column``.
- ``.jsonl`` / ``.jsonl.gz`` / ``.json`` with a ``prompt`` field (a string or a list of
  chat messages) per row; if the rows are preference pairs (``chosen``/``rejected``),
  their prompts are used.
- ``.txt``: one request per non-empty line.
- anything else poisonlab reads as preference data (Parquet, a datasets folder,
  ``synthetic``): its pairs' prompts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab.data.dialogue import ASSISTANT, HUMAN, from_messages, to_messages
from poisonlab.errors import InputError
from poisonlab.io import json_lines

KNOWN_COLUMNS = ("goal", "Behavior", "prompt")  # AdvBench, HarmBench, generic


@dataclass(frozen=True)
class Prompt:
    id: str  # 16 hex digits of sha256 of the dialogue (``~N`` for repeats), stable across files
    text: str  # HH-style dialogue ending with an open "Assistant:" turn


def as_dialogue(request: str) -> str:
    """A plain request -> a one-turn HH dialogue; a dialogue is returned as it is."""
    if request.lstrip().startswith(("Human:", HUMAN.strip())) or HUMAN in request:
        text = request if request.startswith("\n\n") else "\n\n" + request.lstrip()
        return text if text.rstrip().endswith(ASSISTANT.strip()) else text.rstrip() + ASSISTANT
    return f"{HUMAN} {request.strip()}{ASSISTANT}"


def request_text(dialogue: str) -> str:
    """What a judge reads as the request: the user's text for one turn, the whole dialogue for several."""
    messages = to_messages(dialogue)
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return dialogue.strip()


def _with_ids(texts: list[str]) -> list[Prompt]:
    seen: dict[str, int] = {}
    prompts = []
    for text in texts:
        base = hashlib.sha256(text.encode()).hexdigest()[:16]
        seen[base] = seen.get(base, 0) + 1
        prompts.append(Prompt(base if seen[base] == 1 else f"{base}~{seen[base]}", text))
    return prompts


def _read_text(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=path, line=line) from None


def _from_csv(path: Path, column: str | None) -> list[str]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    header = reader.fieldnames or []
    if column is None:
        column = next((c for c in KNOWN_COLUMNS if c in header), None)
        if column is None:
            raise InputError(
                f"no request column found (looked for {', '.join(KNOWN_COLUMNS)}; the file has "
                f"{', '.join(header) or 'no header'}): name one with --prompt-column",
                path=path,
                line=1,
            )
    elif column not in header:
        raise InputError(
            f"no column {column!r} (the file has {', '.join(header) or 'no header'})",
            path=path,
            line=1,
            field=column,
        )
    requests = []
    for row in reader:
        value = row.get(column)
        line = reader.line_num
        if value is None or not value.strip():
            raise InputError("empty request", path=path, line=line, field=column)
        requests.append(value)
    return requests


def _prompt_field(value: Any, path: Path, line: int, field: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        if not all(
            isinstance(m.get("content"), str) and m.get("role") in ("user", "assistant", "system") for m in value
        ):
            raise InputError(
                "each message needs a role (user/assistant/system) and a string content",
                path=path,
                line=line,
                field=field,
            )
        return from_messages(value)
    raise InputError(
        f"expected a non-empty string or a list of messages, got {value!r:.60}", path=path, line=line, field=field
    )


def _from_jsonl(path: Path, column: str | None) -> list[str] | None:
    """Requests of a JSONL file with a prompt column; None if its rows are preference pairs."""
    requests = []
    field = column or "prompt"
    for number, row in json_lines(_read_text(path), path):
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=number)
        if field not in row:
            if column is None and "chosen" in row and "rejected" in row:
                return None  # preference pairs: read their prompts
            raise InputError("missing", path=path, line=number, field=field)
        requests.append(_prompt_field(row[field], path, number, field))
    return requests


def load_prompts(source: str | Path, column: str | None = None, limit: int | None = None) -> list[Prompt]:
    """The prompts of ``source`` as dialogues with stable ids, the first ``limit`` of them."""
    text = str(source)
    path = Path(source)
    requests: list[str] | None
    name = path.name.lower()
    if text != "synthetic" and not text.startswith("hub:") and not path.exists():
        raise InputError("no such file or folder", path=path)
    if path.is_file() and name.endswith(".csv"):
        requests = _from_csv(path, column)
    elif path.is_file() and name.endswith(".txt"):
        requests = [line for line in _read_text(path).splitlines() if line.strip()]
    elif path.is_file() and name.endswith((".jsonl", ".jsonl.gz", ".json")) and not _is_json_array(path):
        requests = _from_jsonl(path, column)
    else:
        requests = None
    if requests is None:  # a preference file: its prompts, once each, in file order
        from poisonlab.data.readers import load_pairs

        requests = list(dict.fromkeys(p.prompt for p in load_pairs(source, on_error="skip")))
    if not requests:
        raise InputError("no prompts found: the file is empty", path=path)
    dialogues = [as_dialogue(r) for r in requests]
    return _with_ids(dialogues)[:limit] if limit else _with_ids(dialogues)


def _is_json_array(path: Path) -> bool:
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
        return handle.read(64).lstrip().startswith(b"[")
