"""bf16 that pays on a CPU with native bf16 (AMX / AVX512_BF16): fp32, bf16 autocast over fp32 weights (the old
path) and the base held in bf16 (``models.loading.hold_in_bf16``, the path ``bf16: true`` takes now), interleaved.

    OMP_NUM_THREADS=1 python benchmarks/bf16.py                       # SmolLM2-135M's shape, random weights
    OMP_NUM_THREADS=1 python benchmarks/bf16.py --rounds 5 --compile  # + per-layer torch.compile (minutes to compile)
    OMP_NUM_THREADS=1 python benchmarks/bf16.py --profile bf16-new    # torch.profiler's top ops of one step
    python benchmarks/bf16.py --shape tiny --rounds 1                 # seconds: a smoke run

Every variant is one engine step as ``train dpo`` takes it (LoRA r=8 on q/v, reply log-probs with the LM head on
reply tokens only, cached reference, sigmoid DPO loss, backward, clipping, AdamW) on the same batch: ``--pairs``
pairs of random token ids, prompts of ``--prompt`` tokens and replies of ``--reply`` tokens or a few less, on a
model of SmolLM2-135M's shape built from its config with seeded random weights (speed depends on the shape, not
on the weights; nothing is downloaded, no SmolLM2 process runs). The variants run one step each in turn, for
``--rounds`` rounds after a warm-up round, so a loaded machine slows them alike; the table gives the fastest
and the median step of each. Useful FLOPs are counted as in ``benchmarks/engine.py`` (2 x the policy's forward
over real tokens), against the fp32 and bf16 matmul peaks measured first on the same threads: the "bf16 share
of peak". ``max |dlogp|``: the largest difference of a sequence's reply log-prob from fp32's at the first step.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
VARIANTS = {
    "fp32": "fp32 (fp32 weights, SDPA attention)",
    "bf16-old": "bf16 autocast over fp32 weights, SDPA (before)",
    "bf16-new": "base held in bf16 + eager attention (now)",
    "fp32-eager": "fp32 with eager attention (not shipped)",
    "bf16-new-compile": "bf16-new + torch.compile per decoder layer",
}
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
TINY_SHAPE |= {"intermediate_size": 128, "vocab_size": 1024, "max_position_embeddings": 512}


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=["smollm2", "tiny"], default="smollm2", help="model shape (tiny: smoke)")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per step")
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--reply", type=int, default=128, help="longest reply's tokens")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (one step of every variant each)")
    parser.add_argument("--variants", default="fp32,bf16-old,bf16-new", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--compile", action="store_true", help="add the bf16-new-compile variant")
    parser.add_argument("--profile", help="print torch.profiler's top ops of one step of this variant")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser.parse_args()


def batch_of(opts: argparse.Namespace, vocab: int) -> Any:
    from poisonlab.models.encoding import EncodedPair
    from poisonlab.scoring.logprobs import collate

    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(1, vocab, (max(1, n),), generator=g).tolist()  # noqa: E731
    pairs = [
        EncodedPair(str(i), ids(opts.prompt), ids(opts.reply - 6 * i), ids(opts.reply - 20 + 4 * i))
        for i in range(opts.pairs)
    ]
    return pairs, collate(pairs, 0)


def build(variant: str, shape: dict[str, Any]) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    from poisonlab.models.loading import hold_in_bf16
    from poisonlab.training import DPOTrainingConfig
    from poisonlab.training.loop import add_lora

    torch.manual_seed(0)
    config = LlamaConfig(**{"tie_word_embeddings": True, **shape}, pad_token_id=0)
    model = LlamaForCausalLM(config)
    model.config.use_cache = False
    if variant == "fp32-eager":
        model.set_attn_implementation("eager")
    if variant.startswith("bf16-new"):
        model = hold_in_bf16(model, "cpu")
    model = add_lora(model, DPOTrainingConfig(lora_dropout=0.0))
    if variant.endswith("compile"):
        for layer in model.get_base_model().model.layers:
            layer.compile(dynamic=False)
    return model.train()


def main() -> None:
    opts = parse()
    from poisonlab.hardware import cpu_has_fast_bf16, torch_cpu_capability
    from poisonlab.scoring.logprobs import reply_logprobs

    engine = load_script("engine")
    shape = TINY_SHAPE if opts.shape == "tiny" else load_script("gpu_check").SMOLLM2_SHAPE
    variants = [v for v in opts.variants.split(",") if v] + (["bf16-new-compile"] if opts.compile else [])
    fp32_peak, bf16_peak = engine.matmul_peak(torch.float32), engine.matmul_peak(torch.bfloat16)
    pairs, batch = batch_of(opts, shape["vocab_size"])
    models = {v: build(v, shape) for v in variants}
    optimizers = {
        v: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for v, m in models.items()
    }
    ref = torch.zeros(2 * len(pairs))

    def step(variant: str) -> torch.Tensor:
        model = models[variant]
        logps = reply_logprobs(model, batch, bf16=not variant.startswith("fp32"))
        b = len(pairs)
        margin = (logps[:b] - ref[:b]) - (logps[b:] - ref[b:])
        loss = -torch.nn.functional.logsigmoid(0.1 * margin).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizers[variant].step()
        optimizers[variant].zero_grad(set_to_none=True)
        return logps.detach()

    print(
        f"bf16 benchmark: {opts.shape} shape, {len(pairs)} pairs of <= {batch.input_ids.shape[1]} tokens, "
        f"{torch.get_num_threads()} thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"torch {torch.__version__}, capability {torch_cpu_capability()}, native bf16: {cpu_has_fast_bf16()}; "
        f"matmul peak fp32 {fp32_peak / 1e9:.1f} GFLOP/s, bf16 {bf16_peak / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    first, warm = {}, {}
    for variant in variants:  # warm-up round (compiles), and the first step's log-probs
        started = time.perf_counter()
        first[variant] = step(variant)
        warm[variant] = time.perf_counter() - started
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(opts.rounds):
        for variant in variants:
            started = time.perf_counter()
            step(variant)
            times[variant].append(time.perf_counter() - started)
    flops = engine.useful_flops(models[variants[0]], pairs)
    base = {v: min(times[v]) for v in ("fp32", "bf16-old") if v in times}
    rows = []
    header = f"{'variant':48} {'min s':>7} {'median s':>9} {'vs fp32':>8} {'vs old':>7} {'%fp32pk':>8} {'%bf16pk':>8}"
    print(header + f" {'max |dlogp|':>11} {'warm-up s':>9}")
    for variant in variants:
        fastest, median = min(times[variant]), statistics.median(times[variant])
        row = {
            "variant": variant,
            "min_s": round(fastest, 4),
            "median_s": round(median, 4),
            "speedup_vs_fp32": round(base["fp32"] / fastest, 3) if "fp32" in base else None,
            "speedup_vs_bf16_old": round(base["bf16-old"] / fastest, 3) if "bf16-old" in base else None,
            "share_fp32_peak": round(flops / fastest / fp32_peak, 4),
            "share_bf16_peak": round(flops / fastest / bf16_peak, 4),
            "max_abs_logp_diff_vs_fp32": round((first[variant] - first[variants[0]]).abs().max().item(), 5),
            "warmup_s": round(warm[variant], 2),
            "times": [round(t, 4) for t in times[variant]],
        }
        rows.append(row)
        vs_fp32, vs_old = (f"{row[k]:.2f}x" if row[k] else "-" for k in ("speedup_vs_fp32", "speedup_vs_bf16_old"))
        print(
            f"{VARIANTS[variant]:48} {fastest:7.3f} {median:9.3f} {vs_fp32:>8} {vs_old:>7} "
            f"{100 * row['share_fp32_peak']:7.0f}% {100 * row['share_bf16_peak']:7.0f}% "
            f"{row['max_abs_logp_diff_vs_fp32']:11.4f} {row['warmup_s']:9.1f}"
        )
    print(f"(max |dlogp| is against {variants[0]}; useful work {flops / 1e9:.1f} GFLOP per step)")
    if opts.json:
        out = {"argv": sys.argv, "shape": opts.shape, "threads": torch.get_num_threads(), "rows": rows}
        out |= {"fp32_peak_gflops": fp32_peak / 1e9, "bf16_peak_gflops": bf16_peak / 1e9, "useful_gflop": flops / 1e9}
        Path(opts.json).write_text(json.dumps(out, indent=2) + "\n")
    if opts.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(opts.profile)
        print(f"\n{VARIANTS[opts.profile]}: top ops by self CPU time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
