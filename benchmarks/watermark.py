"""Ownership watermarks on tiny: detection power, false-positive rate, clean cost (and survival of DPO).

For each K (secret triggers) and training seed: plant the key (``--copies`` rows per trigger) into
synthetic pairs, SFT tiny on it (LoRA), and run ``verify``; power = share of seeds detected at p < alpha.
False positives: ``--keys`` fresh random keys (never planted anywhere) verified against the base tiny and
against tiny SFT'd on the same data without a watermark; FPR = share with p < alpha, with its Wilson 95%
interval. Clean cost: mean NLL per reply token on held-out clean pairs, watermarked SFT vs clean SFT.
Survival: SFT with the watermark, then a clean DPO stage started from it (``init=[sft]``), verified with
adapters [sft, dpo]; it needs ``train_dpo(init=...)``, and prints a TODO where that is missing.

    OMP_NUM_THREADS=1 python benchmarks/watermark.py
    ... python benchmarks/watermark.py --ks 4 --seeds 0 --keys 20            # a minute

Everything lands under ``--out`` (default runs/watermark) and training resumes; results.json holds
every p-value.
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import numpy as np

from poisonlab.data import PreferenceDataset, synthetic_pairs
from poisonlab.evaluation.stats import wilson
from poisonlab.io import atomic_write_json
from poisonlab.models import load_model, load_tokenizer
from poisonlab.models.adapters import load_with_adapters
from poisonlab.training import train_dpo, train_sft
from poisonlab.training.config import DPOTrainingConfig, SFTTrainingConfig
from poisonlab.watermarks import WatermarkVerifyConfig, embed_watermark, generate_key, verify_watermark
from poisonlab.watermarks.verify import response_logprobs


def heldout_nll(net, tokenizer, pairs: PreferenceDataset) -> float:
    """Mean negative log-likelihood per reply token of the clean chosen replies."""
    values, tokens = response_logprobs(net, tokenizer, [(p.prompt, p.chosen) for p in pairs], bf16=False)
    return float(-values.sum() / tokens.sum())


def false_positives(net, tokenizer, n_keys: int, k: int, config: WatermarkVerifyConfig) -> list[float]:
    """p-values of ``n_keys`` random keys (seeds 10000+) that no model ever saw."""
    keys = [generate_key(k, seed=10_000 + s) for s in range(n_keys)]
    return [verify_watermark(net, tokenizer, key, config)["p_value"] for key in keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16], help="secret triggers per key")
    parser.add_argument("--copies", type=int, default=4, help="planted rows per trigger")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training (and key) seeds")
    parser.add_argument("--pairs", type=int, default=200, help="clean synthetic training pairs")
    parser.add_argument("--heldout", type=int, default=100, help="clean held-out pairs for the clean-loss cost")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--keys", type=int, default=100, help="random keys for the false-positive rate")
    parser.add_argument("--fp-k", type=int, default=8, help="triggers per random key in the FPR check")
    parser.add_argument("--controls", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--dpo", action="store_true", help="also measure survival of a clean DPO stage")
    parser.add_argument("--out", default="runs/watermark")
    args = parser.parse_args()

    out = Path(args.out)
    started = time.perf_counter()
    clean = synthetic_pairs(n=args.pairs, seed=7)
    heldout = synthetic_pairs(n=args.heldout, seed=8)
    vconfig = WatermarkVerifyConfig(controls=args.controls, prompts=args.prompts, alpha=args.alpha, bf16=False)
    tokenizer = load_tokenizer("tiny")

    def sft(dataset: PreferenceDataset, seed: int, folder: Path) -> Path:
        config = SFTTrainingConfig(
            learning_rate=args.lr, epochs=args.epochs, batch_size=8, micro_batch_size=8, threads=1, seed=seed
        )
        config.bf16 = False  # the same numbers on every CPU
        train_sft("tiny", dataset, config, folder, progress=False)
        return folder

    results: dict = {"args": vars(args), "detection": [], "fpr": {}, "survival": None}
    rows = []
    for k in args.ks:
        for seed in args.seeds:
            key = generate_key(k, seed=seed)
            marked = embed_watermark(clean, key, n=k * args.copies, seed=seed).dataset
            adapter = sft(marked, seed, out / f"sft-k{k}-s{seed}")
            net = load_with_adapters("tiny", [adapter], device="cpu")
            found = verify_watermark(net, tokenizer, key, vconfig)
            nll = heldout_nll(net, tokenizer, heldout)
            results["detection"].append(
                {"k": k, "seed": seed, "p_value": found["p_value"], "auc": found["effect"]["auc"], "heldout_nll": nll}
            )
            print(f"K={k} seed={seed}: p={found['p_value']:.3g} AUC={found['effect']['auc']:.3f} nll={nll:.4f}")
        runs = [r for r in results["detection"] if r["k"] == k]
        hits = sum(r["p_value"] < args.alpha for r in runs)
        rows.append(
            (
                f"K={k} ({k * args.copies} rows in {args.pairs})",
                f"{hits}/{len(runs)}",
                f"{np.median([r['p_value'] for r in runs]):.2g}",
                f"{np.mean([r['auc'] for r in runs]):.3f}",
                f"{np.mean([r['heldout_nll'] for r in runs]):.4f}",
            )
        )

    clean_adapters = [sft(clean, seed, out / f"sft-clean-s{seed}") for seed in args.seeds]
    clean_nll = []
    for adapter in clean_adapters:
        clean_nll.append(heldout_nll(load_with_adapters("tiny", [adapter], device="cpu"), tokenizer, heldout))
    base_net = load_model("tiny", device="cpu")
    base_nll = heldout_nll(base_net, tokenizer, heldout)
    for label, net in (
        ("base tiny", base_net),
        ("tiny SFT'd on the clean data", load_with_adapters("tiny", [clean_adapters[0]], device="cpu")),
    )[: 2 if args.keys else 0]:
        p_values = false_positives(net, tokenizer, args.keys, args.fp_k, vconfig)
        fp = sum(p < args.alpha for p in p_values)
        results["fpr"][label] = {"p_values": p_values, "false_positives": fp, "n": len(p_values)}
        low, high = wilson(fp, len(p_values))
        results["fpr"][label]["wilson95"] = [low, high]
        results["fpr"][label]["share_p_below_0.05"] = float(np.mean(np.array(p_values) < 0.05))
        print(f"FPR {label}: {fp}/{len(p_values)} (Wilson 95% {low:.3f}-{high:.3f}), median {np.median(p_values):.2f}")

    if args.dpo:
        if "init" not in inspect.signature(train_dpo).parameters:
            # TODO(watermark): survival after a clean DPO stage needs train_dpo(init=[...]) from main (not merged
            # when this was written). Then: SFT with the watermark -> train_dpo(clean, init=[sft]) -> verify
            # with load_with_adapters("tiny", [sft, dpo]).
            results["survival"] = "TODO: train_dpo has no init= on this branch"
            print("survival after clean DPO: TODO (train_dpo(init=...) not on this branch yet)")
        else:
            survival = []
            for seed in args.seeds:
                k = args.ks[-1]
                sft_dir = out / f"sft-k{k}-s{seed}"
                dpo_dir = out / f"dpo-after-k{k}-s{seed}"
                dconfig = DPOTrainingConfig(epochs=1, batch_size=8, micro_batch_size=8, threads=1, seed=seed)
                train_dpo("tiny", clean, dconfig, dpo_dir, progress=False, init=[sft_dir])
                net = load_with_adapters("tiny", [sft_dir, dpo_dir], device="cpu")
                found = verify_watermark(net, tokenizer, generate_key(k, seed=seed), vconfig)
                survival.append({"k": k, "seed": seed, "p_value": found["p_value"], "auc": found["effect"]["auc"]})
                print(f"after clean DPO, K={k} seed={seed}: p={found['p_value']:.3g}")
            results["survival"] = survival

    results["clean_cost"] = {"base_nll": base_nll, "clean_sft_nll": float(np.mean(clean_nll))}
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / "results.json", results)

    print()
    print(f"tiny, synthetic pairs, SFT {args.epochs} epochs lr {args.lr} (LoRA q/v r=8), {args.copies} rows/trigger;")
    print(f"verify: {args.controls} controls x {args.prompts} prompts, alpha {args.alpha}")
    header = ("watermark", f"detected (p<{args.alpha})", "median p", "mean AUC", "held-out NLL/token")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))
    print(f"held-out NLL/token: clean SFT {np.mean(clean_nll):.4f}, base tiny {base_nll:.4f}")
    for label, fpr in results["fpr"].items():
        low, high = fpr["wilson95"]
        print(
            f"false positives, {label}: {fpr['false_positives']}/{fpr['n']} random keys (K={args.fp_k}) at "
            f"p<{args.alpha}, Wilson 95% {low:.3f}-{high:.3f}; share p<0.05: {fpr['share_p_below_0.05']:.2f}"
        )
    if isinstance(results["survival"], list):
        hits = sum(r["p_value"] < args.alpha for r in results["survival"])
        print(f"survival after clean DPO (K={args.ks[-1]}): {hits}/{len(results['survival'])} detected")
    elif results["survival"]:
        print(f"survival after clean DPO: {results['survival']}")
    print(f"{results['seconds']:.0f} s; results -> {out / 'results.json'}")


if __name__ == "__main__":
    main()
