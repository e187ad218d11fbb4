"""Attack success as the attacker's share of the annotators tightens (arXiv 2502.14182, section 3).

A config has one ``access`` per study (per stage, in a lifecycle), so this runs the config once per share,
each into ``<out>/share-<share>``, and prints one table and draws one figure (``--figure``): the rows the
attacker controls, the rows it poisoned of those the budget asks for, and the backdoor's effect against the
clean twin with its 95% interval.

- An experiment config (``configs/access-annotators.yaml``): ``access.annotator_share`` is replaced; the
  measure is the held-out preference flip (backdoor success and its effect against the clean twin).
- A lifecycle config (``configs/lifecycle-access-sft-smollm2.yaml``): ``stages.<--stage>.access.annotator_share``
  is replaced; the measure is a generation judge (``--metric``, e.g. ``deflection@advbench``): what the model
  says with and without the trigger, against the clean twin of the same stage. The clean pipeline does not
  depend on the constraint, so it is trained in the first share's study and copied (hard links) into the
  others, not trained again.

    OMP_NUM_THREADS=1 python benchmarks/access.py configs/access-annotators.yaml
    OMP_NUM_THREADS=1 python benchmarks/access.py configs/lifecycle-access-sft-smollm2.yaml \
        --shares 1 0.1 0.04 0.02 --metric deflection@advbench --figure access.png

Studies resume like ``poisonlab run``: a finished share is read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SHARES = [1.0, 0.5, 0.1, 0.01]  # of 50 synthetic annotators: 50, 25, 5, 1


def is_lifecycle(config_path: Path) -> bool:
    return "stages" in (yaml.safe_load(config_path.read_text()) or {})


def _manifest(folder: Path) -> dict[str, Any]:
    file = folder / "poison" / "manifest.json"
    return json.loads(file.read_text()) if file.exists() else {}


def run_share(config_path: Path, share: float, out: Path, overrides: list[str]) -> list[dict[str, Any]]:
    """One experiment study at ``share``; a row per poisoned run (and the clean run), with its manifest's counts."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, run_experiment

    sets = [*overrides, f"access.annotator_share={share}", f"out={out / f'share-{share:g}'}"]
    config = load_config(ExperimentConfig, config_path, sets)
    rows = []
    for result in run_experiment(config, progress=False):
        folder = Path(config.out or "") / "runs" / result.run
        manifest = _manifest(folder)
        metrics = json.loads((folder / "metrics.json").read_text())
        effect = (result.metrics or {}).get("preference@heldout", {}).get("backdoor_effect")
        rows.append(
            {
                "share": share,
                "run": result.run,
                "strategy": result.strategy,
                "n_controlled": manifest.get("n_controlled"),
                "n_requested": manifest.get("n_requested"),
                "n_poisoned": result.n_poisoned,
                "backdoor_success": metrics["backdoor_success"],
                "backdoor_success_ci": metrics["backdoor_success_ci"],
                "clean_accuracy": metrics["clean_accuracy"],
                "backdoor_effect": effect,
            }
        )
    return rows


