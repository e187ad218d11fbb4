"""Seeded train / held-out split: held-out pairs never see poison or training."""

from __future__ import annotations

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.wording import count_or_share, plural


def train_heldout_split(
    dataset: PreferenceDataset, heldout: float | int, seed: int
) -> tuple[PreferenceDataset, PreferenceDataset]:
    """Split off ``heldout`` pairs (a fraction in (0, 1) or a count); both parts keep input order."""
    n = len(dataset)
    if heldout >= 1 and not float(heldout).is_integer():
        raise InputError(f"a held-out count must be a whole number of pairs, got {heldout:g}", field="heldout")
    n_heldout = round(heldout * n) if heldout < 1 else int(heldout)
    if not 0 < n_heldout < n:
        size = count_or_share(heldout) + (f" ({plural(n_heldout, 'pair')})" if heldout < 1 else "")
        raise InputError(
            f"held-out size {size} leaves no pairs for {'training' if n_heldout else 'evaluation'} "
            f"(the data has {plural(n, 'pair')})",
            field="heldout",
        )
    rng = np.random.default_rng([seed, 0x5EED])
    picked = set(rng.permutation(n)[:n_heldout].tolist())
    train = [p for i, p in enumerate(dataset.pairs) if i not in picked]
    held = [p for i, p in enumerate(dataset.pairs) if i in picked]
    return PreferenceDataset(train, dataset.source), PreferenceDataset(held, dataset.source)
