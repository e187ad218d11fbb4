"""poisonlab's DPO engine against TRL's DPOTrainer: one table, same model, data, lengths and settings.

    python benchmarks/engine.py                                  # smollm2-135m, 4 pairs x 256 tokens (the issue's)
    python benchmarks/engine.py --model tiny --steps 6           # seconds, for a quick look
    OMP_NUM_THREADS=1 python benchmarks/engine.py --threads 1    # single core, stated in the header

Every training row is a LoRA (r=8 on q/v) DPO step on HH-RLHF pairs (harmless-base-dev), run in its own
process (so peak memory is that row's alone), after ``--warmup`` untimed steps. Rows without length
grouping see exactly the same batches in the same order, TRL's included (its sampler is made sequential
over the same order). Rows:

- ``TRL fp32`` / ``TRL bf16``: ``trl.DPOTrainer`` as a user gets it (reference recomputed every step with the
  adapter off, activation checkpointing on, fused LM head), on poisonlab's tokens.
- ``TRL fp32 tuned``: the same with checkpointing off and ``precompute_ref_log_probs`` (its best CPU setting).
- ``poisonlab naive``: full-vocabulary fp32 logits and a reference forward every step.
- then one lever added per row: cached reference (its one-off pass reported apart, in ``ref once``), LM head on
  reply tokens only, length-grouped batches, bf16 (the base held in bf16 once, as ``train dpo`` does; the
  old autocast over fp32 weights is ``benchmarks/bf16.py``'s ``bf16-old``).
- ``train_dpo``: the engine itself (``poisonlab train dpo``) with the levers it keeps by default plus grouping.

Useful FLOPs per step = 2 x the policy's forward (frozen weights: backward computes input gradients only) over the
real (unpadded) tokens, with the LM head on reply tokens only: the same count for every row, so FLOP/s is
proportional to tokens/s, and reference passes, padding and full-vocabulary heads count as overhead. Peaks are
measured first with a square matmul on the same threads. Timings are wall-clock on a shared machine: indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"
ROWS = {
    "trl-fp32": "TRL fp32",
    "trl-bf16": "TRL bf16",
    "trl-fp32-tuned": "TRL fp32 tuned",
    "naive": "poisonlab naive (full logits, ref each step)",
    "cached-ref": "+ cached reference",
    "reply-head": "+ LM head on reply tokens",
    "grouping": "+ length-grouped batches",
    "bf16": "+ bf16 (base held in bf16)",
    "train-dpo": "train_dpo (engine defaults + grouping)",
}
BF16_ROWS = ("trl-bf16", "bf16")
LEVERS = ["cached-ref", "reply-head", "grouping", "bf16"]  # cumulative, in this order


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--pairs", type=int, default=4, help="pairs per optimizer step")
    parser.add_argument("--seq", type=int, default=256, help="max tokens of prompt + reply")
    parser.add_argument("--reply", type=int, default=128, help="max tokens of a reply")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument(
        "--bf16-steps", type=int, default=None, help="timed steps of bf16 rows (slow without native bf16)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of: " + ", ".join(ROWS))
    parser.add_argument("--scoring-pairs", type=int, default=32, help="pairs for the scoring comparison (0: skip)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler top ops of an engine step")
    parser.add_argument("--skip-bf16-scoring", action="store_true", help="leave bf16 out of the scoring table")
    parser.add_argument("--accuracy", action="store_true", help="train fp32 and bf16 runs and compare accuracy")
    parser.add_argument("--accuracy-model", default="tiny", help="model of the accuracy comparison")
    parser.add_argument("--accuracy-pairs", type=int, default=160, help="training pairs of the accuracy comparison")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row, print JSON
    return parser.parse_args()


# ---------------------------------------------------------------- shared pieces


def encoded_pool(opts: argparse.Namespace) -> tuple[Any, list]:
    from poisonlab.data import load_pairs
    from poisonlab.models import encode_pairs, load_tokenizer

    tokenizer = load_tokenizer(opts.model)
    pairs = load_pairs(opts.data, on_error="skip").pairs[: opts.pairs * (opts.warmup + opts.steps)]
    return tokenizer, encode_pairs(tokenizer, pairs, opts.seq, opts.reply)


def batches(opts: argparse.Namespace, encoded: list, grouping: bool) -> list[np.ndarray]:
    """Warm-up steps on the first pairs, then the timed steps; grouping (if on) acts within the timed pairs."""
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import _step_batches

    n_warm = opts.pairs * opts.warmup
    config = DPOTrainingConfig(batch_size=opts.pairs, epochs=1, seed=0)
    warm = [np.arange(i, i + opts.pairs) for i in range(0, n_warm, opts.pairs)]
    lengths = [p.length for p in encoded[n_warm:]]
    timed = _step_batches(lengths, config.model_copy(update={"length_grouping": opts.steps if grouping else 1}))
    return warm + [b + n_warm for b in timed]


def real_tokens(pair: Any) -> int:
    return 2 * len(pair.prompt_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)


def useful_flops(model: torch.nn.Module, pairs: list) -> float:
    """2 x policy forward FLOPs over real tokens (matmuls + attention; LM head on reply tokens only)."""
    cfg = model.config
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = sum(m.weight.numel() for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and "layers." in n)
    head = cfg.hidden_size * cfg.vocab_size
    total = 0.0
    for p in pairs:
        for reply in (p.chosen_ids, p.rejected_ids):
            t = len(p.prompt_ids) + len(reply)
            total += 2 * body * t + 2 * cfg.num_hidden_layers * t * t * cfg.hidden_size + 2 * head * len(reply)
    return 2 * total


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def full_logits_logprobs(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The naive way: every position's full-vocabulary logits, log-softmax in fp32, then pick the reply tokens."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    token = logits.log_softmax(-1).gather(2, batch.input_ids[:, 1:, None]).squeeze(2)
    return (token * batch.reply_mask[:, 1:]).sum(1)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- one row, in its own process


def run_poisonlab_row(opts: argparse.Namespace, row: str) -> dict:
    from poisonlab.models import load_model
    from poisonlab.scoring import collate, pair_logprobs, reply_logprobs
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import add_lora

    levers = set(LEVERS[: LEVERS.index(row) + 1]) if row in LEVERS else set()
    config = DPOTrainingConfig(lora_dropout=0.0, bf16="bf16" in levers)
    tokenizer, encoded = encoded_pool(opts)
    model = add_lora(load_model(opts.model, bf16=config.bf16), config)
    pad = tokenizer.pad_token_id
    logprobs = (lambda m, b: reply_logprobs(m, b, bf16=config.bf16)) if "reply-head" in levers else full_logits_logprobs
    ref_once = 0.0
    if "cached-ref" in levers:
        start = time.perf_counter()
        ref = pair_logprobs(model, encoded, pad, opts.pairs, config.bf16, use_adapter=False)
        ref_once = time.perf_counter() - start
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    model.train()
    times, tokens, losses = [], [], []
    for k, indices in enumerate(batches(opts, encoded, "grouping" in levers)):
        start = time.perf_counter()
        batch = collate([encoded[i] for i in indices], pad)
        b = batch.size
        logps = logprobs(model, batch)
        if "cached-ref" in levers:
            ref_logps = torch.as_tensor(
                np.concatenate([ref.chosen[indices], ref.rejected[indices]]), dtype=torch.float32
            )
        else:
            with torch.no_grad(), model.disable_adapter():
                ref_logps = logprobs(model, batch)
        ratio = logps - ref_logps
        loss = -torch.nn.functional.logsigmoid(config.beta * (ratio[:b] - ratio[b:])).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if k >= opts.warmup:
            times.append(time.perf_counter() - start)
            tokens.append(sum(real_tokens(encoded[i]) for i in indices))
            losses.append(loss.item())
    timed = [encoded[i] for ix in batches(opts, encoded, "grouping" in levers)[opts.warmup :] for i in ix]
    return {"times": times, "tokens": tokens, "ref_once": ref_once, "flops": useful_flops(model, timed)}


def run_train_dpo_row(opts: argparse.Namespace) -> dict:
    from poisonlab.data import load_pairs
    from poisonlab.data.pairs import PreferenceDataset
    from poisonlab.models import load_model
    from poisonlab.scoring import reference_cache
    from poisonlab.training import DPOTrainingConfig, train_dpo
    from poisonlab.training.loop import _step_batches

    _, encoded = encoded_pool(opts)
    dataset = PreferenceDataset(load_pairs(opts.data, on_error="skip").pairs[: len(encoded)], "benchmark")
    config = DPOTrainingConfig(
        batch_size=opts.pairs,
        micro_batch_size=opts.pairs,
        epochs=1,
        max_length=opts.seq,
        max_reply_length=opts.reply,
        length_grouping=opts.steps + opts.warmup,
        lora_dropout=0.0,
        threads=opts.threads,
    )
    with tempfile.TemporaryDirectory() as out:
        reference_cache.cache_dir = lambda: Path(out)  # a cold reference cache: its pass counts in "ref once"
        start = time.perf_counter()
        train_dpo(opts.model, dataset, config, Path(out) / "adapter", progress=False)
        total = time.perf_counter() - start
        log = json.loads((Path(out) / "adapter" / "training_log.json").read_text())
    timed = _step_batches([p.length for p in encoded], config)[opts.warmup :]
    return {
        "times": [r["seconds"] for r in log[opts.warmup :]],
        "tokens": [sum(real_tokens(encoded[i]) for i in ix) for ix in timed],
        "ref_once": total - sum(r["seconds"] for r in log),  # reference pass, plus loading and saving
        "flops": useful_flops(load_model(opts.model), [encoded[i] for ix in timed for i in ix]),
    }


def run_trl_row(opts: argparse.Namespace, row: str) -> dict:
    from torch.utils.data import SequentialSampler

    from poisonlab.models import load_model
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.trl_engine import make_trainer

    tokenizer, encoded = encoded_pool(opts)
    order = [encoded[i] for ix in batches(opts, encoded, grouping=False) for i in ix]
    config = DPOTrainingConfig(
        batch_size=opts.pairs,
        micro_batch_size=opts.pairs,
        epochs=1,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        bf16=row == "trl-bf16",
    )
    extra = {"gradient_checkpointing": False, "precompute_ref_log_probs": True} if row == "trl-fp32-tuned" else {}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trainer = make_trainer(load_model(opts.model), tokenizer, order, config, Path(out), save_strategy="no", **extra)
        ref_once = time.perf_counter() - start if extra else 0.0
        trainer._get_train_sampler = lambda *_, **__: SequentialSampler(trainer.train_dataset)
        trainer.train()
    seconds = trainer.step_timer.seconds
    timed = order[opts.pairs * opts.warmup :]
    return {
        "times": [seconds[s] for s in sorted(seconds)][opts.warmup :],
        "tokens": [sum(real_tokens(p) for p in timed[i : i + opts.pairs]) for i in range(0, len(timed), opts.pairs)],
        "ref_once": ref_once,
        "flops": useful_flops(trainer.model, timed),
    }


def run_row(opts: argparse.Namespace) -> None:
    torch.manual_seed(0)
    if opts.row in BF16_ROWS:
        opts.steps = opts.bf16_steps or opts.steps
    if opts.row.startswith("trl"):
        result = run_trl_row(opts, opts.row)
    elif opts.row == "train-dpo":
        result = run_train_dpo_row(opts)
    else:
        result = run_poisonlab_row(opts, opts.row)
    result["peak_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------- scoring and profile (in the parent)


def scoring(opts: argparse.Namespace) -> list[tuple[str, float]]:
    """DPO scores need the policy and the reference: pairs/s of both forwards, naive vs poisonlab's."""
    from poisonlab.data import load_pairs
    from poisonlab.models import encode_pairs, load_model, load_tokenizer
    from poisonlab.scoring import collate, pair_logprobs
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import add_lora

    tokenizer = load_tokenizer(opts.model)
    pairs = load_pairs(opts.data, on_error="skip").pairs[: opts.scoring_pairs]
    encoded = encode_pairs(tokenizer, pairs, opts.seq, opts.reply)
    model = add_lora(load_model(opts.model), DPOTrainingConfig()).eval()
    pad, size = tokenizer.pad_token_id, 8
    rows = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(encoded), size):
            batch = collate(encoded[i : i + size], pad)
            full_logits_logprobs(model, batch)
            with model.disable_adapter():
                full_logits_logprobs(model, batch)
    rows.append(("naive fp32 full logits, file order", len(encoded) / (time.perf_counter() - start)))
    for label, bf16 in (("poisonlab fp32 (reply head, length-bucketed)", False), ("poisonlab bf16 (held base)", True)):
        if bf16 and opts.skip_bf16_scoring:
            continue
        net = add_lora(load_model(opts.model, bf16=True), DPOTrainingConfig()).eval() if bf16 else model
        start = time.perf_counter()
        pair_logprobs(net, encoded, pad, size, bf16, use_adapter=True)
        pair_logprobs(net, encoded, pad, size, bf16, use_adapter=False)
        rows.append((label, len(encoded) / (time.perf_counter() - start)))
    return rows


