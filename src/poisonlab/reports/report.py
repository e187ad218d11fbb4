"""``report.html``: one self-contained page a person opens to see what a study found.

Everything is read from the results folder (results.json, config.yaml, runs/*/generations), so the page
can be rebuilt for any finished or half-finished study. Figures are PNGs embedded as base64 data URIs and
the page loads no script or stylesheet, so it can be mailed or archived as one file.

Metrics: rows that carry a ``metrics`` dict ({name: {"clean", "triggered", "trigger_effect",
"backdoor_effect", "contamination": {"value", "ci", "n"}}}) get one figure per metric and part; older rows
(clean_accuracy and backdoor_success only) get those two, with 95% Wilson intervals over the held-out pairs.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from poisonlab.io import atomic_write_text
from poisonlab.reports.headline import PARTS, headline_html, label_metric
from poisonlab.reports.page import PAGE_HEAD, examples_html, read_generations, side_by_side, table
from poisonlab.reports.ratio_figure import ratio_figure, wilson

# The parts of a metric plotted against the poison ratio, in this order, when the rows carry them.
FIGURE_PARTS = ("backdoor_effect", "contamination", "trigger_effect", "triggered", "clean")


def metric_series(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per plotted quantity ("metric / part"), per run: {"value", "ci", "n"}, from whatever the rows hold."""
    series: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        for name, parts in (row.get("metrics") or {}).items():
            for part in FIGURE_PARTS:
                point = parts.get(part) if isinstance(parts, dict) else None
                if isinstance(point, dict) and point.get("value") is not None:
                    series.setdefault(f"{name} / {part}", {})[row["run"]] = point
    if series:  # metric by metric, the backdoor's effect first
        names = list(dict.fromkeys(key.split(" / ")[0] for key in series))
        order = {f"{n} / {part}": (i, j) for i, n in enumerate(names) for j, part in enumerate(FIGURE_PARTS)}
        return {key: series[key] for key in sorted(series, key=order.__getitem__)}
    for field in ("backdoor_success", "clean_accuracy"):  # the fallback: preference metrics on held-out pairs
        for row in rows:
            if row.get(field) is not None:
                n = int(row.get("n_heldout") or 0)
                ci = wilson(round(row[field] * n), n) if n else None
                series.setdefault(field, {})[row["run"]] = {"value": row[field], "ci": ci, "n": n}
    return series


DETECTION_KEYS = ("auroc", "recall", "precision", "n_flagged", "backdoor_success_after", "clean_accuracy_after")
RUN_COLUMNS = (
    "run",
    "strategy",
    "attack",
    "ratio",
    "trigger_position",
    "n_poisoned",
    "n_heldout",
    "clean_accuracy",
    "backdoor_success",
    "same_data_as",
    "minutes",
)

PAGE = (
    PAGE_HEAD.replace("{figure_width}", "36em")
    + """<h1>{title}</h1>
<p class="note">{summary}</p>
{headline}
<h2>Every measure against the poisoned share</h2>
<p class="note">One line per selection strategy and attack (drawn slightly apart where they coincide);
error bars and the grey band (the clean model) are 95% intervals. Effects are signed so that + means the
attacker gained: the backdoor effect is the trigger's effect beyond its effect on the clean model,
contamination the harm without the trigger.</p>
<div class="figures">{figures}</div>
<h2>Figures of the results folder</h2>
<div class="figures">{folder_figures}</div>
<h2>Poison detection, in full</h2>
{detection}
<h2>Mitigations</h2>
{mitigations}
<h2>Example generations</h2>
{examples}
<h2>Every run</h2>
{runs}
<h2>Study settings</h2>
{settings}
</body></html>
"""
)


