"""The mitigation table: each poisoned run, unmitigated and after each mitigation, side by side.

One row per (run, mitigation): what it removed (poison among it), clean accuracy and backdoor success on
the held-out pairs, and the backdoor effect and contamination of one metric against the clean twin, with
95% intervals. ``none`` is the run as trained; ``oracle`` (if run) is the floor a removal can reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from poisonlab.reports.evaluation import EFFECTS_NOTE, fmt, with_qvalues


def _removed(entry: dict[str, Any]) -> str:
    if "n_removed" in entry:
        return f"{entry['n_removed']} ({entry['n_poison_removed']} poison)"
    if entry.get("stripped") is not None:
        return "strips " + (", ".join(repr(p) for p in entry["stripped"]) or "nothing")
    if "loss" in entry:
        return f"loss {entry['loss']}" + (f", eps {entry['label_smoothing']:g}" if entry["label_smoothing"] else "")
    return ""


def mitigation_rows(results: Sequence[Any], key: str) -> list[list[str]]:
    """Rows of the table for the metric ``key`` (e.g. ``preference@heldout``, ``refusal@advbench``)."""
    rows: list[list[str]] = []
    found = [(result, name, entry) for result in results for name, entry in _variants(result)]
    metrics = with_qvalues([(entry.get("metrics") or {}).get(key) for _, _, entry in found])
    for (result, name, entry), metric in zip(found, metrics):
        kind = (metric.get("judge") or {}).get("kind", "rate")
        rows.append(
            [
                result.run,
                name,
                _removed(entry),
                f"{entry['clean_accuracy']:.1%}",
                f"{entry['backdoor_success']:.1%}",
                fmt(metric.get("backdoor_effect"), kind, signed=True),
                fmt(metric.get("contamination"), kind, signed=True),
            ]
        )
    return rows


def _variants(result: Any) -> list[tuple[str, dict[str, Any]]]:
    """``none`` (the run as trained) and each mitigation of a poisoned run; nothing for unmitigated runs."""
    if not result.mitigations:
        return []
    none = {
        "clean_accuracy": result.clean_accuracy,
        "backdoor_success": result.backdoor_success,
        "metrics": result.metrics,
    }
    return [("none", none), *result.mitigations.items()]


HEADER = ["run", "mitigation", "removed", "clean acc.", "backdoor success", "backdoor effect", "contamination"]


def mitigation_table(results: Sequence[Any], key: str = "preference@heldout") -> Any:
    """A rich Table of :func:`mitigation_rows`; None when no run has mitigations."""
    from rich.table import Table

    rows = mitigation_rows(results, key)
    if not rows:
        return None
    table = Table(
        *HEADER,
        title=f"mitigations ({key}: effects against the clean twin)",
        caption=EFFECTS_NOTE + "; none = the poisoned run as trained",
        title_justify="left",
    )
    for row in rows:
        table.add_row(*row)
    return table
