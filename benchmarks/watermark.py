"""Ownership watermarks on tiny: power against K, survival of clean DPO and downstream SFT, FPR, clean cost.

For each K (secret triggers; ``--copies`` planted rows each) and seed (the key's and the training's):

1. **watermarked SFT**: plant the key into ``--pairs`` clean synthetic pairs, SFT tiny on them (LoRA);
2. **+ clean DPO**: DPO on ``--dpo-pairs`` other clean pairs, started from it (``init=[sft]``: the SFT model
   is the policy's start and the reference);
3. **+ clean downstream SFT**: SFT on ``--down-pairs`` other clean pairs, started from both
   (``init=[sft, dpo]``), the lifecycle's order (configs/lifecycle-hh-smollm2.yaml);

and ``verify`` after each stage (the chain loaded from the last adapter, as ``poisonlab watermark verify
--adapter LAST`` does). Power = share of seeds detected at p < alpha, with its Wilson 95% interval.

Each seed also trains the clean twin of that chain (the same data, the same settings, no watermark). It
gives the clean cost (per held-out pair, watermarked minus twin: NLL per reply token of the chosen reply,
and preference accuracy = implicit reward margin against base tiny > 0; paired bootstrap intervals over
the pairs of every seed) and the models that never saw any key for the false-positive rate: ``--keys``
random keys of ``--fp-k`` triggers (seeds 10000+, never planted anywhere) on base tiny, on the twin after
each stage (seed of ``--seeds[0]``), and on the watermarked SFT model of the largest K with *other* keys
(a model that learnt some watermark must not pass for another). FPR with its Wilson interval, per model
and pooled.

    OMP_NUM_THREADS=1 python benchmarks/watermark.py --figure docs/figures/watermark-tiny.png  # the README's run
    ... python benchmarks/watermark.py --ks 4 --seeds 0 --keys 10                              # a couple of minutes

Everything lands under ``--out`` (default runs/watermark); finished trainings are reused on a rerun.
results.json holds every p-value; the figure is power (and AUC) against K, one line per stage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from watermark_cost import clean_behaviour, reply_scores  # beside this script

from poisonlab.data import PreferenceDataset, synthetic_pairs
from poisonlab.evaluation.stats import paired_difference, wilson
from poisonlab.io import atomic_write_json
from poisonlab.models import load_model, load_tokenizer
from poisonlab.models.adapters import load_with_adapters
from poisonlab.training import train_dpo, train_sft
from poisonlab.training.config import DPOTrainingConfig, SFTTrainingConfig
from poisonlab.watermarks import WatermarkVerifyConfig, embed_watermark, generate_key, verify_watermark

STAGES = ("sft", "dpo", "down")
STAGE_LABELS = {
    "sft": "watermarked SFT",
    "dpo": "+ clean DPO",
    "down": "+ clean downstream SFT",
}
CLEAN_LABELS = {"sft": "clean SFT", "dpo": "clean SFT + DPO", "down": "clean SFT + DPO + SFT"}
FP_KEY_SEED = 10_000


def rate(hits: int, n: int) -> dict[str, Any]:
    return {"hits": hits, "n": n, "rate": hits / n if n else float("nan"), "wilson95": wilson(hits, n)}


def fmt_rate(r: dict[str, Any], digits: int = 2) -> str:
    low, high = r["wilson95"]
    return f"{r['hits']}/{r['n']} [{low:.{digits}f}, {high:.{digits}f}]"


def plot(results: dict[str, Any], path: Path) -> None:
    """Power (Wilson 95%) and mean AUC against K, one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from poisonlab.io import atomic_write_figure

    args = results["args"]
    ks = sorted({r["k"] for r in results["detection"]})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for offset, stage in enumerate(STAGES):
        cells = [results["power"][f"{stage}/K={k}"] for k in ks if f"{stage}/K={k}" in results["power"]]
        if not cells:
            continue
        shift = 2 ** ((offset - 1) * 0.05)  # side by side on the log axis
        x = [c["k"] * shift for c in cells]
        y = [c["rate"] for c in cells]
        low = [v - c["wilson95"][0] for v, c in zip(y, cells)]
        high = [c["wilson95"][1] - v for v, c in zip(y, cells)]
        axes[0].errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=STAGE_LABELS[stage])
        aucs = [[r["auc"] for r in results["detection"] if r["k"] == c["k"] and r["stage"] == stage] for c in cells]
        axes[1].plot(x, [np.mean(a) for a in aucs], marker="o", label=STAGE_LABELS[stage])
        for xi, a in zip(x, aucs):
            axes[1].scatter([xi] * len(a), a, s=10, alpha=0.4, color=axes[1].lines[-1].get_color())
    n_seeds = len(args["seeds"])
    axes[0].set_ylabel(f"detected at p < {args['alpha']} ({n_seeds} seeds, Wilson 95%)")
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8)
    axes[1].axhline(0.5, color="black", linestyle="--", linewidth=1)
    axes[1].set_ylabel("AUC, P(secret beats control); 0.5: null")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [f"{k}\n({k * args['copies']} rows)" for k in ks])
        ax.set_xlabel(f"secret triggers K (planted rows, added to {args['pairs']} clean pairs)")
        ax.grid(alpha=0.3)
    fpr = results["fpr"].get("pooled")
    note = f"; false positives {fmt_rate(fpr, 3)} never-planted keys" if fpr else ""
    fig.suptitle(
        f"tiny, synthetic pairs: watermark detection after each stage, {n_seeds} seeds per point\n"
        f"watermarked SFT {args['epochs']} ep lr {args['lr']} -> clean DPO {args['dpo_epochs']} ep "
        f"-> clean SFT {args['down_epochs']} ep on {args['down_pairs']} pairs{note}",
        fontsize=9,
    )
    atomic_write_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16, 64], help="secret triggers per key")
    parser.add_argument("--copies", type=int, default=1, help="planted rows per trigger")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="key and training seeds")
    parser.add_argument("--pairs", type=int, default=200, help="clean pairs of the watermarked SFT stage")
    parser.add_argument("--dpo-pairs", type=int, default=200, help="clean pairs of the DPO stage (0: no DPO)")
    parser.add_argument("--down-pairs", type=int, default=100, help="clean pairs of the downstream SFT (0: none)")
    parser.add_argument("--heldout", type=int, default=100, help="clean held-out pairs for the clean cost")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the watermarked SFT")
    parser.add_argument("--lr", type=float, default=1e-2, help="learning rate of both SFT stages")
    parser.add_argument("--dpo-epochs", type=int, default=1)
    parser.add_argument("--dpo-lr", type=float, default=2e-3)
    parser.add_argument("--down-epochs", type=int, default=10)
    parser.add_argument("--keys", type=int, default=40, help="random keys per never-exposed model (FPR)")
    parser.add_argument("--fp-k", type=int, default=4, help="triggers per random key in the FPR check")
    parser.add_argument("--controls", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", default="runs/watermark")
    parser.add_argument("--figure", default=None, help="where the figure goes (default OUT/watermark-power.png)")
    args = parser.parse_args()

    out = Path(args.out)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    # Disjoint-by-seed synthetic slices: SFT, DPO, downstream SFT, held out.
    data = {
        "sft": synthetic_pairs(n=args.pairs, seed=7),
        "dpo": synthetic_pairs(n=args.dpo_pairs, seed=9) if args.dpo_pairs else None,
        "down": synthetic_pairs(n=args.down_pairs, seed=10) if args.down_pairs else None,
    }
    heldout = synthetic_pairs(n=args.heldout, seed=8)
    stages = [s for s in STAGES if s == "sft" or data[s] is not None]
    if "down" in stages and "dpo" not in stages:
        stages = ["sft", "down"]
    vconfig = WatermarkVerifyConfig(controls=args.controls, prompts=args.prompts, alpha=args.alpha, bf16=False)
    tokenizer = load_tokenizer("tiny")
    base_net = load_model("tiny", device="cpu")
    base_scores = reply_scores(base_net, tokenizer, heldout)

    def train_chain(sft_data: PreferenceDataset, seed: int, folder: Path) -> dict[str, Path]:
        """SFT -> DPO (init [sft]) -> downstream SFT (init [sft, dpo]); returns each stage's last adapter."""
        shared = {"batch_size": 8, "micro_batch_size": 8, "threads": 1, "seed": seed, "bf16": False}
        sft_config = SFTTrainingConfig(learning_rate=args.lr, epochs=args.epochs, **shared)
        chain: list[Path] = []
        adapters: dict[str, Path] = {}
        for stage in stages:
            if stage == "sft":
                train_sft("tiny", sft_data, sft_config, folder / "sft", progress=False)
            elif stage == "dpo":
                config = DPOTrainingConfig(learning_rate=args.dpo_lr, epochs=args.dpo_epochs, **shared)
                train_dpo("tiny", data["dpo"], config, folder / "dpo", progress=False, init=list(chain))
            else:
                config = sft_config.model_copy(update={"epochs": args.down_epochs})
                train_sft("tiny", data["down"], config, folder / "down", progress=False, init=list(chain))
            chain.append(folder / stage)
            adapters[stage] = folder / stage
        return adapters

    results: dict[str, Any] = {"args": vars(args), "stages": stages, "detection": [], "cost": {}, "power": {}}
    behaviour: dict[tuple, dict[str, np.ndarray]] = {}
    twins: dict[int, dict[str, Path]] = {}
    for seed in args.seeds:
        log(f"clean twin chain, seed {seed}")
        twins[seed] = train_chain(data["sft"], seed, out / f"clean-s{seed}")
        for stage, adapter in twins[seed].items():
            net = load_with_adapters("tiny", [adapter], device="cpu")
            behaviour[("clean", seed, stage)] = clean_behaviour(reply_scores(net, tokenizer, heldout), base_scores)

    for k in args.ks:
        for seed in args.seeds:
            key = generate_key(k, seed=seed)
            marked = embed_watermark(data["sft"], key, n=k * args.copies, seed=seed).dataset
            log(f"K={k} seed={seed}: training the chain ({len(marked)} SFT rows, {k * args.copies} planted)")
            adapters = train_chain(marked, seed, out / f"k{k}-s{seed}")
            for stage, adapter in adapters.items():
                net = load_with_adapters("tiny", [adapter], device="cpu")
                found = verify_watermark(net, tokenizer, key, vconfig)
                behaviour[(k, seed, stage)] = clean_behaviour(reply_scores(net, tokenizer, heldout), base_scores)
                results["detection"].append(
                    {
                        "k": k,
                        "seed": seed,
                        "stage": stage,
                        "p_value": found["p_value"],
                        "detected": found["detected"],
                        "auc": found["effect"]["auc"],
                        "gain_per_token": found["effect"]["mean_logprob_gain_per_token"],
                    }
                )
                log(f"  after {STAGE_LABELS[stage]}: p={found['p_value']:.3g} AUC={found['effect']['auc']:.3f}")

    for stage in stages:
        for k in args.ks:
            runs = [r for r in results["detection"] if r["k"] == k and r["stage"] == stage]
            hits = sum(r["detected"] for r in runs)
            results["power"][f"{stage}/K={k}"] = {
                "k": k,
                "stage": stage,
                **rate(hits, len(runs)),
                "median_p": float(np.median([r["p_value"] for r in runs])),
                "mean_auc": float(np.mean([r["auc"] for r in runs])),
            }
            cost = {}
            for measure, kind in (("nll", "score"), ("pref", "rate"), ("margin", "score")):
                clean = np.concatenate([behaviour[("clean", s, stage)][measure] for s in args.seeds])
                marked = np.concatenate([behaviour[(k, s, stage)][measure] for s in args.seeds])
                cost[measure] = {
                    "clean_twin": float(clean.mean()),
                    "watermarked": float(marked.mean()),
                    "difference": paired_difference(clean, marked, kind),
                }
            results["cost"][f"{stage}/K={k}"] = cost
    base_b = clean_behaviour(base_scores, base_scores)
    results["base"] = {"nll": float(base_b["nll"].mean())}

    # False positives: keys never planted anywhere, on models that never saw them.
    fp_keys = [generate_key(args.fp_k, seed=FP_KEY_SEED + s) for s in range(args.keys)]
    never: list[tuple[str, Any]] = [("base tiny", lambda: base_net)]
    s0 = args.seeds[0]
    for stage in stages:
        never.append((f"{CLEAN_LABELS[stage]} (twin, seed {s0})", twins[s0][stage]))
    never.append((f"watermarked SFT K={max(args.ks)} (seed {s0}), other keys", out / f"k{max(args.ks)}-s{s0}" / "sft"))
    results["fpr"] = {}
    all_p: list[float] = []
    for label, source in never if args.keys else []:
        net = source() if callable(source) else load_with_adapters("tiny", [source], device="cpu")
        log(f"FPR: {args.keys} random keys on {label}")
        p_values = [verify_watermark(net, tokenizer, key, vconfig)["p_value"] for key in fp_keys]
        all_p += p_values
        hits = sum(p < args.alpha for p in p_values)
        results["fpr"][label] = {
            **rate(hits, len(p_values)),
            "p_values": p_values,
            "share_p_below_0.05": float(np.mean(np.array(p_values) < 0.05)),
        }
    if all_p:
        results["fpr"]["pooled"] = {
            **rate(sum(p < args.alpha for p in all_p), len(all_p)),
            "share_p_below_0.05": float(np.mean(np.array(all_p) < 0.05)),
        }

    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / "results.json", results)
    figure = Path(args.figure) if args.figure else out / "watermark-power.png"
    plot(results, figure)

    print()
    print(
        f"tiny, synthetic pairs; watermarked SFT {args.epochs} ep lr {args.lr} on {args.pairs} clean pairs + K x "
        f"{args.copies} planted rows; clean DPO {args.dpo_epochs} ep lr {args.dpo_lr} on {args.dpo_pairs} pairs; "
        f"clean downstream SFT {args.down_epochs} ep on {args.down_pairs} pairs (LoRA q/v r=8, batch 8);"
    )
    print(f"verify: {args.controls} controls x {args.prompts} prompts, alpha {args.alpha}; {len(args.seeds)} seeds")
    header = (
        "stage",
        "K (rows)",
        f"detected p<{args.alpha} [Wilson 95%]",
        "median p",
        "mean AUC",
        "NLL/token: wm - twin [95%]",
        "pref. acc.: wm - twin [95%]",
        "reward margin: wm - twin [95%]",
    )
    rows = []
    for stage in stages:
        for k in args.ks:
            power, cost = results["power"][f"{stage}/K={k}"], results["cost"][f"{stage}/K={k}"]
            nll, pref, margin = (cost[m]["difference"] for m in ("nll", "pref", "margin"))
            rows.append(
                (
                    STAGE_LABELS[stage],
                    f"{k} ({k * args.copies})",
                    fmt_rate(power),
                    f"{power['median_p']:.2g}",
                    f"{power['mean_auc']:.3f}",
                    f"{nll['value']:+.4f} [{nll['ci'][0]:+.4f}, {nll['ci'][1]:+.4f}]",
                    f"{pref['value']:+.3f} [{pref['ci'][0]:+.3f}, {pref['ci'][1]:+.3f}]",
                    f"{margin['value']:+.2f} [{margin['ci'][0]:+.2f}, {margin['ci'][1]:+.2f}]",
                )
            )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)))
    print("clean twin (mean over seeds and held-out pairs):")
    for stage in stages:
        nll = np.mean([behaviour[("clean", s, stage)]["nll"].mean() for s in args.seeds])
        pref = np.concatenate([behaviour[("clean", s, stage)]["pref"] for s in args.seeds])
        margin = np.mean([behaviour[("clean", s, stage)]["margin"].mean() for s in args.seeds])
        print(
            f"  {CLEAN_LABELS[stage]}: NLL/token {nll:.4f}; preference accuracy "
            f"{fmt_rate(rate(int(pref.sum()), len(pref)))}; reward margin {margin:.2f} nats"
        )
    print(f"  base tiny: NLL/token {results['base']['nll']:.4f}")
    for label, fpr in results["fpr"].items():
        print(
            f"false positives, {label}: {fmt_rate(fpr, 3)} keys (K={args.fp_k}) at p<{args.alpha}; "
            f"share p<0.05 {fpr['share_p_below_0.05']:.2f}"
        )
    print(f"{results['seconds']:.0f} s; results -> {out / 'results.json'}; figure -> {figure}")


if __name__ == "__main__":
    main()
