"""Results tables (terminal, CSV, JSON) and the backdoor-success plot."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poisonlab.io import atomic_write_bytes, atomic_write_json, atomic_write_text


def _rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Result rows with the two differences that matter, both against the clean model."""
    rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in results]
    cleans = [r for r in rows if r["ratio"] == 0]
    by_position = {r.get("trigger_position"): r for r in reversed(cleans)}  # placement rule: one clean row each
    for row in rows:
        clean = by_position.get(row.get("trigger_position"), cleans[0] if cleans else None)
        row["backdoor_lift"] = round(row["backdoor_success"] - clean["backdoor_success"], 4) if clean else None
        row["clean_accuracy_change"] = round(row["clean_accuracy"] - clean["clean_accuracy"], 4) if clean else None
        for spec, metrics in (row.pop("detection", None) or {}).items():  # flat, for the CSV
            row[f"auroc {spec}"], row[f"recall {spec}"] = metrics["auroc"], metrics["recall"]
            if "backdoor_success_after" in metrics:
                row[f"backdoor after {spec}"] = metrics["backdoor_success_after"]
                row[f"clean acc. after {spec}"] = metrics["clean_accuracy_after"]
    return rows


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
    rows = _rows(results)
    atomic_write_json(out / "results.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    write_parquet(results, out)
    if any(r["attack"] == "backdoor" for r in rows):
        plot_backdoor_success(rows, out / "backdoor_success.png")
    if any(r["attack"] == "label-flip" for r in rows):
        plot_clean_accuracy(rows, out / "clean_accuracy.png")


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
    rows = [parameters | flatten(row) for row in _rows(results)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.table({name: _column([row.get(name) for row in rows]) for name in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path = out / "results.parquet"
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def plot_backdoor_success(rows: list[dict[str, Any]], path: Path) -> None:
    """Backdoor success against poison ratio, one line per strategy (backdoor runs); the clean model dashed."""
    _plot_metric(rows, path, "backdoor", "backdoor_success", "backdoor success (held-out pairs)")


def plot_clean_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """Clean preference accuracy against poison ratio for label-flip runs: what flipped labels cost."""
    _plot_metric(rows, path, "label-flip", "clean_accuracy", "clean preference accuracy (held-out pairs)")


def _plot_metric(rows: list[dict[str, Any]], path: Path, attack: str, metric: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    clean = next((r for r in rows if r["ratio"] == 0), None)
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row["ratio"] > 0 and row["attack"] == attack:
            series.setdefault(row["strategy"], []).append((row["ratio"], row[metric]))
    for strategy, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] * 100 for p in points], [p[1] for p in points], marker="o", label=f"{strategy} / {attack}")
    if clean:
        ax.axhline(clean[metric], color="grey", linestyle="--", label="clean model")
    ax.set_xlabel("poisoned share of training pairs (%)")
    ax.set_ylabel(label)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
