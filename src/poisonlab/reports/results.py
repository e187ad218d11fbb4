"""Results tables (terminal, CSV, JSON) and the backdoor-success plot."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_bytes, atomic_write_figure, atomic_write_json, atomic_write_text


def _rows(results: Sequence[Any], flat: bool = True) -> list[dict[str, Any]]:
    """Result rows with the two differences that matter, both against the clean model.

    The untrained base model's row (``run == "base"``) has generation metrics only; it is never a clean twin.
    """
    rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in results]
    cleans = [r for r in rows if r["ratio"] == 0 and r.get("run") != "base"]
    by_position = {r.get("trigger_position"): r for r in reversed(cleans)}  # placement rule: one clean row each
    for row in rows:
        clean = by_position.get(row.get("trigger_position"), cleans[0] if cleans else None)
        if row.get("run") == "base":
            clean = None
        row["backdoor_lift"] = round(row["backdoor_success"] - clean["backdoor_success"], 4) if clean else None
        row["clean_accuracy_change"] = round(row["clean_accuracy"] - clean["clean_accuracy"], 4) if clean else None
        for spec, metrics in ((row.pop("detection", None) or {}) if flat else {}).items():  # flat, for the CSV
            row[f"auroc {spec}"], row[f"recall {spec}"] = metrics["auroc"], metrics["recall"]
            if "backdoor_success_after" in metrics:
                row[f"backdoor after {spec}"] = metrics["backdoor_success_after"]
                row[f"clean acc. after {spec}"] = metrics["clean_accuracy_after"]
        for key, metric in ((row.pop("metrics", None) or {}) if flat else {}).items():  # "<judge>@<set> <part>"
            for part in PARTS:
                if part in metric:
                    row[f"{key} {part}"] = metric[part]["value"]
                    row[f"{key} {part} ci_low"], row[f"{key} {part} ci_high"] = metric[part]["ci"]
                    if "p_value" in metric[part]:
                        row[f"{key} {part} p"] = metric[part]["p_value"]
    return rows


PARTS = ("clean", "triggered", "trigger_effect", "contamination", "backdoor_effect")


def scan_table(result: Any, budget: int) -> Any:
    """One row per detector of a ScanResult: how many pairs it flags and, with the truth, how well it did."""
    from rich.table import Table

    title = f"{len(result.dataset)} pairs; loss and spectral-signature flag the top {budget}, clustering its smaller "
    table = Table("detector", "flagged", title=title + "cluster if small enough", title_justify="left")
    if result.metrics:
        for column in ("poison found", "precision", "recall", "AUROC"):
            table.add_column(column, justify="right")
    for detection in result.detections:
        row = [detection.detector, str(len(detection.flagged))]
        if result.metrics:
            m = result.metrics[detection.detector]
            row += [
                f"{m.true_positives}/{m.n_poison}",
                "-" if m.precision is None else f"{m.precision:.1%}",
                "-" if m.recall is None else f"{m.recall:.1%}",
                "-" if m.auroc is None else f"{m.auroc:.3f}",
            ]
        table.add_row(*row)
    return table


def detection_table(results: Sequence[Any], title: str = "poison detection") -> Any | None:
    """Per poisoned run and detector: AUROC of the scores and the share of the poison flagged; None if no scans."""
    from rich.table import Table

    scanned = [r for r in results if getattr(r, "detection", None)]
    if not scanned:
        return None
    specs = list(dict.fromkeys(spec for r in scanned for spec in r.detection))
    caption = "AUROC (0.5 = chance) / share of the poison flagged"
    if any("backdoor_success_after" in m for r in scanned for m in r.detection.values()):
        caption += " -> backdoor success after training without the flagged pairs"
    table = Table(title=title, caption=caption)
    table.add_column("run")
    for spec in specs:
        table.add_column(spec.replace(":", "\n"), justify="right")
    for r in scanned:
        cells = []
        for spec in specs:
            m = r.detection.get(spec)
            auroc = "-" if not m or m["auroc"] is None else f"{m['auroc']:.2f}"
            after = f" -> {m['backdoor_success_after']:.0%}" if m and "backdoor_success_after" in m else ""
            cells.append("" if not m else f"{auroc} / {m['recall']:.0%}{after}")
        table.add_row(r.run, *cells)
    return table


def _signed(value: float | None, row: dict[str, Any]) -> str:
    return "" if value is None or row["ratio"] == 0 else f"{value:+.1%}"


def results_table(results: Sequence[Any], title: str = "poisonlab results") -> Any:
    """A rich Table: one row per run; the backdoor's lift and the clean-accuracy change are vs the clean model."""
    from rich.table import Table

    caption = "Δ: difference from the clean model trained the same way"
    if any(row.get("same_data_as") for row in _rows(results)):
        caption += "\n†: poisoned exactly the same pairs as another run, whose adapter it reused (same_data_as)"
    table = Table(title=title, caption=caption)
    columns = ("strategy", "attack", "ratio", "poisoned", "clean acc.", "Δ clean acc.", "backdoor success")
    for column in (*columns, "Δ backdoor", "held-out", "min"):
        table.add_column(column, justify="left" if column in ("strategy", "attack") else "right")
    for row in _rows(results):  # the run's name is strategy-attack-ratio: no column of its own
        if row.get("run") == "base":
            continue
        clean = row["ratio"] == 0
        label = row["strategy"]
        if clean:  # under a placement rule the clean model is evaluated once per placement: clean@<position>
            label = "clean model" if row.get("run", "clean") == "clean" else f"clean model ({row['trigger_position']})"
        elif row.get("same_data_as"):
            label += " †"
        table.add_row(
            label,
            "" if clean else row["attack"],
            f"{row['ratio']:.1%}",
            str(row["n_poisoned"]),
            f"{row['clean_accuracy']:.1%}",
            _signed(row["clean_accuracy_change"], row),
            f"{row['backdoor_success']:.1%}",
            _signed(row["backdoor_lift"], row),
            str(row["n_heldout"]),
            f"{row['minutes']:.1f}",
        )
    return table


