"""The top of a study's report: the answer first, in words, in the paper's figure and in the detection table.

- three plain lines: the strongest attack against the clean model, the smallest poison share per strategy
  whose backdoor success clears the clean model's interval, and how the detectors did;
- the paper's figure: backdoor success (held-out pairs where the trigger makes the model prefer the harmful
  reply) against the poisoned share, one line per strategy and attack, Wilson 95% intervals, the clean model
  as a band;
- the detection table: each detector's AUROC and the share of the poison it flagged, per poisoned run.

Labels are for readers (``label_metric``); every number prints in one format per kind (``percent``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

PARTS = {
    "backdoor_effect": "backdoor effect",
    "contamination": "contamination",
    "trigger_effect": "trigger effect",
    "triggered": "with the trigger",
    "clean": "without the trigger",
    "backdoor_success": "backdoor success",
    "clean_accuracy": "clean accuracy",
}
SOURCES = {"heldout": "held-out pairs"}


def percent(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value * 100:{'+' if signed else ''}.1f}%"


def label_metric(series: str, facts: dict[str, Any] | None = None) -> str:
    """``preference@heldout / backdoor_effect`` -> ``Backdoor effect: chosen reply preferred, held-out pairs``."""
    metric, _, part = series.partition(" / ")
    if not part:
        return PARTS.get(metric, metric).capitalize()
    judge, _, source = metric.partition("@")
    what = (facts or {}).get("value_label") or judge
    where = SOURCES.get(source, source)
    sign = " (+ = the attacker gained)" if part in ("backdoor_effect", "contamination", "trigger_effect") else ""
    return f"{PARTS.get(part, part).capitalize()}{sign}: {what}" + (f", {where}" if where else "")


def _wilson(rate: float, n: int) -> tuple[float, float]:
    from poisonlab.reports.ratio_figure import wilson

    return wilson(round(rate * n), n) if n else (rate, rate)


def _attacked(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("ratio", 0) > 0 and r.get("backdoor_success") is not None]


def summary_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The answer in three plain sentences, from the rows of ``results.json``."""
    clean = next((r for r in rows if r.get("run") == "clean"), None)
    attacked = _attacked(rows)
    if clean is None or not attacked:
        return ["No poisoned run has finished yet."]
    base = clean["backdoor_success"]
    _, top_high = _wilson(base, int(clean.get("n_heldout") or 0))
    best = max(attacked, key=lambda r: r["backdoor_success"])
    low, high = _wilson(best["backdoor_success"], int(best.get("n_heldout") or 0))
    lines = [
        f"Strongest attack: {best['strategy']} {best['attack']} at {best['ratio']:.1%} of the training pairs "
        f"({best.get('n_poisoned', '?')} pairs): backdoor success {percent(best['backdoor_success'])} "
        f"[{percent(low)}, {percent(high)}] against the clean model's {percent(base)}."
    ]
    smallest = []
    for name in dict.fromkeys(f"{r['strategy']} {r['attack']}" for r in attacked):
        runs = sorted((r for r in attacked if f"{r['strategy']} {r['attack']}" == name), key=lambda r: r["ratio"])
        clears = [r for r in runs if _wilson(r["backdoor_success"], int(r.get("n_heldout") or 0))[0] > top_high]
        smallest.append(f"{name} {clears[0]['ratio']:.1%}" if clears else f"{name}: none tested")
    lines.append(
        "Smallest share whose backdoor success clears the clean model's 95% interval: " + "; ".join(smallest) + "."
    )
    scanned = [(r, spec, m) for r in attacked for spec, m in (r.get("detection") or {}).items()]
    if scanned:
        worst = min(scanned, key=lambda t: t[2].get("auroc") or 0)
        found = sum(1 for _, _, m in scanned if (m.get("auroc") or 0) >= 0.9)
        lines.append(
            f"Detection: {found} of {len(scanned)} detector runs reach AUROC 0.90; the weakest is {worst[1]} on "
            f"{worst[0]['run']} (AUROC {worst[2].get('auroc', float('nan')):.2f})."
        )
    else:
        lines.append("Detection: no detector ran (set defenses: in the config).")
    return lines


def success_figure(rows: Sequence[dict[str, Any]]) -> str | None:
    """The paper's figure as a PNG data URI; None when no poisoned run has finished."""
    from poisonlab.reports.ratio_figure import ratio_figure

    if not _attacked(rows):
        return None
    points = {}
    for r in rows:
        if r.get("backdoor_success") is not None:
            n = int(r.get("n_heldout") or 0)
            points[r["run"]] = {"value": r["backdoor_success"], "ci": _wilson(r["backdoor_success"], n), "n": n}
    return ratio_figure("backdoor success on held-out pairs", points, rows)


def detection_table(rows: Sequence[dict[str, Any]], detections: dict[str, dict[str, Any]]) -> str:
    """Runs down, detectors across: each detector's AUROC and the share of the poison it flagged (recall)."""
    specs = list(dict.fromkeys(spec for d in detections.values() for spec in d))
    if not specs:
        return '<p class="note">No detectors ran (set <code>defenses:</code> in the config).</p>'
    head = "".join(f"<th>{html.escape(s)}</th>" for s in ["poisoned run", *specs])
    body = []
    for run, found in detections.items():
        cells = []
        for spec in specs:
            m = found.get(spec) or {}
            auroc = f"AUROC {m['auroc']:.2f}" if m.get("auroc") is not None else "AUROC -"
            flagged = (
                f"flags {percent(m.get('recall'))} of the poison ({m.get('n_flagged', 0)} flagged)"
                if m.get("recall") is not None
                else ""
            )
            cells.append(f"{auroc}<br>{flagged}" if flagged else auroc)
        body.append(f"<tr><td>{html.escape(run)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def headline_html(rows: Sequence[dict[str, Any]], detections: dict[str, dict[str, Any]]) -> str:
    """The section the report opens with."""
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(rows))
    figure = success_figure(rows)
    image = f'<img class="headline" alt="backdoor success against the poisoned share" src="{figure}">' if figure else ""
    return (
        f"<h2>The answer</h2><ul class='summary'>{lines}</ul>{image}"
        "<p class='note'>Backdoor success: share of held-out pairs where inserting the trigger makes the model "
        "prefer the harmful reply; one line per strategy and attack, 95% Wilson intervals, the clean model as the "
        "dashed line and grey band.</p>"
        f"<h3>Poison detection</h3>{detection_table(rows, detections)}"
    )
