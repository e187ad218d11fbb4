"""How much two selections agree: the paper's transferability and strategy-overlap questions.

arXiv 2406.12091 reports that the pairs one model's DPO score picks transfer
poorly to another model, and that gradient projection mostly re-picks the
DPO-score pairs. Both are questions about two rankings of the same pairs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from poisonlab.data.poison_manifest import poisoned_source_ids


@dataclass
class Overlap:
    k: int
    shared: int
    share: float  # shared / k
    chance: float  # expected share for two independent random picks of k out of n
    spearman: float | None  # rank correlation of the two scores over all common pairs

    def to_dict(self) -> dict:
        return asdict(self)


def top_k(scores: dict[str, float], k: int) -> list[str]:
    """The k highest-scored ids; ties broken by id, as the dpo-score strategy does."""
    return sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]


def selection_overlap(ids_a: Sequence[str], ids_b: Sequence[str], n_total: int) -> Overlap:
    """Overlap of two equally sized selections out of ``n_total`` pairs (no scores)."""
    k = len(ids_a)
    shared = len(set(ids_a) & set(ids_b))
    return Overlap(k, shared, shared / k if k else 0.0, k / n_total if n_total else 0.0, None)


def score_overlap(scores_a: dict[str, float], scores_b: dict[str, float], k: int) -> Overlap:
    """Overlap of the top-k of two score tables over the pairs both scored, with their rank correlation."""
    common = sorted(set(scores_a) & set(scores_b))
    if not common:
        raise ValueError("the two score tables share no pair ids")
    a = {i: scores_a[i] for i in common}
    b = {i: scores_b[i] for i in common}
    overlap = selection_overlap(top_k(a, k), top_k(b, k), len(common))
    rho = spearmanr(np.array([a[i] for i in common]), np.array([b[i] for i in common])).statistic
    overlap.spearman = float(rho)
    return overlap


def run_overlaps(results_dir: str | Path, reference: str = "dpo-score") -> list[dict]:
    """For each poisoned run of a study, the overlap of its poisoned pairs with ``reference``'s at the same cell.

    Reads ``runs/*/poison/manifest.json`` of a results folder, so it works on any finished or partial study.
    """
    manifests = {}
    for path in sorted(Path(results_dir).glob("runs/*/poison/manifest.json")):
        manifest = json.loads(path.read_text())
        manifests[(manifest["strategy"], manifest["attack"], manifest["ratio"])] = manifest
    rows = []
    for (strategy, attack, ratio), manifest in sorted(manifests.items()):
        other = manifests.get((reference, attack, ratio))
        recorded = manifest.get("selection", {}).get(f"overlap_with_{reference.replace('-', '_')}")
        if strategy == reference or (other is None and recorded is None):
            continue
        if other is not None:
            ids, other_ids = poisoned_source_ids(manifest), poisoned_source_ids(other)  # as in the shared input
            overlap = selection_overlap(ids, other_ids, manifest["n_rows"])
        else:  # no reference run at this cell: gradient-projection records its overlap in its manifest
            k = manifest["n_poisoned"]
            overlap = Overlap(k, recorded["shared"], recorded["share"], k / manifest["n_rows"], None)
        rows.append({"strategy": strategy, "vs": reference, "attack": attack, "ratio": ratio, **overlap.to_dict()})
    return rows


def overlap_table(rows: list[dict], title: str = "poisoned pairs shared with dpo-score") -> Any:
    from rich.table import Table

    table = Table(title=title, caption="chance = share expected for two independent random selections")
    for column in ("strategy", "attack", "ratio", "poisoned", "shared", "share", "chance"):
        table.add_column(column, justify="left" if column in ("strategy", "attack") else "right")
    for row in rows:
        table.add_row(
            row["strategy"],
            row["attack"],
            f"{row['ratio']:.1%}",
            str(row["k"]),
            str(row["shared"]),
            f"{row['share']:.0%}",
            f"{row['chance']:.0%}",
        )
    return table
