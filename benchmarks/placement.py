"""Does trigger placement alone change a backdoor's success? (arXiv 2406.12091's confound)

The paper's code put the trigger at the end of the last human turn for random poison and after
"Assistant:" for the model-based strategies, so its main comparison mixes two changes. This benchmark
runs the same study once per placement, every strategy at the same placement each time, and prints
backdoor success side by side. Each placement is an ordinary resumable study under ``--out``.

    python benchmarks/placement.py                                  # quickstart (tiny, synthetic)
    python benchmarks/placement.py --config configs/compare-strategies.yaml --ratios 0.05 0.1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from poisonlab.attacks.triggers import POSITION_RULES, resolve_position
from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig, run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument(
        "--strategies", nargs="+", default=["random", "dpo-score", "gradient-projection", "semantic-diversity"]
    )
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1])
    parser.add_argument("--positions", nargs=2, default=["last-human", "end"], metavar=("A", "B"))
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed (split, picks, training)")
    parser.add_argument("--out", default=None, help="default: runs/placement-<config name>[-seed<N>]")
    args = parser.parse_args()

    seed = [] if args.seed is None else [f"seed={args.seed}"]
    base = load_config(ExperimentConfig, args.config, seed)
    out = Path(args.out or f"runs/placement-{base.name}" + ("" if args.seed is None else f"-seed{args.seed}"))
    success: dict[str, dict[tuple[str, float], float]] = {}
    clean: dict[str, float] = {}
    for position in args.positions:
        overrides = [
            f"out={out / position}",
            f"trigger_position={position}",
            f"strategies={json.dumps(args.strategies)}",
            f"ratios={json.dumps(args.ratios)}",
            "attacks=[backdoor]",
            "exclude=[]",
            *seed,
        ]
        config = load_config(ExperimentConfig, args.config, overrides)
        results = run_experiment(config)
        success[position] = {(r.strategy, r.ratio): r.backdoor_success for r in results if r.ratio > 0}
        clean[position] = next(r.backdoor_success for r in results if r.ratio == 0)

    a, b = args.positions
    table = Table(title=f"Backdoor success by trigger placement ({base.model}, {base.data}, seed {base.seed})")
    for column in ("strategy", "ratio", a, b, f"{b} − {a}"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    table.add_row("clean model", "0", f"{clean[a]:.1%}", f"{clean[b]:.1%}", f"{clean[b] - clean[a]:+.1%}")
    for strategy in args.strategies:
        for ratio in args.ratios:
            x, y = success[a][(strategy, ratio)], success[b][(strategy, ratio)]
            table.add_row(strategy, f"{ratio:.1%}", f"{x:.1%}", f"{y:.1%}", f"{y - x:+.1%}")
    Console().print(table)
    if set(args.positions) == set(POSITION_RULES["paper"]):
        paper = ", ".join(f"{s}: {resolve_position('paper', s)}" for s in args.strategies)
        print(f"The paper's placement rule reads one column per strategy ({paper}).")


if __name__ == "__main__":
    main()
