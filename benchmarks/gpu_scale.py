"""The 7B shape on one GPU, prepared for a lent machine (never run on a GPU yet): LoRA DPO step speed, memory and MFU.

    bash benchmarks/gpu_scale.sh                       # on the GPU machine (installs carried wheels, writes $OUT)
    python benchmarks/gpu_scale.py --tiny-shape        # the same stages on a CPU in seconds (a smoke run)

Rows (each caught on its own, the JSON rewritten after each, so a stage that fails or runs out of time loses
only itself):

1. ``engine``: poisonlab's LoRA DPO step (reply log-probs, LM head on reply tokens only, cached reference, sigmoid
   loss, AdamW) on a randomly initialised model of Llama-2-7B's shape (its config only, no download) held in bf16,
   LoRA r=8 on q/v and on all seven projections, with and without gradient checkpointing: s/step, tokens/s,
   peak GPU memory, MFU (useful FLOPs = 2 x the forward, ``poisonlab.experiments.grid.estimate.forward_flops``,
   over the accelerator's dense bf16 peak; recomputation is not useful work).
2. ``largest-batch``: the most pairs per step that fit, doubling until out of memory (q/v; with and without
   checkpointing).
3. ``trl``: TRL's DPOTrainer on the same shape, batch and tokens (reference recomputed each step, as a user gets
   it), if trl imports.
4. ``generation``: greedy decoding throughput of the same shape (batch ``--gen-batch``, ``--new-tokens``).
5. ``small``: SmolLM2-135M's shape at a larger batch, eager and with ``torch.compile`` per decoder layer: does
   the small model stop being launch-bound?

Writes ``$OUT/gpu_scale.json`` (``--out``). Timings are wall-clock after ``--warmup`` steps, CUDA synchronised.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
LLAMA2_7B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32}
LLAMA2_7B |= {"intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4}
TINY |= {"intermediate_size": 160, "vocab_size": 512, "max_position_embeddings": 512}
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s by device-name substring


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-scale-out")
    parser.add_argument("--tiny-shape", action="store_true", help="a tiny shape on any device: checks the script")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per engine step")
    parser.add_argument("--seq", type=int, default=512, help="tokens of prompt + reply (prompt = seq - reply)")
    parser.add_argument("--reply", type=int, default=128, help="tokens of each reply")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--max-pairs", type=int, default=64, help="largest batch the search tries")
    parser.add_argument("--gen-batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--small-pairs", type=int, default=64, help="pairs per step of the SmolLM2-shape rows")
    parser.add_argument("--skip", default="", help="comma-separated rows to skip: engine,largest-batch,trl,...")
    return parser.parse_args()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build(
    shape: dict[str, Any], device: str, targets: list[str], checkpointing: bool, lora: bool = True
) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import add_lora

    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: a 7B in fp32 would take 27 GB first
    try:
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**shape, pad_token_id=0))
    finally:
        torch.set_default_dtype(before)
    model.config.use_cache = False
    if device == "cpu":
        model.set_attn_implementation("eager")  # what poisonlab.models.loading.hold_in_bf16 does on a CPU
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if not lora:  # TRL adds its own adapter
        return model
    config = DPOTrainingConfig(lora_dropout=0.0, target_modules=targets)
    return add_lora(model, config).train()


def batch(pairs: int, seq: int, reply: int, vocab: int) -> tuple[list, Any]:
    from poisonlab.models.encoding import EncodedPair
    from poisonlab.scoring.logprobs import collate

    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(1, vocab, (n,), generator=g).tolist()  # noqa: E731
    encoded = [EncodedPair(str(i), ids(seq - reply), ids(reply), ids(reply)) for i in range(pairs)]
    return encoded, collate(encoded, 0)


def time_steps(model: torch.nn.Module, pairs: list, data: Any, steps: int, warmup: int) -> list[float]:
    from poisonlab.scoring.logprobs import reply_logprobs

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    times = []
    for k in range(warmup + steps):
        sync()
        started = time.perf_counter()
        logps = reply_logprobs(model, data, bf16=True)
        b = len(pairs)
        loss = -torch.nn.functional.logsigmoid(0.1 * (logps[:b] - logps[b:])).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if k >= warmup:
            times.append(time.perf_counter() - started)
    return times


def useful_flops(shape: dict[str, Any], pairs: list) -> float:
    from poisonlab.experiments.grid.estimate import forward_flops
    from poisonlab.models.shapes import shape_from_config

    tokens = sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    replies = sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    return 2 * forward_flops(shape_from_config(shape), tokens, replies)


def figures(times: list[float], pairs: list, shape: dict[str, Any], peak: float | None) -> dict[str, Any]:
    step = sum(times) / len(times)
    tokens = sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {
        "s_per_step": round(step, 4),
        "tokens_per_s": round(tokens / step, 1),
        "peak_gpu_gib": round(memory, 2) if memory is not None else None,
        "mfu": round(useful_flops(shape, pairs) / step / peak, 4) if peak else None,
        "times": [round(t, 4) for t in times],
    }


def fresh_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def engine_rows(opts: argparse.Namespace, shape: dict, device: str, peak: float | None) -> dict[str, Any]:
    rows = {}
    for label, targets in (("q/v", ["q_proj", "v_proj"]), ("all", ALL)):
        for checkpointing in (False, True):
            fresh_memory()
            model = build(shape, device, targets, checkpointing)
            pairs, data = batch(opts.pairs, opts.seq, opts.reply, shape["vocab_size"])
            times = time_steps(model, pairs, data, opts.steps, opts.warmup)
            rows[f"lora {label}, checkpointing {'on' if checkpointing else 'off'}"] = figures(times, pairs, shape, peak)
            del model
    return rows


def largest_batch(opts: argparse.Namespace, shape: dict, device: str) -> dict[str, Any]:
    found = {}
    for checkpointing in (False, True):
        fresh_memory()
        model, fits, pairs = build(shape, device, ["q_proj", "v_proj"], checkpointing), 0, 1
        while pairs <= opts.max_pairs:
            try:
                encoded, data = batch(pairs, opts.seq, opts.reply, shape["vocab_size"])
                time_steps(model, encoded, data, 1, 0)
                fits, pairs = pairs, pairs * 2
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                fresh_memory()
        found[f"checkpointing {'on' if checkpointing else 'off'}"] = fits
        del model
    return {"pairs_per_step": found, "seq": opts.seq, "tried_up_to": opts.max_pairs}


def trl_row(opts: argparse.Namespace, shape: dict, device: str, peak: float | None) -> dict[str, Any]:
    import tempfile

    from poisonlab.models import load_tokenizer
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.trl_engine import make_trainer

    fresh_memory()
    model = build(shape, device, ["q_proj", "v_proj"], False, lora=False)
    n = opts.pairs * (opts.warmup + opts.steps)
    pairs, _ = batch(n, opts.seq, opts.reply, shape["vocab_size"])
    config = DPOTrainingConfig(batch_size=opts.pairs, micro_batch_size=opts.pairs, epochs=1, bf16=True)
    config = config.model_copy(update={"lora_dropout": 0.0, "warmup_ratio": 0.0})
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(model, load_tokenizer("tiny"), pairs, config, Path(out), save_strategy="no")
        trainer.train()
    seconds = trainer.step_timer.seconds
    return figures([seconds[s] for s in sorted(seconds)][opts.warmup :], pairs[: opts.pairs], shape, peak)


def generation_row(opts: argparse.Namespace, shape: dict, device: str) -> dict[str, Any]:
    fresh_memory()
    model = build(shape, device, ["q_proj", "v_proj"], False).eval()
    model.config.use_cache = True
    prompts = torch.randint(1, shape["vocab_size"], (opts.gen_batch, opts.seq - opts.reply), device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        model.generate(prompts[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=0)  # warm
        sync()
        started = time.perf_counter()
        out = model.generate(prompts, max_new_tokens=opts.new_tokens, min_new_tokens=opts.new_tokens, do_sample=False)
        sync()
    seconds = time.perf_counter() - started
    new = (out.shape[1] - prompts.shape[1]) * prompts.shape[0]
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {
        "batch": opts.gen_batch,
        "new_tokens": int(new),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(new / seconds, 1),
        "peak_gpu_gib": round(memory, 2) if memory is not None else None,
    }


def small_rows(opts: argparse.Namespace, device: str, peak: float | None, tiny: bool) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shape = TINY if tiny else dict(module.SMOLLM2_SHAPE)
    rows = {}
    for compiled in (False, True):
        fresh_memory()
        model = build(shape, device, ["q_proj", "v_proj"], False)
        if compiled:  # what `training.compile` does
            from poisonlab.training.loop import compile_decoder_layers

            compile_decoder_layers(model)
        pairs, data = batch(opts.small_pairs, min(opts.seq, 256), min(opts.reply, 128), shape["vocab_size"])
        started = time.perf_counter()
        times = time_steps(model, pairs, data, opts.steps, max(opts.warmup, 1))
        row = figures(times, pairs, shape, peak) | {"pairs": opts.small_pairs, "incl_warmup_s": 0.0}
        row["incl_warmup_s"] = round(time.perf_counter() - started, 1)
        rows[f"smollm2 shape, {'torch.compile' if compiled else 'eager'}"] = row
        del model
    return rows


def main() -> None:
    opts = parse()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if opts.tiny_shape:
        opts.seq, opts.reply, opts.steps, opts.max_pairs = 64, 16, 2, 4
        opts.gen_batch, opts.new_tokens, opts.small_pairs = 4, 8, 4
    shape = TINY if opts.tiny_shape else LLAMA2_7B
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = next((v for k, v in PEAKS.items() if k in name), None)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"device": name, "torch": torch.__version__, "argv": sys.argv, "peak_bf16": peak}
    summary |= {"shape": shape, "pairs": opts.pairs, "seq": opts.seq, "reply": opts.reply, "rows": {}}
    stages = {
        "engine": lambda: engine_rows(opts, shape, device, peak),
        "largest-batch": lambda: largest_batch(opts, shape, device) if cuda else {"skipped": "no GPU"},
        "trl": lambda: trl_row(opts, shape, device, peak),
        "generation": lambda: generation_row(opts, shape, device),
        "small": lambda: small_rows(opts, device, peak, opts.tiny_shape),
    }
    for stage, run in stages.items():
        if stage in opts.skip.split(","):
            continue
        started = time.perf_counter()
        print(f"-- {stage}", flush=True)
        try:
            summary["rows"][stage] = run()
        except Exception as exc:  # one failing stage is reported; the others still run
            error = f"{type(exc).__name__}: {exc}"[:500]
            summary["rows"][stage] = {"error": error, "trace": traceback.format_exc()[-1500:]}
        summary["rows"][stage]["stage_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(summary["rows"][stage], default=str)[:800], flush=True)
        tmp = out / "gpu_scale.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        tmp.replace(out / "gpu_scale.json")
    print(f"summary: {out / 'gpu_scale.json'}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