def _part(series: str) -> str:
    """The y-axis of a metric's figure: the part (``backdoor effect``), the title says of what."""
    return PARTS.get(series.rpartition(" / ")[2], series)


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _detection(out: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    """A run's detector summaries: results.json flattens them, the run's own result.json keeps them whole."""
    if row.get("detection"):
        return row["detection"]
    path = out / "runs" / row["run"] / "result.json"
    return json.loads(path.read_text()).get("detection") if path.exists() else None


def build_report(out: Path) -> str:
    """The HTML text of the report of the study in ``out``."""
    out = Path(out)
    rows = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else []
    config = yaml.safe_load((out / "config.yaml").read_text()) if (out / "config.yaml").exists() else {}
    title = f"poisonlab report: {config.get('name', out.name)}"
    summary = (
        f"{len(rows)} runs of model {config.get('model', '?')} on {config.get('data', '?')}, seed "
        f"{config.get('seed', '?')}; results folder {out.resolve()}."
    )
    facts = {k: m.get("judge") for r in rows for k, m in (r.get("metrics") or {}).items() if isinstance(m, dict)}
    labelled = {name: label_metric(name, facts.get(name.partition(" / ")[0])) for name in metric_series(rows)}
    figures = "".join(
        f'<img alt="{html.escape(labelled[name])}" src="{ratio_figure(labelled[name], points, rows, _part(name))}">'
        for name, points in metric_series(rows).items()
    )
    folder_figures = "".join(
        f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{_base64(path)}">'
        for path in sorted(out.glob("*.png"))
    )
    detections = {r["run"]: d for r in rows if r.get("ratio", 0) > 0 and (d := _detection(out, r))}
    detection_rows = [
        (r["run"], spec, *(m.get(k) for k in DETECTION_KEYS))
        for r in rows
        for spec, m in (_detection(out, r) or {}).items()
    ]
    header = ("run", "detector", "AUROC", "recall", "precision", "flagged", "backdoor after", "clean acc. after")
    shown = [i for i in range(len(header)) if any(row[i] is not None for row in detection_rows)]  # no empty columns
    detection = (
        table([header[i] for i in shown], [[row[i] for i in shown] for row in detection_rows])
        if detection_rows
        else '<p class="note">No detectors ran (set <code>defenses:</code> in the config).</p>'
    )
    sets = ((config.get("evaluation") or {}).get("prompt_sets")) or [{}]
    folders = {r["run"]: out / ("base" if r["run"] == "base" else f"runs/{r['run']}") for r in rows}
    examples = side_by_side(read_generations(folders, sets[0].get("name")), [r["run"] for r in rows])
    from types import SimpleNamespace

    from poisonlab.reports.mitigation import HEADER, mitigation_rows

    with_mitigations = [SimpleNamespace(**r) for r in rows if r.get("mitigations")]
    mitigations = "".join(
        f"<h3>{html.escape(key)}</h3>" + table(HEADER, body)
        for key in dict.fromkeys(k for r in with_mitigations for k in (r.metrics or {}))
        if (body := mitigation_rows(with_mitigations, key))
    )
    columns = [c for c in RUN_COLUMNS if any(c in r for r in rows)]
    runs = table(columns, [[r.get(c) for c in columns] for r in rows])
    settings = table(("setting", "value"), [(k, v) for k, v in config.items()]) if config else ""
    return PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        headline=headline_html(rows, detections),
        figures=figures or '<p class="note">No finished runs yet.</p>',
        folder_figures=folder_figures or '<p class="note">No figures in the folder yet.</p>',
        detection=detection,
        mitigations=mitigations or '<p class="note">No mitigations ran (set <code>mitigations:</code>).</p>',
        examples=examples_html(examples),
        runs=runs,
        settings=settings,
    )


def write_report(out: str | Path) -> Path:
    """Write ``out/report.html`` (atomically) and return its path; a lifecycle study gets its own page."""
    path = Path(out) / "report.html"
    if (Path(out) / "lifecycle.json").exists():
        from poisonlab.reports.lifecycle import lifecycle_page

        atomic_write_text(path, lifecycle_page(Path(out)))
    else:
        atomic_write_text(path, build_report(Path(out)))
    return path