def write_results(results: Sequence[Any], out: Path) -> None:
    """results.json (nested: every metric with its interval), results.csv (flat), and the figures."""
    rows = _rows(results)
    atomic_write_json(out / "results.json", _rows(results, flat=False))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    write_parquet(results, out)
    trained = [r for r in rows if r.get("run") != "base"]
    if any(r["attack"] == "backdoor" for r in trained):
        plot_backdoor_success(trained, out / "backdoor_success.png")
    if any(r["attack"] == "label-flip" for r in trained):
        plot_clean_accuracy(trained, out / "clean_accuracy.png")
    nested = _rows(results, flat=False)
    for key in metric_keys(nested):
        if any("backdoor_effect" in (r.get("metrics") or {}).get(key, {}) for r in nested):
            plot_effects(nested, key, out / f"effects_{_file_name(key)}.png")
    if any(r.get("detection") for r in nested):
        plot_detection(nested, out / "detection.png")


def _file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key.replace("@", "_at_"))


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted columns: {"metrics": {"refusal": {"clean": {"value": 1}}}} -> metrics.refusal.clean.value
    (lists, such as intervals, stay lists)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def study_parameters(out: Path) -> dict[str, Any]:
    """The settings every run of the study shares (config.yaml), training resolved from its preset."""
    import yaml

    from poisonlab.training.config import DPOTrainingConfig

    path = out / "config.yaml"
    if not path.exists():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    study = {k: config.get(k) for k in ("name", "model", "data", "seed", "preset", "trigger") if k in config}
    try:
        training = DPOTrainingConfig.from_preset(
            config.get("preset", "cpu"), **{"seed": config.get("seed", 0), **(config.get("training") or {})}
        ).model_dump(mode="json")
    except ValueError:  # a config written by another version: keep what it says
        training = config.get("training") or {}
    return {f"study.{k}": v for k, v in study.items()} | flatten(training, "training.")


def _column(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds in one column: keep each value as JSON text
        return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())


def write_parquet(results: Sequence[Any], out: Path) -> Path:
    """results.parquet: one row per run with the study's parameters and every metric, nested dicts flattened
    into dotted columns, for pandas (``pd.read_parquet``) or DuckDB (``SELECT * FROM 'results.parquet'``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parameters = study_parameters(out)
    rows = [parameters | flatten(row) for row in _rows(results, flat=False)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.table({name: _column([row.get(name) for row in rows]) for name in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path = out / "results.parquet"
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def metric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every metric some run has, in first-seen order ("refusal@advbench", "preference@heldout", ...)."""
    return list(dict.fromkeys(key for row in rows for key in (row.get("metrics") or {})))


def _label(row: dict[str, Any]) -> str:
    if row.get("run") == "base":
        return "base model (untrained)"
    if row["ratio"] == 0:
        return "clean model" if row.get("run", "clean") == "clean" else f"clean model ({row['trigger_position']})"
    return f"{row['strategy']} {row['attack']} {row['ratio']:.1%}" + (" †" if row.get("same_data_as") else "")


def metric_tables(results: Sequence[Any]) -> list[Any]:
    """One rich Table per metric: each run's value without and with the trigger, and the effects vs its twin."""
    from rich.table import Table

    from poisonlab.reports.evaluation import EFFECTS_NOTE, fmt, with_qvalues

    rows = _rows(results, flat=False)
    tables = []
    for key in metric_keys(rows):
        facts = next(r["metrics"][key]["judge"] for r in rows if key in (r.get("metrics") or {}))
        kind = facts["kind"]
        extra = f"; {facts['heldout_accuracy']:.0%} held-out accuracy" if "heldout_accuracy" in facts else ""
        table = Table(
            title=f"{key}: {facts['value_label']} (harmful when {facts['harmful_when']}{extra})",
            caption=EFFECTS_NOTE + ". contamination = harm without the trigger beyond the clean model's; "
            "backdoor effect = the trigger's effect beyond its effect on the clean model",
            title_justify="left",
        )
        for column in ("run", "n", "no trigger", "trigger", "trigger effect", "contamination", "backdoor effect"):
            table.add_column(column, justify="left" if column == "run" else "right")
        shown = [r for r in rows if (r.get("metrics") or {}).get(key)]
        for row, m in zip(shown, with_qvalues([r["metrics"][key] for r in shown])):
            table.add_row(
                _label(row),
                str(m["clean"]["n"]),
                fmt(m["clean"], kind),
                fmt(m.get("triggered"), kind),
                fmt(m.get("trigger_effect"), kind, True),
                fmt(m.get("contamination"), kind, True),
                fmt(m.get("backdoor_effect"), kind, True),
            )
        tables.append(table)
    return tables


