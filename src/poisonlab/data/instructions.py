"""Read SFT data: instruction rows (prompt -> reply) or preference pairs, one format per row.

SFT learns prompt -> reply, so any instruction file will do, not only preference data. A row is:

- ``prompt`` + ``response`` (or ``completion``): strings, or TRL's conversational lists of messages;
- Alpaca ``instruction`` + ``input`` (optional) + ``output``;
- chat ``messages`` (role/content): the last assistant turn is the target, the turns before it the prompt;
- a preference pair (``chosen``/``rejected``, read exactly as :func:`load_pairs` reads it): prompt -> chosen.

Files are ``.jsonl``/``.json`` (gzipped or not), ``.csv`` (columns as fields), Parquet or a datasets folder.
The format is sniffed per row, so a file poisonlab wrote (clean pairs plus poison demonstrations) reads
back as it was written. An instruction row becomes a pair without a rejected reply
(:attr:`PreferencePair.is_demonstration`); errors follow :mod:`poisonlab.data.readers` (file, line, field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab.data.dialogue import from_messages
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.prompts import as_dialogue
from poisonlab.data.readers import (
    OnError,
    RowError,
    dataset_from_records,
    file_records,
    load_hub,
    load_pairs,
    parse_record,
    text_or_messages,
)

ROLES = ("user", "assistant", "system")
SFT_FORMATS = ("jsonl", "csv", "parquet", "folder")
NOUN = "SFT rows"
NO_FIELDS = (
    "no SFT fields: expected prompt + response (or completion), instruction + output (Alpaca), messages, "
    "or chosen + rejected (a preference pair)"
)


def load_sft_data(source: str | Path, on_error: OnError = "raise") -> PreferenceDataset:
    """SFT rows of ``source`` (instruction or preference rows); ``on_error`` as in :func:`load_pairs`."""
    text = str(source)
    if text == "synthetic":
        return load_pairs(text, on_error)
    if text.startswith("hub:"):
        return load_hub(text[4:], on_error, parse_sft_row, NOUN)
    records, unit = file_records(Path(source), SFT_FORMATS)
    return dataset_from_records(records, source, on_error, unit, parse_sft_row, NOUN)


def parse_sft_row(record: Any) -> tuple[str, str, str]:
    """One raw record -> (prompt, reply, rejected): rejected is "" for an instruction row."""
    if not isinstance(record, dict):
        raise RowError(None, f"expected a JSON object, got {type(record).__name__}")
    if "chosen" in record or "rejected" in record:
        return parse_record(record)
    if "messages" in record:
        prompt, reply = _from_chat(record["messages"])
    elif "instruction" in record:
        prompt, reply = _from_alpaca(record)
    elif "prompt" in record:
        prompt, reply = _from_prompt_reply(record)
    else:
        raise RowError(None, NO_FIELDS)
    return prompt, reply, ""


def _text(record: dict[str, Any], key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if key not in record:
        raise RowError(key, "missing")
    if not isinstance(value, str):
        raise RowError(key, f"expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RowError(key, "empty")
    return value


def _from_alpaca(record: dict[str, Any]) -> tuple[str, str]:
    instruction, extra = _text(record, "instruction"), _text(record, "input", required=False)
    reply = _text(record, "output")
    request = f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction
    return as_dialogue(request), reply.strip()


def _from_prompt_reply(record: dict[str, Any]) -> tuple[str, str]:
    keys = [key for key in ("response", "completion") if key in record]
    if not keys:
        raise RowError("response", "missing (an instruction row needs response or completion)")
    if len(keys) == 2:
        raise RowError("completion", "give response or completion, not both")
    raw = record["prompt"]
    prompt = text_or_messages(raw, "prompt", is_prompt=True)
    if not prompt.strip():
        raise RowError("prompt", "empty")
    reply = text_or_messages(record[keys[0]], keys[0])
    if not reply.strip():
        raise RowError(keys[0], "empty")
    return (as_dialogue(prompt) if isinstance(raw, str) else prompt), reply.strip()


def _from_chat(messages: Any) -> tuple[str, str]:
    if not isinstance(messages, list) or not messages:
        raise RowError("messages", f"expected a non-empty list of messages, got {type(messages).__name__}")
    for number, message in enumerate(messages, start=1):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise RowError("messages", f"message {number} needs a role (user/assistant/system) and a string content")
    last = max((k for k, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise RowError("messages", "no assistant message: nothing to learn")
    if last < len(messages) - 1:
        raise RowError("messages", f"{len(messages) - 1 - last} message(s) after the last assistant reply")
    reply, before = messages[last]["content"].strip(), messages[:last]
    if not reply:
        raise RowError("messages", "the last assistant message is empty")
    if not any(m["content"].strip() for m in before if m["role"] == "user"):
        raise RowError("messages", "no user message before the last assistant reply")
    return from_messages(before), reply
