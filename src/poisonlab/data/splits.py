"""Seeded train / held-out split: held-out pairs never see poison or training."""

from __future__ import annotations

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError


def train_heldout_split(
    dataset: PreferenceDataset, heldout: float | int, seed: int
) -> tuple[PreferenceDataset, PreferenceDataset]:
    """Split off ``heldout`` pairs (a fraction in (0, 1) or a count); both parts keep input order."""
    n = len(dataset)
    n_heldout = round(heldout * n) if isinstance(heldout, float) and heldout < 1 else int(heldout)
    if not 0 < n_heldout < n:
        raise InputError(f"held-out size {heldout!r} leaves no pairs for training or evaluation (dataset has {n})")
    rng = np.random.default_rng([seed, 0x5EED])
    picked = set(rng.permutation(n)[:n_heldout].tolist())
    train = [p for i, p in enumerate(dataset.pairs) if i not in picked]
    held = [p for i, p in enumerate(dataset.pairs) if i in picked]
    return PreferenceDataset(train, dataset.source), PreferenceDataset(held, dataset.source)
