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
from collections.abc import Callable
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

    def reached() -> bool:
        claimed = (out / "training_config.json").exists()
        return claimed and (step == 0 or _checkpoint_step(out) >= step)

    return kill_when(train_command(data, out), env, reached, delay, timeout)


# ``poisonlab poison --strategy dpo-score``: (the file the kill waits for, relative to the run's own cache, then
# seconds): during the clean model's training, between its end and the scores, right after the reference cache is
# written, and once the scores are on disk (before the poisoned data and the manifest)
POISON_POINTS = [
    ("clean-dpo/*/adapter/checkpoint/state.json", 0.0),
    ("clean-dpo/*/adapter/training_done.json", 0.0),
    ("reference-logprobs/*/logprobs.npz", 0.0),
    ("clean-dpo/*/dpo_scores.json", 0.0),
]
POISON_TRAINING = ["--epochs", "1", "--batch-size", "8", "--max-length", "64", "--max-reply-length", "32"]
POISON_TRAINING += ["--save-steps", "1", "--threads", "1", "--bf16", "false"]


def poison_command(data: Path, out: Path, model: str) -> list[str]:
    flags = ["--strategy", "dpo-score", "--ratio", "0.1", "--model", model, *POISON_TRAINING]
    return [sys.executable, "-m", "poisonlab.cli", "poison", "--data", str(data), "--out", str(out), *flags]


def first(folder: Path, pattern: str) -> Callable[[], bool]:
    """A readiness check: some file matching ``pattern`` exists under ``folder``."""
    return lambda: next(folder.glob(pattern), None) is not None


def kill_when(
    command: list[str], env: dict[str, str], ready: Callable[[], bool], delay: float, timeout: float = 300
) -> str:
    """Start ``command``; once ``ready()`` holds, wait ``delay`` s and SIGKILL it. 'killed' or 'finished first'."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.02)
        time.sleep(delay)
        if process.poll() is not None:
            return "finished first"
        process.send_signal(signal.SIGKILL)
        process.wait()
        return "killed"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
