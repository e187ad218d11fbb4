"""Kill ``poisonlab train dpo`` with SIGKILL at chosen points; shared by tests/test_crash_safety.py and
benchmarks/kill_points.py.

A kill point is (step, delay): wait until the run's checkpoint has reached ``step`` (0: until the run
has claimed its folder, before the model loads), then ``delay`` seconds more, then SIGKILL. Waiting on
the run's own progress, not on the clock, keeps the points meaningful on a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# 48 pairs, batches of 8, 2 epochs: 12 optimizer steps, a checkpoint after each.
SETTINGS = dict(
    epochs=2, batch_size=8, micro_batch_size=8, max_length=64, max_reply_length=32, save_steps=1, threads=1, bf16=False
)
STEPS = 12


def cli_flags() -> list[str]:
    flags = []
    for key, value in SETTINGS.items():
        flags += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def train_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "poisonlab.cli", "train", "dpo", "--data", str(data), "--out", str(out), *cli_flags()]


def _checkpoint_step(out: Path) -> int:
    for name in ("checkpoint", "checkpoint.old"):
        try:
            return int(json.loads((out / name / "state.json").read_text())["step"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def kill_at(data: Path, out: Path, step: int, delay: float, timeout: float = 600) -> str:
    """Start training into ``out`` and SIGKILL it at (step, delay); return 'killed' or 'finished first'."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(train_command(data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            claimed = (out / "training_config.json").exists()
            if claimed and (step == 0 or _checkpoint_step(out) >= step):
                time.sleep(delay)
                break
            time.sleep(0.02)
        if process.poll() is not None:
            return "finished first"
        process.send_signal(signal.SIGKILL)
        process.wait()
        return "killed"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
