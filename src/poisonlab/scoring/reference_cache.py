"""Reference log-probs kept on disk and shared by every run on the same base model.

The reference (the base model, adapter off) never changes, yet a sweep asks
for the same values again and again: the clean rows of every training run,
and the held-out pairs, clean and triggered, once per evaluated run. On a CPU
that is minutes per run. Entries are keyed by the exact token ids of prompt
and replies, so a changed chat template, truncation setting or poisoned row is
a new key, never a stale hit.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from poisonlab.io import atomic_write_bytes, cache_dir
from poisonlab.models.encoding import EncodedPair
from poisonlab.scoring.dpo_score import PairLogprobs, pair_logprobs

if TYPE_CHECKING:
    from poisonlab.scoring.trunk_cache import TrunkStates


def pair_key(pair: EncodedPair) -> str:
    """sha256 of the pair's token ids (lengths included, so concatenations cannot collide)."""
    digest = hashlib.sha256()
    for ids in (pair.prompt_ids, pair.chosen_ids, pair.rejected_ids):
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()


class ReferenceCache:
    """A small key -> (chosen, rejected) store in one ``.npz`` file, rewritten atomically.

    Writers merge under a file lock (``logprobs.lock``): two processes sharing the cache
    never corrupt it and never drop each other's entries.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "logprobs.npz"
        self.values: dict[str, tuple[float, float]] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as stored:
                for key, c, r in zip(stored["keys"].tolist(), stored["chosen"], stored["rejected"]):
                    self.values[key] = (float(c), float(r))

    def add(self, new: dict[str, tuple[float, float]]) -> None:
        if not new:
            return
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_suffix(".lock")):
            current = ReferenceCache(self.path.parent).values  # merge with what others wrote meanwhile
            current.update(self.values)
            current.update(new)
            self.values = current
            keys = sorted(current)
            buffer = io.BytesIO()
            np.savez(
                buffer,
                keys=np.array(keys),
                chosen=np.array([current[k][0] for k in keys], dtype=np.float64),
                rejected=np.array([current[k][1] for k in keys], dtype=np.float64),
            )
            atomic_write_bytes(self.path, buffer.getvalue())


SAVE_EVERY_S = 120.0  # a rewrite of the cache file every two minutes of a pass costs nothing next to the pass


class _PeriodicSaver:
    """Adds a pass's finished batches to the cache every ``SAVE_EVERY_S`` seconds, so a pass that is stopped (a
    SmolLM2 study's reference pass is tens of minutes on a CPU) resumes with what it had computed."""

    def __init__(self, cache: ReferenceCache, key_of: dict[str, str]) -> None:
        self.cache, self.key_of, self.every_s = cache, key_of, SAVE_EVERY_S
        self.pending: dict[str, tuple[float, float]] = {}
        self.last = time.monotonic()

    def add(self, values: dict[str, tuple[float, float]]) -> None:
        self.pending.update({self.key_of[pid]: value for pid, value in values.items()})
        if time.monotonic() - self.last >= self.every_s:
            self.save()

    def save(self) -> None:
        self.cache.add(self.pending)
        self.pending, self.last = {}, time.monotonic()


def reference_folder(model_key: str, bf16: bool | str) -> Path:
    """The cache folder of a model's reference values; ``bf16``: a bool, or a ``precision_tag``."""
    tag = bf16 if isinstance(bf16, str) else "bf16" if bf16 else "fp32"
    return cache_dir() / "reference-logprobs" / f"{model_key}-{tag}"


def reference_logprobs(
    model: torch.nn.Module,
    encoded: Sequence[EncodedPair],
    pad_id: int,
    batch_size: int,
    bf16: bool | str,
    model_key: str | None,
    desc: str | None = None,
    trunk: TrunkStates | None = None,
) -> PairLogprobs:
    """The reference's reply log-probs (adapter off), computing only pairs not cached for ``model_key``.

    ``model_key=None`` disables the cache (a model without a stable identity). ``trunk``: the pairs' cached
    frozen-trunk states (the same values up to float rounding, for the top layers' cost).
    """
    if model_key is None:
        return pair_logprobs(model, encoded, pad_id, batch_size, bf16, use_adapter=False, desc=desc, trunk=trunk)
    from poisonlab.hardware import resolve_bf16
    from poisonlab.scoring.logprobs import precision_tag

    device = next(model.parameters()).device.type
    cache = ReferenceCache(reference_folder(model_key, precision_tag(model, resolve_bf16(bf16, device))))
    keys = [pair_key(p) for p in encoded]
    missing = [p for p, k in zip(encoded, keys) if k not in cache.values]
    if missing:
        saver = _PeriodicSaver(cache, {p.id: pair_key(p) for p in missing})
        pair_logprobs(
            model, missing, pad_id, batch_size, bf16, use_adapter=False, desc=desc, trunk=trunk, on_batch=saver.add
        )
        saver.save()
    values = [cache.values[k] for k in keys]
    return PairLogprobs(
        [p.id for p in encoded],
        np.array([v[0] for v in values], dtype=np.float64),
        np.array([v[1] for v in values], dtype=np.float64),
    )