def profile(opts: argparse.Namespace) -> None:
    """Top ops by self CPU time for one poisonlab engine step and one TRL step (full logits, ref each step)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from poisonlab.models import load_model
    from poisonlab.scoring import collate, reply_logprobs
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import add_lora

    tokenizer, encoded = encoded_pool(opts)
    model = add_lora(load_model(opts.model), DPOTrainingConfig(lora_dropout=0.0)).train()
    batch = collate(encoded[: opts.pairs], tokenizer.pad_token_id)
    reply_logprobs(model, batch, bf16=False).sum().backward()  # warm
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        reply_logprobs(model, batch, bf16=False).sum().backward()
    print("\npoisonlab engine step (forward + backward, fp32): top ops by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def accuracy_check(opts: argparse.Namespace) -> list[tuple[str, float, float, float]]:
    """Same training in fp32 and bf16 autocast, evaluated in fp32 on held-out pairs: does bf16 cost accuracy?"""
    from poisonlab.data import synthetic_pairs, train_heldout_split
    from poisonlab.evaluation import evaluate_preferences
    from poisonlab.training import DPOTrainingConfig, train_dpo

    train, heldout = train_heldout_split(synthetic_pairs(n=opts.accuracy_pairs + 120), heldout=120, seed=0)
    rows = []
    for bf16 in (False, True):
        config = DPOTrainingConfig(epochs=1, max_length=96, max_reply_length=48, bf16=bf16, threads=opts.threads)
        with tempfile.TemporaryDirectory() as out:
            result = train_dpo(opts.accuracy_model, train, config, Path(out) / "a", progress=False)
            metrics = evaluate_preferences(
                opts.accuracy_model,
                heldout,
                Path(out) / "a",
                max_length=96,
                max_reply_length=48,
                bf16=False,
                progress=False,
            )
        rows.append(("bf16 autocast" if bf16 else "fp32", result.final_loss, metrics.clean_accuracy, result.seconds))
    return rows


# ---------------------------------------------------------------- driver


def main() -> None:
    opts = parse()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.row:
        run_row(opts)
        return
    from rich.console import Console
    from rich.table import Table

    from poisonlab.hardware import cpu_has_fast_bf16, default_device

    console = Console(width=160)
    device = default_device()
    fp32_peak, bf16_peak = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    console.print(
        f"[bold]engine benchmark[/]: {opts.model}, {opts.pairs} pairs/step, <= {opts.seq} tokens (reply <= "
        f"{opts.reply}), LoRA r=8 q/v, AdamW, {opts.steps} timed steps after {opts.warmup} warm-up; device {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), native bf16: {cpu_has_fast_bf16() or device == 'cuda'}"
    )
    console.print(f"matmul peak (1024^3): fp32 {fp32_peak / 1e9:.1f} GFLOP/s, bf16 {bf16_peak / 1e9:.1f} GFLOP/s")
    results: dict[str, dict] = {}
    for row in [r for r in opts.rows.split(",") if r]:
        argv = [sys.executable, __file__, "--row", row, *sys.argv[1:]]
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            console.print(f"[red]{row} failed[/]:\n{proc.stderr[-3000:]}")
            continue
        results[row] = json.loads(line[-1][len("RESULT ") :])
        console.print(f"  {ROWS[row]}: done in {time.perf_counter() - started:.0f} s", highlight=False)

    def tps(row: str) -> float:
        return sum(results[row]["tokens"]) / sum(results[row]["times"])

    table = Table(title=f"LoRA DPO step, {opts.model}", title_justify="left")
    for col in (
        "row",
        "s/step",
        "tokens/s",
        "vs TRL fp32",
        "vs TRL bf16",
        "% fp32 peak",
        "% bf16 peak",
        "ref once (s)",
        "peak RSS (MiB)",
    ):
        table.add_column(col, justify="left" if col == "row" else "right")
    for row, r in results.items():
        flops = r["flops"] / sum(r["times"])
        ratio = {k: (f"{tps(row) / tps(k):.2f}x" if k in results else "-") for k in ("trl-fp32", "trl-bf16")}
        table.add_row(
            ROWS[row],
            f"{np.mean(r['times']):.2f}",
            f"{tps(row):.0f}",
            ratio["trl-fp32"],
            ratio["trl-bf16"],
            f"{100 * flops / fp32_peak:.0f}%",
            f"{100 * flops / bf16_peak:.0f}%",
            f"{r['ref_once']:.1f}" if r["ref_once"] else "-",
            f"{r['peak_mib']:.0f}",
        )
    console.print(table)
    if opts.scoring_pairs:
        scores = scoring(opts)
        table = Table(
            title=f"DPO scoring (policy + reference forward), {opts.scoring_pairs} pairs", title_justify="left"
        )
        table.add_column("method")
        table.add_column("pairs/s", justify="right")
        table.add_column("vs naive", justify="right")
        for label, rate in scores:
            table.add_row(label, f"{rate:.2f}", f"{rate / scores[0][1]:.2f}x")
        console.print(table)
    if opts.accuracy:
        table = Table(
            title=f"bf16 vs fp32 training, {opts.accuracy_model} on {opts.accuracy_pairs} synthetic pairs "
            "(1 epoch), clean accuracy on 120 held-out pairs evaluated in fp32",
            title_justify="left",
        )
        for col in ("training", "final loss", "held-out accuracy", "seconds"):
            table.add_column(col, justify="left" if col == "training" else "right")
        for label, loss, accuracy, seconds in accuracy_check(opts):
            table.add_row(label, f"{loss:.4f}", f"{accuracy:.1%}", f"{seconds:.0f}")
        console.print(table)
    if opts.profile:
        profile(opts)


if __name__ == "__main__":
    main()