def _copy_clean(first: Path, out: Path) -> None:
    """The clean pipeline's finished stages (and the base model's judgments) of ``first``, hard-linked into
    ``out``: access constrains only the poison, so the clean twin is the same model in every share's study."""
    for done in sorted(first.glob("stages/*/clean/result.json")) + sorted(first.glob("base/result.json")):
        source = done.parent
        target = out / source.relative_to(first)
        if not (target / "result.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, copy_function=os.link)


def run_share_lifecycle(
    config_path: Path, share: float, out: Path, overrides: list[str], stage: int, first: Path | None
) -> list[dict[str, Any]]:
    """One lifecycle study at ``share`` (on stage ``stage``, 0-based); a row per model after that stage."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import run_lifecycle, stage_folder

    study = out / f"share-{share:g}"
    sets = [*overrides, f"stages.{stage}.access.annotator_share={share}", f"out={study}"]
    config = load_config(LifecycleConfig, config_path, sets)
    if first is not None and first != study:
        _copy_clean(first, study)
    rows = []
    for result in run_lifecycle(config, progress=False):
        if result.stage_index != stage + 1:
            continue
        folder = stage_folder(study, result.stage_index, config.stages[stage], result.prefix)
        manifest = _manifest(folder)
        rows.append(
            {
                "share": share,
                "run": result.pipeline,
                "strategy": config.stages[stage].strategy if result.share else "none",
                "n_controlled": manifest.get("n_controlled"),
                "n_requested": manifest.get("n_requested"),
                "n_poisoned": result.n_poisoned,
                "metrics": result.metrics,
            }
        )
    return rows


def _ci(value: float, ci: list[float], percent: bool = False) -> str:
    if percent:
        return f"{value:+.1%} [{ci[0]:+.1%}, {ci[1]:+.1%}]"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def table(rows: list[dict[str, Any]]) -> str:
    """The experiment table: held-out preference flips per share and strategy."""
    head = (
        f"{'share':>6} {'strategy':<20} {'controlled':>10} {'poisoned':>10} "
        f"{'backdoor success [95% CI]':>27} {'clean acc':>9} {'backdoor effect vs clean twin [95% CI]':>38}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["strategy"] == "none":
            continue
        effect = r["backdoor_effect"]
        effect_text = _ci(effect["value"], effect["ci"]) if effect else "-"
        poisoned = f"{r['n_poisoned']}/{r['n_requested']}"
        lines.append(
            f"{r['share']:>6.0%} {r['strategy']:<20} {r['n_controlled']:>10} {poisoned:>10} "
            f"{_ci(r['backdoor_success'], r['backdoor_success_ci']):>27} {r['clean_accuracy']:>9.3f} {effect_text:>38}"
        )
    clean = [r for r in rows if r["strategy"] == "none"]
    if clean:
        r = clean[0]
        lines.append(f"clean model: backdoor success {_ci(r['backdoor_success'], r['backdoor_success_ci'])}")
    return "\n".join(lines)


def lifecycle_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The lifecycle table: ``metric`` without and with the trigger, and both effects against the clean twin."""
    from poisonlab.reports.evaluation import with_qvalues

    head = (
        f"{'share':>6} {'run':<12} {'controlled':>10} {'poisoned':>8} {'no trigger':>10} {'trigger':>8} "
        f"{'backdoor effect [95% CI]':>28} {'p/q':>12} {'contamination [95% CI]':>28}"
    )
    lines = [f"{metric}: + = the attacker gained; p exact, q Benjamini-Hochberg over the table", head, "-" * len(head)]
    first = rows[0]["share"] if rows else None
    shown = [r for r in rows if metric in r["metrics"] and (r["strategy"] != "none" or r["share"] == first)]
    for r, m in zip(shown, with_qvalues([r["metrics"][metric] for r in shown])):  # the clean twin once
        cells = []
        for part in ("backdoor_effect", "contamination"):
            cells.append(_ci(m[part]["value"], m[part]["ci"], percent=True) if part in m else "-")
        effect = m.get("backdoor_effect")
        p = f"{effect['p_value']:.2g}/{effect['q_value']:.2g}" if effect else "-"
        poisoned = f"{r['n_poisoned']}/{r['n_requested']}" if r["n_requested"] is not None else "0"
        lines.append(
            f"{r['share']:>6.0%} {r['run']:<12} {r['n_controlled'] if r['n_controlled'] is not None else '-':>10} "
            f"{poisoned:>8} {m['clean']['value']:>10.1%} {m['triggered']['value']:>8.1%} {cells[0]:>28} {p:>12} "
            f"{cells[1]:>28}"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], metric: str | None, path: Path) -> None:
    """Backdoor effect (and, for a generation judge, contamination) against the annotator share, per strategy,
    with 95% intervals; each point is labelled with the rows poisoned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    from poisonlab.io import atomic_write_figure

    def measure(row: dict[str, Any], part: str) -> dict[str, Any] | None:
        if metric is None:
            return row["backdoor_effect"] if part == "backdoor_effect" else None
        return row["metrics"].get(metric, {}).get(part)

    parts = ["backdoor_effect"] + (["contamination"] if metric else [])
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.2), sharey=True, squeeze=False)
    for ax, part in zip(axes[0], parts):
        for strategy in dict.fromkeys(r["strategy"] for r in rows if r["strategy"] != "none"):
            points = sorted(
                ((r["share"], measure(r, part), r["n_poisoned"]) for r in rows if r["strategy"] == strategy),
                key=lambda p: p[0],
            )
            points = [p for p in points if p[1] is not None]
            if not points:
                continue
            x = [p[0] for p in points]
            y = [p[1]["value"] for p in points]
            err = [[v - p[1]["ci"][0] for v, p in zip(y, points)], [p[1]["ci"][1] - v for v, p in zip(y, points)]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=strategy)
            for share, value, n in zip(x, y, (p[2] for p in points)):
                ax.annotate(f"{n}", (share, value), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sorted({r["share"] for r in rows})))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("attacker's share of the annotators (log)")
        ax.set_title(f"{part.replace('_', ' ')}{f': {metric}' if metric else ''}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("effect against the clean twin (+ = the attacker gained)")
    axes[0][0].legend(fontsize=8, title="strategy (label: rows poisoned)", title_fontsize=8)
    fig.suptitle("attack success as the attacker's access tightens (95% intervals)", fontsize=9)
    atomic_write_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="An experiment or lifecycle config.")
    parser.add_argument("--shares", type=float, nargs="+", default=DEFAULT_SHARES, help="Annotator shares.")
    parser.add_argument("--out", type=Path, default=Path("runs/access-annotators"), help="Parent of the studies.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="FIELD=VALUE, as poisonlab run.")
    parser.add_argument("--stage", type=int, default=0, help="Lifecycle: the stage (0-based) the access constrains.")
    parser.add_argument("--metric", help="Lifecycle: JUDGE@PROMPT_SET for the table and figure (default: the first).")
    parser.add_argument("--figure", type=Path, help="Also draw the effect against the share here (PNG).")
    parser.add_argument("--json", type=Path, help="Also write every row as JSON here.")
    args = parser.parse_args()
    if is_lifecycle(args.config):
        first = args.out / f"share-{args.shares[0]:g}"
        rows = [
            row
            for share in args.shares
            for row in run_share_lifecycle(args.config, share, args.out, args.overrides, args.stage, first)
        ]
        metric = args.metric or next(iter(rows[0]["metrics"]))
        print(lifecycle_table(rows, metric))
    else:
        rows = [row for share in args.shares for row in run_share(args.config, share, args.out, args.overrides)]
        metric = None
        print(table(rows))
    if args.figure:
        plot(rows, metric, args.figure)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
