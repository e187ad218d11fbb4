"""The one in-memory shape of preference data: id, prompt, chosen, rejected."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# Per-row facts a reader keeps when the data has them (who labelled the row, when): the access
# constraints of an attack (attacks/access.py) read them. They are not the pair's content.
META_COLUMNS = ("annotator", "timestamp")


@dataclass(frozen=True)
class PreferencePair:
    """One preference pair in TRL's standard format, plus a stable content id.

    ``meta`` holds the row's :data:`META_COLUMNS` values as read (or ``None``). It is not content:
    ``to_row``, equality and every hash leave it out, so datasets hash and write as before.
    """

    id: str
    prompt: str
    chosen: str
    rejected: str
    meta: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_demonstration(self) -> bool:
        """A prompt -> reply row without a rejected reply (instruction data, a behaviour-file poison row).

        SFT learns from it as from any pair (prompt -> chosen); DPO, swaps and pair scores need two replies.
        """
        return not self.rejected

    def to_row(self) -> dict[str, str]:
        """The row as written: a preference pair, or ``{"id", "prompt", "response"}`` for a demonstration."""
        if self.is_demonstration:
            return {"id": self.id, "prompt": self.prompt, "response": self.chosen}
        return {"id": self.id, "prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}

    def with_(self, **changes: Any) -> PreferencePair:
        return replace(self, **changes)


@dataclass(frozen=True)
class SkippedRow:
    """A row left out under ``on_error="skip"``, with the reason."""

    line: int
    field: str | None
    reason: str


@dataclass
class PreferenceDataset:
    """Pairs in input order, where they came from, and what was skipped."""

    pairs: list[PreferencePair]
    source: str = "<memory>"
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    def __getitem__(self, index: int) -> PreferencePair:
        return self.pairs[index]

    @property
    def ids(self) -> list[str]:
        return [pair.id for pair in self.pairs]

    def subset(self, ids: Sequence[str]) -> PreferenceDataset:
        wanted = set(ids)
        return PreferenceDataset([p for p in self.pairs if p.id in wanted], self.source)

    def content_hash(self) -> str:
        """Hash of the rows' content, order included: the cache key for scores and models."""
        digest = hashlib.sha256()
        for pair in self.pairs:
            digest.update(json.dumps(pair.to_row(), ensure_ascii=False).encode())
        return digest.hexdigest()


def content_id(prompt: str, chosen: str, rejected: str) -> str:
    """A short, stable id from the row's content (16 hex characters of sha256)."""
    payload = json.dumps([prompt, chosen, rejected], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def assign_ids(rows: Sequence[tuple[str, str, str]]) -> list[PreferencePair]:
    """Give each row its content id; an exact duplicate gets a ``~N`` suffix so ids stay unique."""
    seen: dict[str, int] = {}
    pairs = []
    for prompt, chosen, rejected in rows:
        base = content_id(prompt, chosen, rejected)
        count = seen.get(base, 0)
        seen[base] = count + 1
        pairs.append(PreferencePair(base if count == 0 else f"{base}~{count + 1}", prompt, chosen, rejected))
    return pairs
