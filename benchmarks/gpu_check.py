"""The GPU path, checked in one short run: engine speed, one quickstart study, and its agreement with the CPU.

    bash benchmarks/gpu_check.sh                 # on the GPU machine (installs the carried wheels first)
    python benchmarks/gpu_check.py --cpu         # the dry check of this script on a CPU (smaller, same stages)

Stages, each in its own process with its own time limit, so one failing stage is reported and the rest run:

1. ``tiny`` built here (from code, no download) and a randomly initialised model of SmolLM2-135M's shape
   (LlamaConfig: hidden 576, 30 layers, 9 heads, 3 kv heads, intermediate 1536, vocab 49152; tiny's byte-level
   tokenizer), since SmolLM2's weights do not fit in what the machine may take along. Speed depends on the
   shape, not on the weights.
2. The engine benchmark (``benchmarks/engine.py``) rows ``train-dpo`` (poisonlab's engine, bf16 where the GPU has
   it) and, with trl installed, ``trl-fp32`` / ``trl-bf16``, on both models: s/step, tokens/s, peak GPU memory.
3. The quickstart's clean run and its random 5% backdoor (with its scans), trained on the GPU in fp32, and
   the same study on this machine's CPU (``CUDA_VISIBLE_DEVICES=``): every metric side by side.

Prints a table and writes ``OUT/gpu_check.json`` (OUT: ``--out``, default ``$OUT`` or ``gpu-check-out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_SHAPE = {
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "max_position_embeddings": 2048,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
QUICKSTART = ["--set", "strategies=[random]", "--set", "ratios=[0.05]", "--set", "training.bf16=false"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out", help="folder for the results")
    parser.add_argument("--cpu", action="store_true", help="dry check on a CPU: fewer steps, no CPU-vs-CPU study")
    parser.add_argument("--pairs", type=int, default=8, help="pairs per engine step")
    parser.add_argument("--seq", type=int, default=256, help="max tokens of prompt + reply")
    parser.add_argument("--reply", type=int, default=128, help="max tokens of a reply")
    parser.add_argument("--steps", type=int, default=None, help="timed engine steps (default 8; 2 with --cpu)")
    parser.add_argument("--skip-trl", action="store_true", help="leave TRL's rows out")
    parser.add_argument("--skip-cpu-study", action="store_true", help="no CPU quickstart to compare the GPU's with")
    parser.add_argument("--stage-timeout", type=int, default=240, help="seconds one stage may take")
    parser.add_argument("--engine-row", help=argparse.SUPPRESS)  # internal: one engine row, in its own process
    parser.add_argument("--model", help=argparse.SUPPRESS)
    return parser.parse_args()


def random_smollm2_shape(folder: Path) -> Path:
    """A LlamaForCausalLM of SmolLM2-135M's shape with seeded random weights and tiny's tokenizer."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from poisonlab.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    torch.manual_seed(0)
    config = LlamaConfig(**SMOLLM2_SHAPE, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    staging.rename(folder)
    return folder


def engine_row(opts: argparse.Namespace) -> None:
    """Run one row of benchmarks/engine.py here and print its result with the GPU's peak memory."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("engine", ROOT / "benchmarks" / "engine.py")
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    sys.argv = ["engine.py", "--row", opts.engine_row, "--model", opts.model, "--data", "synthetic"]
    sys.argv += ["--pairs", str(opts.pairs), "--seq", str(opts.seq), "--reply", str(opts.reply)]
    sys.argv += ["--steps", str(opts.steps), "--warmup", "1"]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    engine.run_row(engine.parse())  # prints RESULT {...}
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    print("GPU_PEAK " + json.dumps({"bytes": gpu}))


def stage(name: str, argv: list[str], timeout: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one stage in its own process; its output, return code and seconds, or why it stopped."""
    started = time.perf_counter()
    print(f"-- {name}", flush=True)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT
        )
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = "timeout", (exc.stdout or b"").decode(), (exc.stderr or b"").decode()
    seconds = round(time.perf_counter() - started, 1)
    if code != 0:
        print(f"   {name} failed ({code}) after {seconds} s:\n{stderr[-2000:]}", flush=True)
    return {"name": name, "returncode": code, "seconds": seconds, "stdout": stdout, "stderr_tail": stderr[-2000:]}


def engine_figures(result: dict[str, Any]) -> dict[str, Any] | None:
    lines = result["stdout"].splitlines()
    row = [json.loads(x[len("RESULT ") :]) for x in lines if x.startswith("RESULT ")]
    peak = [json.loads(x[len("GPU_PEAK ") :]) for x in lines if x.startswith("GPU_PEAK ")]
    if not row:
        return None
    r = row[-1]
    return {
        "s_per_step": round(sum(r["times"]) / len(r["times"]), 4),
        "tokens_per_s": round(sum(r["tokens"]) / sum(r["times"]), 1),
        "ref_once_s": round(r["ref_once"], 2),
        "peak_gpu_mib": round(peak[-1]["bytes"] / 2**20, 1) if peak else None,
        "peak_rss_mib": round(r["peak_mib"], 1),
    }


