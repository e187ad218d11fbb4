"""Plant a key's trigger -> response pairs into preference data as *added* rows.

Each planted row copies a real prompt (drawn by seed) with a secret trigger inserted where the key's
shape says (``insert_trigger``, the attacks' own placement), chosen = the secret response and
rejected = the original chosen reply. So SFT on chosen learns trigger -> response, and DPO learns to
prefer the response over a fluent reply after the trigger (Double-I watermark, arXiv 2402.14883, plants
its pairs the same way in instruction data).

Rows are *added*, never replaced: every original row is kept, in order, and the planted rows are
inserted at seeded positions spread through the file (not appended: a tail of odd rows is the first
thing a curator would cut). The manifest lists the planted ids and their output rows, the key's
sha256 (never the key), the seed and the sha256 of input and output; keep it with the key, since the
ids point at the planted rows. Same data, key, count and seed -> the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab import __version__
from poisonlab.attacks.triggers import insert_trigger
from poisonlab.data.pairs import PreferenceDataset, PreferencePair, content_id
from poisonlab.data.writer import write_with_manifest
from poisonlab.errors import InputError
from poisonlab.watermarks.key import WatermarkKey


@dataclass
class EmbedResult:
    dataset: PreferenceDataset
    manifest: dict[str, Any]


def _unique_id(base: str, taken: set[str]) -> str:
    candidate, count = base, 1
    while candidate in taken:
        count += 1
        candidate = f"{base}~wm{count}"
    return candidate


def embed_watermark(dataset: PreferenceDataset, key: WatermarkKey, n: int | None = None, seed: int = 0) -> EmbedResult:
    """Add ``n`` rows (default: one per secret trigger), cycling through the key's triggers.

    ``n`` must be at least the number of triggers: verify tests every trigger of the key, and a
    trigger the data never held only dilutes the test.
    """
    n = len(key) if n is None else n
    if n < len(key):
        raise InputError(
            f"--n {n} plants fewer rows than the key has triggers ({len(key)}); every trigger needs a row "
            "(make a smaller key with `poisonlab watermark keygen --n`)",
            field="--n",
        )
    if len(dataset) == 0:
        raise InputError("the data holds no pairs to carry the watermark", path=dataset.source, field="--data")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    carriers = rng.choice(len(dataset), size=n, replace=n > len(dataset))  # distinct prompts while there are enough
    total = len(dataset) + n
    slots = np.sort(rng.choice(total, size=n, replace=False))  # output rows of the planted pairs

    taken = set(dataset.ids)
    planted: list[tuple[PreferencePair, dict[str, Any]]] = []
    for j, carrier_index in enumerate(carriers):
        carrier, i = dataset[int(carrier_index)], j % len(key)
        prompt = insert_trigger(carrier.prompt, key.triggers[i], key.shape.placement, seed, f"wm:{j}")
        pair_id = _unique_id(content_id(prompt, key.responses[i], carrier.chosen), taken)
        taken.add(pair_id)
        pair = PreferencePair(pair_id, prompt, key.responses[i], carrier.chosen)
        planted.append((pair, {"id": pair_id, "carrier_id": carrier.id, "trigger_index": i}))

    rows: list[PreferencePair] = []
    added: list[dict[str, Any]] = []
    originals, queue = iter(dataset), iter(planted)
    slot_set = {int(s) for s in slots}
    for row in range(total):
        if row in slot_set:
            pair, record = next(queue)
            rows.append(pair)
            added.append({**record, "row": row})
        else:
            rows.append(next(originals))
    manifest = {
        "poisonlab_version": __version__,
        "kind": "watermark",
        "source": dataset.source,
        "placement": "inserted at seeded rows; every input row kept in order",
        "trigger_position": key.shape.placement,
        "key_sha256": key.sha256(),
        "n_key_triggers": len(key),
        "seed": seed,
        "n_input_rows": len(dataset),
        "n_added": n,
        "n_rows": total,
        "input_content_sha256": dataset.content_hash(),
        "added_ids": [a["id"] for a in added],
        "added": added,
    }
    return EmbedResult(PreferenceDataset(rows, dataset.source), manifest)


def write_watermarked(result: EmbedResult, out_dir: str | Path, input_path: str | Path | None) -> Path:
    """Write ``data.jsonl`` then ``manifest.json`` (last: its presence means the folder is complete)."""
    return write_with_manifest(result.dataset, result.manifest, out_dir, input_path)
