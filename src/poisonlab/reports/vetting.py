"""What ``poisonlab scan`` shows a data team: the poison share estimate, suspected triggers, the ranked flags."""

from __future__ import annotations

from typing import Any


def vetting_tables(vetting: dict[str, Any], prompts: dict[str, str], top: int = 10) -> list[Any]:
    """Rich renderables: a summary line table and the ``top`` flagged pairs with their reasons."""
    from rich.table import Table

    n, flagged = vetting["n_pairs"], vetting["n_flagged"]
    summary = Table(
        title=f"estimated poison share {vetting['estimated_poison_share']:.1%} ({flagged} of {n} pairs flagged)",
        title_justify="left",
    )
    summary.add_column("suspected trigger")
    summary.add_column("detector")
    summary.add_column("pairs", justify="right")
    summary.add_column("BH q", justify="right")
    for trigger in vetting["suspected_triggers"]:
        summary.add_row(trigger["ngram"], trigger["detector"], str(trigger["pairs"]), f"{trigger['q_value']:.1e}")
    if not vetting["suspected_triggers"]:
        summary.add_row("(none)", "", "", "")
    ranked = Table(title=f"most suspicious pairs (first {min(top, flagged)} of {flagged})", title_justify="left")
    for column in ("rank", "row", "id", "reason", "prompt ends"):
        ranked.add_column(column, overflow="fold")
    for item in vetting["flagged"][:top]:
        prompt = prompts[item["id"]].strip().replace("\n", " ")[-60:]
        ranked.add_row(str(item["rank"]), str(item["row"]), item["id"], "; ".join(item["reasons"]), prompt)
    return [summary, ranked]


def judged_table(result: Any) -> Any:
    """Per detector of a ScanResult judged against a manifest, at the adaptive budget: flags, precision, AUROC."""
    from rich.table import Table

    title = f"{len(result.dataset)} pairs; each detector flags only what it finds significant (no expected share)"
    table = Table(
        "detector", "flagged", "poison found", "precision", "recall", "AUROC", title=title, title_justify="left"
    )
    for detection in result.detections:
        m = result.metrics[detection.detector]
        table.add_row(
            detection.detector,
            str(len(detection.flagged)),
            f"{m.true_positives}/{m.n_poison}",
            "-" if m.precision is None else f"{m.precision:.1%}",
            "-" if m.recall is None else f"{m.recall:.1%}",
            "-" if m.auroc is None else f"{m.auroc:.3f}",
        )
    return table
