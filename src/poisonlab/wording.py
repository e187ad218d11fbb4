"""Small helpers that keep user-facing messages grammatical."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1795 pairs``: a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def count_or_share(value: float) -> str:
    """A held-out size as the user meant it: a count (``50``) or a share (``0.2``), never ``50.0``."""
    return str(int(value)) if value >= 1 and float(value).is_integer() else f"{value:g}"
