"""The vertical slice on real data: poison -> LoRA DPO -> evaluate, clean vs poisoned.

Runs on the 1,800 HH-RLHF harmless-base pairs in ../shared/data (the 5 flawed rows skipped), with
held-out pairs kept aside for evaluation, and prints one table: model, strategy, ratio, clean
accuracy, backdoor success, minutes. Resumable: re-running skips finished runs.

    python benchmarks/slice.py tiny                       # ratios 0, 1, 3, 5, 10 %; random and dpo-score
    python benchmarks/slice.py smollm2-135m --train 200 --heldout 100   # clean, 10 % and 5 %; a subset

Long: run it in the background (nohup ... &) and read the table at the end of its log.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from poisonlab.experiments import ExperimentConfig, run_experiment
from poisonlab.reports import results_table

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"

SETTINGS = {
    "tiny": {"ratios": [0.01, 0.03, 0.05, 0.1], "training": {}},
    # CPU budget (~15 min a run on one core): 200 training pairs, short sequences, smaller batches for more
    # optimizer steps, and LoRA on every linear layer so the adapter can move in that many steps.
    "smollm2-135m": {
        "ratios": [0.1, 0.05],
        "training": {
            "epochs": 3,
            "batch_size": 8,
            "max_length": 128,
            "max_reply_length": 48,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(SETTINGS))
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--train", type=int, default=None, help="use the first N training pairs (default: all)")
    parser.add_argument("--heldout", type=int, default=200, help="held-out pairs for evaluation")
    parser.add_argument("--out", default=None, help="results folder (default runs/bench-slice-<model>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratios", type=float, nargs="+", default=None, help="override the model's ratios")
    args = parser.parse_args()

    settings = SETTINGS[args.model]
    config = ExperimentConfig(
        name=f"bench-slice-{args.model}" + (f"-{args.train}" if args.train else ""),
        out=args.out,
        data=args.data,
        skip_bad_rows=True,
        model=args.model,
        seed=args.seed,
        heldout=args.heldout,
        max_train_pairs=args.train,
        strategies=["random", "dpo-score"],
        attacks=["backdoor"],
        ratios=args.ratios or settings["ratios"],
        training=settings["training"],
    )
    console = Console(width=140)
    results = run_experiment(config, on_result=lambda r: console.print(f"done {r.run}: {r.to_dict()}"))
    console.print(results_table(results, title=f"vertical slice on HH-RLHF: {args.model}"))


if __name__ == "__main__":
    main()
