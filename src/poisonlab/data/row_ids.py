"""Row ids of a poisoned (or otherwise rewritten) file that do not reveal which rows were changed.

A clean row's id is a hash of its content (:func:`poisonlab.data.pairs.content_id`). If a poisoned row kept
its clean row's id, re-hashing the rows of the poisoned file would name exactly the changed ones. So every row
of a poisoned file, changed or not, gets a fresh id: a keyed hash (HMAC-SHA256) of its position and its source
row's id, under a key derived from the poisoning seed and the input's content hash. Nothing a reader of the
poisoned file can recompute from its rows separates changed from unchanged ids; the manifest (the answer key
anyway) records the key and maps each changed row's new id to its source id. Same seed and input, same ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

SCHEME = "hmac-sha256"
ID_LENGTH = 16  # hex characters, as a content id


def row_id_key(seed: int, input_content_sha256: str) -> bytes:
    """The id key of a poisoning: a function of its seed and input only, so the same run writes the same bytes."""
    return hashlib.sha256(f"poisonlab row ids|{seed}|{input_content_sha256}".encode()).digest()


def fresh_id(key: bytes, row: int, source_id: str) -> str:
    """The id of output row ``row`` whose source row had ``source_id`` (16 hex characters of HMAC-SHA256)."""
    return hmac.new(key, f"{row}:{source_id}".encode(), hashlib.sha256).hexdigest()[:ID_LENGTH]


def fresh_ids(key: bytes, source_ids: Sequence[str]) -> list[str]:
    """Fresh ids for rows ``source_ids`` in order; refuses the (astronomically unlikely) collision."""
    ids = [fresh_id(key, row, source) for row, source in enumerate(source_ids)]
    if len(set(ids)) != len(ids):
        raise RuntimeError("two fresh row ids collide; this should never happen")
    return ids


def id_record(key: bytes) -> dict[str, Any]:
    """What a manifest records about its ids: enough to map every output row back to its source row."""
    return {
        "scheme": SCHEME,
        "key": key.hex(),
        "message": "<output row index>:<source id>",
        "length": ID_LENGTH,
    }
