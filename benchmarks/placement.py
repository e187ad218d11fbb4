"""Does trigger placement alone change a backdoor's success? (arXiv 2406.12091's confound)

The paper's code put the trigger at the end of the last human turn for random poison and after
"Assistant:" for the model-based strategies, so its main comparison mixes two changes. This benchmark
runs the same study once per placement, every strategy at the same placement each time, and prints
backdoor success side by side. Each placement is an ordinary resumable study under ``--out``.

    python benchmarks/placement.py                                  # quickstart (tiny, synthetic)
    python benchmarks/placement.py --strategies random dpo-score --seeds 0 1 2
    python benchmarks/placement.py --config configs/compare-strategies.yaml --ratios 0.05 0.1
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from poisonlab.attacks.triggers import POSITION_RULES, resolve_position
from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig, run_experiment


def _cell(values: list[float]) -> str:
    """Mean over seeds, with the seeds' values when there are several."""
    mean = sum(values) / len(values)
    return f"{mean:.1%}" if len(values) == 1 else f"{mean:.1%} ({'/'.join(f'{v:.0%}' for v in values)})"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument(
        "--strategies", nargs="+", default=["random", "dpo-score", "gradient-projection", "semantic-diversity"]
    )
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    parser.add_argument("--positions", nargs=2, default=["last-human", "end"], metavar=("A", "B"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, picks, training) to average")
    parser.add_argument("--out", default=None, help="default: runs/placement-<config name>")
    args = parser.parse_args()

    base = load_config(ExperimentConfig, args.config, [])
    out = Path(args.out or f"runs/placement-{base.name}")
    # success[position][(strategy, ratio)] = one value per seed; the clean model is strategy "none", ratio 0
    success: dict[str, dict[tuple[str, float], list[float]]] = {p: defaultdict(list) for p in args.positions}
    for seed in args.seeds:
        for position in args.positions:
            overrides = [
                f"out={out / f'seed{seed}' / position}",
                f"seed={seed}",
                f"trigger_position={position}",
                f"strategies={json.dumps(args.strategies)}",
                f"ratios={json.dumps(args.ratios)}",
                "attacks=[backdoor]",
                "exclude=[]",
            ]
            for r in run_experiment(load_config(ExperimentConfig, args.config, overrides)):
                success[position][(r.strategy, r.ratio)].append(r.backdoor_success)

    a, b = args.positions
    seeds = ", ".join(map(str, args.seeds))
    table = Table(title=f"Backdoor success by trigger placement ({base.model}, {base.data}; seeds {seeds})")
    for column in ("strategy", "ratio", a, b, f"{b} − {a}"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for strategy, ratio in [("none", 0.0)] + [(s, r) for s in args.strategies for r in args.ratios]:
        x, y = success[a][(strategy, ratio)], success[b][(strategy, ratio)]
        label = "clean model" if strategy == "none" else strategy
        table.add_row(label, f"{ratio:.1%}", _cell(x), _cell(y), f"{_mean(y) - _mean(x):+.1%}")
    console = Console(width=160)
    console.print(table)

    if set(args.positions) == set(POSITION_RULES["paper"]):  # the comparison as the paper ran it, and fairly
        rule = {s: resolve_position("paper", s) for s in args.strategies}
        table = Table(title="Strategy comparison: the paper's placements vs the same placement for all (mean)")
        table.add_column("ratio", justify="right")
        for strategy in args.strategies:
            table.add_column(f"{strategy} @{rule[strategy]}", justify="right")
        for strategy in args.strategies:
            table.add_column(f"{strategy} @{b}", justify="right")
        for ratio in args.ratios:
            paper = [_mean(success[rule[s]][(s, ratio)]) for s in args.strategies]
            same = [_mean(success[b][(s, ratio)]) for s in args.strategies]
            table.add_row(f"{ratio:.1%}", *(f"{v:.1%}" for v in paper + same))
        console.print(table)


if __name__ == "__main__":
    main()
