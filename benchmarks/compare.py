"""The paper's main comparison (arXiv 2406.12091, Fig. 2) on two models, from their sweep configs.

Runs each study (or, once finished, only reads it back: studies resume) and prints, per study:
backdoor success against the ratio with one column per strategy, the change in clean accuracy that
label flips cause, and how many poisoned pairs each strategy shares with dpo-score. Then, between the
two models, how many of the top-k pairs by clean DPO score they share over the training pairs both
scored: the paper's transferability question. The plots are each study's ``backdoor_success.png`` and
``clean_accuracy.png``.

    nohup python benchmarks/compare.py > compare.log 2>&1 &     # both configs: many hours on 2 CPU cores
    python benchmarks/compare.py --outs runs/bench-slice-tiny runs/bench-slice-smollm2-135m-200 --no-run
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from poisonlab.attacks.strategies import SelectionContext
from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig, finished_results, results_folder, run_experiment
from poisonlab.experiments.grid.folder import prepare_split
from poisonlab.reports import overlap_table, run_overlaps, score_overlap
from poisonlab.training.clean_model import clean_dpo_scores

CONFIGS = ["configs/compare-strategies-tiny.yaml", "configs/compare-strategies.yaml"]


def pivot(results: list[Any], attack: str, metric: str, title: str) -> Table:
    """Ratio x strategy, each cell the metric and its change from the clean model; † = adapter reused."""
    clean = next(r for r in results if r.ratio == 0)
    cells = {(r.strategy, r.ratio): r for r in results if r.attack == attack}
    strategies = list(dict.fromkeys(strategy for strategy, _ in cells))
    caption = f"clean model: {getattr(clean, metric):.1%}; (Δ): change from it; †: same pairs as another run"
    table = Table(title=title, caption=caption, min_width=100)
    table.add_column("ratio", justify="right")
    for strategy in strategies:
        table.add_column(strategy, justify="right")
    for ratio in sorted({ratio for _, ratio in cells}):
        row = [f"{ratio:.1%}"]
        for strategy in strategies:
            r = cells.get((strategy, ratio))
            value = getattr(r, metric) if r else None
            mark = " †" if r and r.same_data_as else ""
            row.append("" if r is None else f"{value:.1%} ({value - getattr(clean, metric):+.1%}){mark}")
        table.add_row(*row)
    return table


def clean_scores(config: ExperimentConfig) -> dict[str, float]:
    """The study's clean DPO scores of its training pairs (cached by the study's dpo-score runs)."""
    train, _ = prepare_split(config, results_folder(config))
    context = SelectionContext(
        dataset=train,
        n_poison=0,
        seed=config.seed,
        model=config.model,
        training=config.training_config(),
        selection=config.selection,
        clean_adapter=results_folder(config) / "runs" / "clean" / "adapter",
    )
    return clean_dpo_scores(context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs=2, default=CONFIGS, metavar=("A", "B"))
    parser.add_argument("--outs", nargs=2, default=None, metavar=("A", "B"), help="results folders to use")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2], help="top-k shares")
    parser.add_argument("--no-run", action="store_true", help="report the finished runs only; start none")
    args = parser.parse_args()

    console = Console(width=160)
    configs, scores = [], {}
    for i, path in enumerate(args.configs):
        config = load_config(ExperimentConfig, path, [f"out={args.outs[i]}"] if args.outs else [])
        configs.append(config)
        results = finished_results(config) if args.no_run else run_experiment(config)
        name = f"{config.model}, {results_folder(config)}"
        console.print(pivot(results, "backdoor", "backdoor_success", f"Backdoor success ({name})"))
        if any(r.attack == "label-flip" for r in results):
            console.print(pivot(results, "label-flip", "clean_accuracy", f"Clean accuracy under label flips ({name})"))
        console.print(overlap_table(run_overlaps(results_folder(config)), f"Shared with dpo-score ({config.model})"))
        scores[config.model] = clean_scores(config)

    (a, scores_a), (b, scores_b) = scores.items()
    table = Table(title=f"Top-k pairs by clean DPO score shared by {a} and {b} (pairs both scored)")
    for column in ("k share", "k", "shared", "share", "chance", "Spearman"):
        table.add_column(column, justify="right")
    both = len(scores_a.keys() & scores_b.keys())
    for share in args.ratios:
        k = max(1, round(share * both))
        overlap = score_overlap(scores_a, scores_b, k)
        table.add_row(
            f"{share:.0%}",
            str(k),
            str(overlap.shared),
            f"{overlap.share:.0%}",
            f"{overlap.chance:.0%}",
            f"{overlap.spearman:+.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
