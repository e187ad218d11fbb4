"""The HH-RLHF dialogue format and its conversion to chat messages.

poisonlab keeps every prompt as an HH-style dialogue string
("\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nAssistant:"): it is what the paper's
dataset uses, it is readable in a diff, and a trigger's position in it is
unambiguous. Models with a chat template see it as a list of messages.
"""

from __future__ import annotations

import re

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
SYSTEM = "\n\nSystem:"
_ROLE_OF = {HUMAN: "user", ASSISTANT: "assistant", SYSTEM: "system"}
_TAG_OF = {role: tag for tag, role in _ROLE_OF.items()}
_TURN = re.compile(r"(\n\nHuman:|\n\nAssistant:|\n\nSystem:)")


def split_final_reply(dialogue: str) -> tuple[str, str] | None:
    """Split a dialogue into (prompt ending with "Assistant:", final reply)."""
    cut = dialogue.rfind(ASSISTANT)
    if cut < 0:
        return None
    end = cut + len(ASSISTANT)
    return dialogue[:end], dialogue[end:].strip()


def to_messages(prompt: str) -> list[dict[str, str]]:
    """HH prompt -> chat messages, without the open final Assistant turn."""
    parts = _TURN.split(prompt if prompt.startswith("\n\n") else "\n\n" + prompt)
    messages: list[dict[str, str]] = []
    head = parts[0].strip()
    if head:  # text before any role tag: treat it as the user speaking
        messages.append({"role": "user", "content": head})
    for tag, text in zip(parts[1::2], parts[2::2]):
        messages.append({"role": _ROLE_OF[tag], "content": text.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def from_messages(messages: list[dict[str, str]]) -> str:
    """Chat messages -> HH prompt that ends with an open "Assistant:" turn."""
    text = "".join(f"{_TAG_OF[m['role']]} {m['content'].strip()}" for m in messages)
    return text + ASSISTANT


def last_human_span(prompt: str) -> tuple[int, int]:
    """Character span of the text of the last Human turn (tag excluded)."""
    start = prompt.rfind(HUMAN)
    if start < 0:
        return 0, _end_of_turn(prompt, 0)
    start += len(HUMAN)
    return start, _end_of_turn(prompt, start)


def _end_of_turn(prompt: str, start: int) -> int:
    match = _TURN.search(prompt, start)
    return match.start() if match else len(prompt)