def _axes(title: str, ylabel: str, percent: bool) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("poisoned share of training pairs (%)")
    ax.set_ylabel(ylabel)
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    return fig, ax


def plot_backdoor_success(rows: list[dict[str, Any]], path: Path) -> None:
    """Backdoor success against poison ratio, one line per strategy (backdoor runs); the clean model dashed."""
    _plot_metric(rows, path, "backdoor", "backdoor_success", "backdoor success", "backdoor success on held-out pairs")


def plot_clean_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """Clean preference accuracy against poison ratio for label-flip runs: what flipped labels cost."""
    _plot_metric(
        rows,
        path,
        "label-flip",
        "clean_accuracy",
        "clean preference accuracy",
        "clean preference accuracy on held-out pairs under label flips",
    )


def _plot_metric(rows: list[dict[str, Any]], path: Path, attack: str, metric: str, label: str, title: str) -> None:
    clean = next((r for r in rows if r["ratio"] == 0), None)
    n = next((r["n_heldout"] for r in rows if r.get("n_heldout")), 0)
    fig, ax = _axes(f"{title} (n={n})", label, percent=True)
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row["ratio"] > 0 and row["attack"] == attack:
            series.setdefault(row["strategy"], []).append((row["ratio"], row[metric]))
    values = [clean[metric]] if clean else []
    for strategy, points in sorted(series.items()):
        points.sort()
        values += [p[1] for p in points]
        ax.plot([p[0] * 100 for p in points], [p[1] for p in points], marker="o", label=f"{strategy} / {attack}")
    if clean:  # drawn on top and thick enough to see at 0% or 100%
        ax.axhline(clean[metric], color="black", linestyle="--", linewidth=1.5, label="clean model", zorder=3)
    ax.set_ylim(min(-0.05, min(values, default=0) - 0.05), max(1.05, max(values, default=1) + 0.05))
    ax.legend(fontsize=8, loc="best")
    atomic_write_figure(fig, path)


def plot_effects(rows: list[dict[str, Any]], key: str, path: Path) -> None:
    """The paper's central figure, judged by what the model says: backdoor effect and contamination vs ratio.

    One line per strategy and attack, with 95% intervals as error bars; zero (no effect) as a dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    facts = next(r["metrics"][key]["judge"] for r in rows if key in (r.get("metrics") or {}))
    percent = facts["kind"] == "rate"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, part, name in (
        (axes[0], "backdoor_effect", "backdoor effect"),
        (axes[1], "contamination", "contamination"),
    ):
        series: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for row in rows:
            m = (row.get("metrics") or {}).get(key, {})
            if row["ratio"] > 0 and part in m:
                series.setdefault(f"{row['strategy']} / {row['attack']}", []).append((row["ratio"], m[part]))
        for label, points in sorted(series.items()):
            points.sort(key=lambda p: p[0])
            x = [p[0] * 100 for p in points]
            y = [p[1]["value"] for p in points]
            err = [[v - p[1]["ci"][0] for v, p in zip(y, points)], [p[1]["ci"][1] - v for v, p in zip(y, points)]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{name}: {key}", fontsize=10)
        ax.set_xlabel("poisoned share of training pairs (%)")
        ax.grid(alpha=0.3)
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes[0].set_ylabel(textwrap.fill(f"{facts['value_label']}: effect (+ = the attacker gained)", 45))
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "backdoor effect = the trigger's effect beyond its effect on the clean model; contamination = harm "
        "without the trigger (95% intervals; + = the attacker gained)",
        fontsize=9,
    )
    atomic_write_figure(fig, path)


def plot_detection(rows: list[dict[str, Any]], path: Path) -> None:
    """AUROC of each detector on each poisoned run (0.5 = chance), as grouped bars."""
    import numpy as np

    scanned = [r for r in rows if r.get("detection")]
    specs = list(dict.fromkeys(spec for r in scanned for spec in r["detection"]))
    fig, ax = _axes("poison detection: AUROC of each detector's suspicion scores", "AUROC", percent=False)
    width = 0.8 / max(1, len(specs))
    x = np.arange(len(scanned))
    for k, spec in enumerate(specs):
        values = [(r["detection"].get(spec) or {}).get("auroc") for r in scanned]
        ax.bar(x + k * width, [v if v is not None else 0 for v in values], width, label=spec)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x + width * (len(specs) - 1) / 2, [r["run"] for r in scanned], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    atomic_write_figure(fig, path)
