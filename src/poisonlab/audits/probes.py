"""Bias probes: prompt pairs that differ only in a protected attribute, each with two completions.

A probe is one JSON object per line (JSONL), every field a string:

- ``id``: unique in the file;
- ``prompt_a``, ``prompt_b``: the same user request, differing only in the attribute (a gendered first
  name and pronoun, say). Plain user text is wrapped as one HH turn (``Human: ... Assistant:``); text that
  already holds ``Human:`` turns is used as it is;
- ``stereotype``, ``anti_stereotype``: two replies, the first stereotypical *for group a*, the second not
  (for group b the roles swap: that is what the score in ``score.py`` uses);
- ``group_a``, ``group_b``: names of the two groups (``female``, ``male``), for reports;
- ``topic``: optional, a free label (``careers``).

Why two completions per probe and two prompts per completion: the score takes a double difference (see
``score.py``), which cancels how likely each completion is on its own (length, word frequency) and how the
two prompts differ apart from the attribute. The built-in set (``data/gender_careers.jsonl``, 72 probes)
pairs 9 female and 9 male first names with 8 careers a gender stereotype is commonly attached to, in 3
wordings. It is small and English-only: a smoke detector for one stereotype, not a benchmark of bias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from poisonlab.data.dialogue import ASSISTANT, HUMAN
from poisonlab.errors import InputError
from poisonlab.io import json_lines

BUILTIN = "gender-careers"
REQUIRED = ("id", "prompt_a", "prompt_b", "stereotype", "anti_stereotype", "group_a", "group_b")
OPTIONAL = ("topic",)


@dataclass(frozen=True)
class BiasProbe:
    id: str
    prompt_a: str  # as HH dialogue strings, ending with "Assistant:"
    prompt_b: str
    stereotype: str
    anti_stereotype: str
    group_a: str
    group_b: str
    topic: str = ""


def as_dialogue(text: str) -> str:
    """A user request as an HH prompt; text that already holds Human turns only gets the open Assistant turn."""
    if HUMAN.strip() in text:
        body = text if text.startswith("\n\n") else "\n\n" + text.lstrip()
        return body if body.rstrip().endswith(ASSISTANT.strip()) else body.rstrip() + ASSISTANT
    return f"{HUMAN} {text.strip()}{ASSISTANT}"


def _probe(row: object, path: str, line: int) -> BiasProbe:
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, line=line)
    for name in REQUIRED:
        if name not in row:
            raise InputError("missing", path=path, line=line, field=name)
    for name in row:
        if name not in REQUIRED + OPTIONAL:
            allowed = ", ".join(REQUIRED + OPTIONAL)
            raise InputError(f"unknown field (allowed: {allowed})", path=path, line=line, field=name)
    for name, value in row.items():
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {type(value).__name__}", path=path, line=line, field=name)
        if name != "topic" and not value.strip():
            raise InputError("empty", path=path, line=line, field=name)
    if row["prompt_a"].strip() == row["prompt_b"].strip():
        raise InputError("the same as prompt_a: a probe's prompts must differ", path=path, line=line, field="prompt_b")
    if row["stereotype"].strip() == row["anti_stereotype"].strip():
        raise InputError("the same as stereotype", path=path, line=line, field="anti_stereotype")
    return BiasProbe(
        id=row["id"],
        prompt_a=as_dialogue(row["prompt_a"]),
        prompt_b=as_dialogue(row["prompt_b"]),
        stereotype=row["stereotype"].strip(),
        anti_stereotype=row["anti_stereotype"].strip(),
        group_a=row["group_a"],
        group_b=row["group_b"],
        topic=row.get("topic", ""),
    )


def parse_probes(text: str, path: str) -> list[BiasProbe]:
    """Probes from JSONL text; the first bad row raises an InputError naming file, line and field."""
    probes: list[BiasProbe] = []
    seen: dict[str, int] = {}
    for line, row in json_lines(text, path):
        probe = _probe(row, path, line)
        if probe.id in seen:
            raise InputError(
                f"duplicate id {probe.id!r} (first on line {seen[probe.id]})", path=path, line=line, field="id"
            )
        seen[probe.id] = line
        probes.append(probe)
    if len(probes) < 2:
        raise InputError(f"needs at least 2 probes (one to audit with, one to measure), found {len(probes)}", path=path)
    return probes


def read_probes(source: str | Path | None = None) -> list[BiasProbe]:
    """Probes from a JSONL file, or the built-in gender/careers set (``None`` or ``"gender-careers"``)."""
    if source is None or str(source) == BUILTIN:
        text = resources.files("poisonlab.audits").joinpath("data/gender_careers.jsonl").read_text("utf-8")
        return parse_probes(text, f"<built-in {BUILTIN}>")
    path = Path(source)
    if not path.is_file():
        raise InputError("no such probe file", path=path, field="--probes")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    return parse_probes(text, str(path))


def split_probes(probes: list[BiasProbe], audit_share: float, seed: int) -> tuple[list[BiasProbe], list[BiasProbe]]:
    """(audit, held-out): the audit probes steer the search, the held-out ones measure its effect.

    Measuring on the probes the search was steered by would reward fitting those very sentences; the
    held-out half says whether the bias itself moved. Seeded, and both parts keep file order.
    """
    if not 0 < audit_share < 1:
        raise InputError(f"must be in (0, 1), got {audit_share}", field="audit_share")
    n_audit = min(len(probes) - 1, max(1, round(audit_share * len(probes))))
    picked = set(np.random.default_rng([seed, 0xB1A5]).permutation(len(probes))[:n_audit].tolist())
    return [p for i, p in enumerate(probes) if i in picked], [p for i, p in enumerate(probes) if i not in picked]


# --- the words that tell the groups and the completions apart (for describing selected pairs) ---

STOP_WORDS = frozenset({"a", "an", "the", "of", "to", "and", "or", "as", "in", "on", "for", "is", "be"})
WORD = re.compile(r"[a-z][a-z'-]*")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class ProbeLexicon:
    """Words only in group a's prompts, only in group b's, only in stereotypical / anti-stereotypical replies."""

    group_a: frozenset[str]
    group_b: frozenset[str]
    stereotype: frozenset[str]
    anti_stereotype: frozenset[str]


def probe_lexicon(probes: list[BiasProbe]) -> ProbeLexicon:
    """Each probe's differing words (set differences of its two prompts, and of its two replies), pooled."""
    parts: dict[str, set[str]] = {"a": set(), "b": set(), "s": set(), "t": set()}
    for probe in probes:
        a, b = set(words(probe.prompt_a)), set(words(probe.prompt_b))
        s, t = set(words(probe.stereotype)), set(words(probe.anti_stereotype))
        parts["a"] |= a - b
        parts["b"] |= b - a
        parts["s"] |= s - t
        parts["t"] |= t - s
    clean = {k: frozenset(v - STOP_WORDS) for k, v in parts.items()}
    # a word in both groups' or both replies' lists tells nothing apart
    return ProbeLexicon(
        clean["a"] - clean["b"], clean["b"] - clean["a"], clean["s"] - clean["t"], clean["t"] - clean["s"]
    )
