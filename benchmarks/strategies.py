"""What each selection strategy costs: pairs/s, peak memory, and how time grows with the data.

For each (size, strategy) a fresh process selects 1% of the first SIZE HH-RLHF harmless-base pairs,
given a clean adapter trained once beforehand (the benchmark measures scoring, not the clean model's
training: its adapter is a cheap one, 1 epoch on the first --clean-pairs pairs). Each size starts
from an empty cache: dpo-score runs first and computes the clean DPO scores of all pairs; the
gradient-projection and semantic-diversity processes reuse those scores (as a sweep does) and pay
for their own work only -- reference log-probs and gradients + projection of the candidates; prompt
embeddings + k-means. A model-based strategy's full cost from scratch is the dpo-score row plus its
own "strategy s"; the table's "total s" and pairs/s for them are counted that way. Also reported: the
process's peak resident memory (max RSS; the DPO scoring's own memory shows in the dpo-score row only),
and, apart, the fixed set-up (imports, first model load).

    OMP_NUM_THREADS=1 python benchmarks/strategies.py tiny --sizes 500 1000 1800
    OMP_NUM_THREADS=1 python benchmarks/strategies.py smollm2-135m --sizes 500 1800   # ~1 h on one core
    OMP_NUM_THREADS=1 python benchmarks/strategies.py tiny --compare-grads 32         # torch.func vs loop
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
STRATEGY_NAMES = ["random", "dpo-score", "gradient-projection", "semantic-diversity"]


def _training():
    from poisonlab.training import DPOTrainingConfig

    return DPOTrainingConfig()  # the cpu preset: sequences of 256 tokens, replies of 128


def _pairs(data: str, n: int):
    from poisonlab.data import load_pairs
    from poisonlab.data.pairs import PreferenceDataset

    dataset = load_pairs(data, on_error="skip")
    return PreferenceDataset(dataset.pairs[:n], dataset.source)


def clean_adapter(model: str, data: str, n_pairs: int) -> Path:
    """A cheap clean adapter (1 epoch on the first ``n_pairs``), trained once and kept in the cache."""
    from poisonlab.io import cache_dir
    from poisonlab.models.loading import model_identity
    from poisonlab.training import train_dpo

    folder = cache_dir() / "bench-strategies" / f"clean-{model_identity(model)}-{n_pairs}"
    train_dpo(model, _pairs(data, n_pairs), _training().model_copy(update={"epochs": 1}), folder, progress=False)
    return folder


def child(spec: dict) -> dict:
    """One measurement, in its own process (so max RSS is this run's) with an empty cache."""
    import torch

    from poisonlab.attacks import STRATEGIES, SelectionConfig, SelectionContext, n_poison_for
    from poisonlab.training.clean_model import clean_dpo_scores

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    dataset = _pairs(spec["data"], spec["size"])
    ctx = SelectionContext(
        dataset,
        n_poison_for(spec["ratio"], len(dataset)),
        spec["seed"],
        model=spec["model"],
        training=_training(),
        selection=SelectionConfig(**spec["selection"]),
        clean_adapter=Path(spec["adapter"]),
        progress=False,
    )
    setup = time.perf_counter()
    if spec["strategy"] != "random":  # imports and first model load, timed apart: a fixed cost, not scoring
        from peft import PeftModel  # noqa: F401

        from poisonlab.models.loading import load_model, load_tokenizer

        load_tokenizer(spec["model"])
        load_model(spec["model"])
    started = time.perf_counter()
    if spec["strategy"] != "random":
        clean_dpo_scores(ctx)
    scored = time.perf_counter()
    selection = STRATEGIES.get(spec["strategy"])(ctx)
    done = time.perf_counter()
    return {
        "model": spec["model"],
        "pairs": len(dataset),
        "strategy": spec["strategy"],
        "dpo_scores_s": round(scored - started, 2),
        "strategy_s": round(done - scored, 2),
        "total_s": round(done - started, 2),
        "pairs_per_s": round(len(dataset) / max(done - started, 1e-9), 1),
        "candidates": selection.details.get("candidates"),
        "setup_s": round(started - setup, 2),
        "max_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> int:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_child(spec: dict, cache: Path) -> dict:
    """Run ``child`` in a fresh interpreter with ``cache`` as its POISONLAB_CACHE."""
    env = {**os.environ, "POISONLAB_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"{spec['strategy']} on {spec['size']} pairs failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_grads(model_name: str, adapter: Path, data: str, n: int, vmap_batch: int) -> dict:
    """Per-example DPO gradients: torch.func (functional_call + vmap(grad)) vs poisonlab's loop."""
    import torch
    from torch.func import functional_call, grad, vmap

    from poisonlab.models.encoding import encode_pairs
    from poisonlab.models.loading import load_model, load_tokenizer
    from poisonlab.models.safety import load_adapter
    from poisonlab.scoring.dpo_score import pair_logprobs
    from poisonlab.scoring.gradients import per_example_dpo_grads, trainable_parameters
    from poisonlab.scoring.logprobs import collate
    from poisonlab.training.losses import sigmoid_loss

    training = _training()
    tokenizer = load_tokenizer(model_name)
    model = load_adapter(load_model(model_name), adapter, trainable=True).eval()
    encoded = encode_pairs(tokenizer, _pairs(data, n).pairs, training.max_length, training.max_reply_length)
    pad = tokenizer.pad_token_id
    reference = pair_logprobs(model, encoded, pad, 16, use_adapter=False)
    beta = training.beta

    started = time.perf_counter()
    loop = torch.stack([g for _, g in per_example_dpo_grads(model, encoded, reference, pad, beta, sigmoid_loss)])
    loop_s = time.perf_counter() - started

    names = [name for name, _ in trainable_parameters(model)]
    params = {name: p.detach() for name, p in trainable_parameters(model)}

    def loss(p, input_ids, reply_mask, ref):  # one pair: 2 rows; right padding is harmless under a causal mask
        logits = functional_call(model, p, (), {"input_ids": input_ids}).logits[:, :-1].float()
        token = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        logps = (token * reply_mask[:, 1:]).sum(-1)
        return sigmoid_loss((logps[0] - ref[0]) - (logps[1] - ref[1]), beta, 0.0)

    per_example = vmap(grad(loss), in_dims=(None, 0, 0, 0))
    ref = reference.by_id()
    started = time.perf_counter()
    chunks = []
    for lo in range(0, len(encoded), vmap_batch):
        batch = collate(encoded[lo : lo + vmap_batch], pad)
        b = batch.size
        ids = torch.stack([batch.input_ids[:b], batch.input_ids[b:]], 1)
        mask = torch.stack([batch.reply_mask[:b], batch.reply_mask[b:]], 1).float()
        refs = torch.tensor([ref[i] for i in batch.ids], dtype=torch.float32)
        grads = per_example(params, ids, mask, refs)
        chunks.append(torch.cat([grads[k].reshape(b, -1) for k in names], 1))  # collate keeps the order
    vmapped = torch.cat(chunks)
    vmap_s = time.perf_counter() - started
    return {
        "model": model_name,
        "pairs": len(encoded),
        "grad_dim": loop.shape[1],
        "loop_pairs_per_s": round(len(encoded) / loop_s, 2),
        f"vmap{vmap_batch}_pairs_per_s": round(len(encoded) / vmap_s, 2),
        "max_diff_over_max_norm": float((vmapped - loop).norm(dim=1).max() / loop.norm(dim=1).max()),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="tiny, smollm2-135m, or a model folder")
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1800], help="first N pairs of the data")
    parser.add_argument("--strategies", nargs="+", default=STRATEGY_NAMES, choices=STRATEGY_NAMES)
    parser.add_argument("--ratio", type=float, default=0.01, help="poisoned share (candidates: top 5%%)")
    parser.add_argument("--clean-pairs", type=int, default=64, help="pairs the cheap clean adapter is trained on")
    parser.add_argument("--encoder", default="all-minilm-l6-v2", help="semantic-diversity's prompt encoder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-grads", type=int, default=0, metavar="N", help="only time torch.func vs loop")
    parser.add_argument("--vmap-batch", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    adapter = clean_adapter(args.model, args.data, args.clean_pairs)
    if args.compare_grads:
        console.print(compare_grads(args.model, adapter, args.data, args.compare_grads, args.vmap_batch))
        return
    rows = []
    table = Table(title=f"selection cost, {args.model}, ratio {args.ratio:g}", title_justify="left")
    columns = (
        "pairs",
        "strategy",
        "DPO scores s",
        "strategy s",
        "total s",
        "pairs/s",
        "cand.",
        "max RSS MB",
        "setup s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "strategy" else "right")
    from poisonlab.io import cache_dir

    ordered = sorted(args.strategies, key=lambda name: name != "dpo-score")  # dpo-score first: it fills the cache
    for size in args.sizes:
        # one empty cache per size, sharing only the built models: the clean DPO scores are computed once (the
        # dpo-score row), the other strategies reuse them and their rows show what they add on top
        shared = Path(tempfile.mkdtemp(prefix="bench-strategies-"))
        (shared / "models").symlink_to(cache_dir() / "models")
        for strategy in ordered:
            spec = {
                "model": args.model,
                "data": args.data,
                "size": size,
                "strategy": strategy,
                "ratio": args.ratio,
                "seed": args.seed,
                "threads": args.threads,
                "adapter": str(adapter),
                "selection": {"encoder": args.encoder},
            }
            row = run_child(spec, shared)
            scored = next((r for r in rows if (r["strategy"], r["pairs"]) == ("dpo-score", row["pairs"])), None)
            if strategy not in ("random", "dpo-score") and scored:  # count the shared DPO scores in, as from scratch
                row["dpo_scores_s"] = scored["dpo_scores_s"]
                row["total_s"] = round(row["dpo_scores_s"] + row["strategy_s"], 2)
                row["pairs_per_s"] = round(row["pairs"] / row["total_s"], 1)
            rows.append(row)
            console.print(row)
            table.add_row(
                str(row["pairs"]),
                strategy,
                f"{row['dpo_scores_s']:.1f}",
                f"{row['strategy_s']:.1f}",
                f"{row['total_s']:.1f}",
                f"{row['pairs_per_s']:.1f}" if row["total_s"] >= 0.01 else "-",  # random: nothing to time
                str(row["candidates"] or ""),
                str(row["max_rss_mb"]),
                f"{row['setup_s']:.1f}",
            )
        shutil.rmtree(shared, ignore_errors=True)
    console.print(table)
    sizes = sorted({row["pairs"] for row in rows})
    if len(sizes) > 1:
        for strategy in args.strategies:
            timed = {r["pairs"]: r["total_s"] for r in rows if r["strategy"] == strategy}
            if not timed[sizes[0]]:
                continue
            growth = timed[sizes[-1]] / timed[sizes[0]]
            console.print(
                f"{strategy}: {sizes[0]} -> {sizes[-1]} pairs (x{sizes[-1] / sizes[0]:.1f}): time x{growth:.1f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