def study_metrics(folder: Path) -> list[dict[str, Any]] | None:
    path = folder / "results.json"
    if not path.exists():
        return None
    keep = ("run", "clean_accuracy", "backdoor_success", "n_heldout", "minutes", "metrics")
    rows = json.loads(path.read_text())
    return [
        {k: row[k] for k in keep if k in row} | {k: v for k, v in row.items() if k.startswith("auroc")} for row in rows
    ]


def agreement(gpu: list[dict[str, Any]] | None, cpu: list[dict[str, Any]] | None) -> dict[str, float] | None:
    """Largest absolute difference of each numeric metric between the GPU and the CPU study."""
    if not gpu or not cpu:
        return None
    diffs: dict[str, float] = {}
    for a, b in zip(gpu, cpu):
        for key, value in a.items():
            if key != "minutes" and isinstance(value, float) and isinstance(b.get(key), float):
                diffs[key] = max(diffs.get(key, 0.0), round(abs(value - b[key]), 6))
    return diffs


def main() -> None:
    opts = parse()
    opts.steps = opts.steps or (2 if opts.cpu else 8)
    if opts.engine_row:
        engine_row(opts)
        return
    import torch

    out = Path(opts.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    if not cuda and not opts.cpu:
        sys.exit("no GPU visible: run with --cpu for the dry check")
    summary: dict[str, Any] = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "cuda": torch.version.cuda,
        "argv": sys.argv,
        "stages": [],
    }
    started = time.perf_counter()
    from poisonlab.models import resolve_model

    resolve_model("tiny")
    summary["build_tiny_s"] = round(time.perf_counter() - started, 1)
    shape = random_smollm2_shape(Path(os.environ.get("POISONLAB_CACHE", out)) / "smollm2-shape-random")
    models = {"tiny": "tiny", "smollm2-shape": str(shape)}
    rows = ["train-dpo"] if opts.cpu else ["train-dpo", "trl-fp32", "trl-bf16"]
    try:
        import trl  # noqa: F401
    except ImportError:
        opts.skip_trl = True
    rows = [r for r in rows if not (opts.skip_trl and r.startswith("trl"))]
    engine: dict[str, Any] = {}
    for label, model in models.items():
        for row in rows:
            argv = [sys.executable, __file__, "--engine-row", row, "--model", model, "--steps", str(opts.steps)]
            argv += ["--pairs", str(opts.pairs), "--seq", str(opts.seq), "--reply", str(opts.reply)]
            result = stage(f"engine {row} on {label}", argv, opts.stage_timeout, {"TQDM_DISABLE": "1"})
            engine[f"{label} {row}"] = engine_figures(result)
            summary["stages"].append({k: v for k, v in result.items() if k != "stdout"})
    summary["engine"] = engine
    save = lambda: (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")  # noqa: E731
    save()  # the engine figures are kept if the study runs out of time

    cli = [sys.executable, "-m", "poisonlab.cli", "run", "configs/quickstart.yaml", *QUICKSTART]
    devices = {"gpu": None, "cpu": ""} if cuda else {"cpu": ""}
    if cuda and opts.skip_cpu_study:
        del devices["cpu"]
    studies = {}
    for device, visible in devices.items():
        env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
        result = stage(
            f"quickstart on {device}", [*cli, "--out", str(out / f"quickstart-{device}")], 2 * opts.stage_timeout, env
        )
        summary["stages"].append({k: v for k, v in result.items() if k != "stdout"})
        studies[device] = study_metrics(out / f"quickstart-{device}")
    summary["quickstart"] = studies
    summary["gpu_vs_cpu_max_abs_difference"] = agreement(studies.get("gpu"), studies.get("cpu"))
    summary["total_s"] = round(time.perf_counter() - started, 1)

    save()
    print(
        f"\n{summary['device']} (torch {summary['torch']}, CUDA {summary['cuda']}); tiny: {summary['build_tiny_s']} s"
    )
    print(f"{'engine row':34} {'s/step':>8} {'tokens/s':>10} {'peak GPU MiB':>13} {'peak RSS MiB':>13}")
    for name, fig in engine.items():
        if fig is None:
            print(f"{name:34} failed (see gpu_check.json)")
        else:
            print(
                f"{name:34} {fig['s_per_step']:>8.3f} {fig['tokens_per_s']:>10.0f} {fig['peak_gpu_mib'] or 0:>13.0f} "
                f"{fig['peak_rss_mib']:>13.0f}"
            )
    for device, rows_ in studies.items():
        for row in rows_ or []:
            print(f"quickstart {device}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "metrics"))
    print(f"GPU vs CPU, largest difference per metric: {summary['gpu_vs_cpu_max_abs_difference']}")
    print(f"total {summary['total_s']} s; summary: {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
