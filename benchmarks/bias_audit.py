"""Bias audit on tiny + the SYNTHETIC careers set: does the first-order search beat random flips?

For each k: bias on the held-out probes (mean b_i [bootstrap 95% CI]) of the clean DPO model, of the
model trained with the k amplifying pairs flipped, of k random flips (mean over seeds, and their range of
changes), of the k corrective pairs reversed; clean preference accuracy of each on held-out pairs.
Everything comes from ``run_bias_audit`` (``out/audit.json``); adapters resume under ``out/runs``.

    OMP_NUM_THREADS=1 python benchmarks/bias_audit.py
    ... python benchmarks/bias_audit.py --ks 16 --seeds 2 --pairs 200 --epochs 3   # a few minutes
"""

from __future__ import annotations

import argparse
import json

from poisonlab.audits import BiasAuditConfig, read_probes, run_bias_audit, synthetic_careers_pairs
from poisonlab.training.config import DPOTrainingConfig


def cell(summary: dict) -> str:
    low, high = summary["ci"]
    return f"{summary['value']:+.3f} [{low:+.2f}, {high:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--seeds", type=int, default=2, help="random-k baselines per k")
    parser.add_argument("--pairs", type=int, default=400, help="synthetic-careers pairs (20%% held out)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default="runs/bias-audit")
    args = parser.parse_args()

    data = synthetic_careers_pairs(args.pairs, seed=0)
    training = DPOTrainingConfig(threads=1, bf16=False, micro_batch_size=16, epochs=args.epochs)
    config = BiasAuditConfig(ks=args.ks, random_seeds=args.seeds)
    result = run_bias_audit(data, "tiny", read_probes(), args.out, config, training, progress=False)
    conditions = result["conditions"]
    clean = conditions["clean"]
    print(
        f"tiny, {result['data']['n_train']} train pairs ({data.source}), {args.epochs} epochs, "
        f"{result['probes']['n_heldout']} held-out probes; base model bias {cell(conditions['base']['bias'])}"
    )
    print("| k | condition | bias [95% CI] | change vs clean [95% CI] | pref. accuracy |")
    print("|---|---|---|---|---|")
    print(f"| - | clean | {cell(clean['bias'])} | - | {clean['preference']['accuracy']:.3f} |")
    for k in args.ks:
        for name, label in (
            (f"amplified-k{k}", "amplified (top-k flipped)"),
            (f"random-k{k}", "random-k (mean)"),
            (f"corrected-reverse-k{k}", "corrected (bottom-k reversed)"),
        ):
            c = conditions[name]
            extra = f" (seeds {c['change_range'][0]:+.2f}..{c['change_range'][1]:+.2f})" if "change_range" in c else ""
            print(
                f"| {k} | {label} | {cell(c['bias'])} | {cell(c['change_vs_clean'])}{extra} | "
                f"{c['preference']['accuracy']:.3f} |"
            )
    check = result["first_order_check"]
    print(
        f"first-order check: Spearman(predicted, measured change) = {check['spearman']} "
        f"over {len(check['points'])} runs"
    )
    for k in args.ks:
        shares = result["selections"][f"k{k}"]["amplifying_features"]
        print(
            f"k={k} amplifying: selected {json.dumps(shares['shares_selected'])} "
            f"vs all {json.dumps(shares['shares_all'])}"
        )
    print(f"({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
