"""Data-parallel training on CPU: ``accelerate launch`` with two processes (gloo) trains the same adapter as one.

Both engines split each optimizer step's micro-batches over the processes and sum (poisonlab) or average
(TRL, with the gradient accumulation divided by the world size) the gradients, so two processes take the
same steps as one. Only the order of float additions differs: fp32 adapters agree to 1e-5 (absolute, per
weight); in practice to about 1e-7.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from poisonlab.data import synthetic_pairs, write_pairs

pytestmark = pytest.mark.slow
FLAGS = ["--epochs", "1", "--batch-size", "8", "--micro-batch-size", "2", "--max-length", "64"]
FLAGS += ["--max-reply-length", "32", "--threads", "1", "--bf16", "false", "--lora-dropout", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(launcher: list[str], data: Path, out: Path, engine: str, tiny: str, env: dict[str, str]) -> None:
    command = [*launcher, "train", "dpo", "--data", str(data), "--out", str(out), "--model", tiny]
    done = subprocess.run([*command, "--engine", engine, *FLAGS], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(
    shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
    reason="accelerate's launcher is not installed",
)
@pytest.mark.parametrize("engine", ["poisonlab", "trl"])
def test_two_processes_train_the_adapter_one_process_trains(engine, tiny_model, tmp_path):
    from safetensors.torch import load_file

    from poisonlab.models import resolve_model

    tiny = str(resolve_model(tiny_model))
    data = tmp_path / "pairs.jsonl"
    write_pairs(synthetic_pairs(n=48), data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    _train([sys.executable, "-m", "poisonlab.cli"], data, tmp_path / "one", engine, tiny, env)
    accelerate = str(Path(sys.executable).parent / "accelerate")
    launch = [accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "poisonlab.cli"]
    _train(launch, data, tmp_path / "two", engine, tiny, env)
    one = load_file(tmp_path / "one" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 1e-5, worst
    assert any(float(v.abs().sum()) > 0 for k, v in two.items() if "lora_B" in k)  # it trained at all
    assert torch.isfinite(torch.stack([v.abs().max() for v in two.values()])).all()
