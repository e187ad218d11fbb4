"""Write pairs as TRL-format JSONL, atomically."""

from __future__ import annotations

from pathlib import Path

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.io import atomic_write_jsonl, sha256_file


def write_pairs(dataset: PreferenceDataset, path: str | Path) -> str:
    """Write ``{"id", "prompt", "chosen", "rejected"}`` lines; return the file's sha256."""
    atomic_write_jsonl(path, (pair.to_row() for pair in dataset))
    return sha256_file(path)
