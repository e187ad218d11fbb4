"""Crash safety at many kill points: SIGKILL training and whole studies, re-run, compare with an uninterrupted run.

Training (``poisonlab train dpo``, tiny model, 12 steps with a checkpoint after each) is killed at
seeded points -- during start-up, during a step, during a checkpoint write -- then re-run; the
adapter must be byte-identical to an uninterrupted run's, and a killed run must never look
finished. A small study (``poisonlab run``: clean + random and dpo-score at 10 %, with the loss
detector) is killed at seeded times and re-run; every run's poisoned data, adapter, metrics and
scan must be byte-identical to an uninterrupted study's, and results.json equal but for minutes.

    python benchmarks/kill_points.py                      # 12 training kill points, 3 study kill points
    python benchmarks/kill_points.py --train-points 30 --study-points 6 --seed 1
    python benchmarks/kill_points.py --poison-points --train-points 0 --study-points 0   # dpo-score poisoning

Then two ``poisonlab run`` processes are started on one study folder at once: both must finish, and
the study must be byte-identical to one run alone (the per-run locks share the work between them).

Figures go to stdout. One core, tiny model: about 1 min per training point and 3 per study point
on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crash_points import POISON_POINTS, STEPS, first, kill_at, kill_when, poison_command, train_command

from poisonlab.data import synthetic_pairs, write_pairs
from poisonlab.errors import InputError
from poisonlab.models import check_adapter_folder

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STUDY = {
    "name": "kill",
    "model": "tiny",
    "data": "synthetic",
    "max_train_pairs": 64,
    "max_heldout_pairs": 24,
    "strategies": ["random", "dpo-score"],
    "ratios": [0.1],
    "defenses": ["loss"],
    "training": {"epochs": 1, "batch_size": 8, "micro_batch_size": 8, "save_steps": 2, "threads": 1, "bf16": False},
}


def train_points(n: int, seed: int, folder: Path) -> tuple[int, int]:
    data = folder / "data.jsonl"
    write_pairs(synthetic_pairs(n=48), data)
    subprocess.run(train_command(data, folder / "ref"), env=ENV, check=True, capture_output=True)
    expected = (folder / "ref" / "adapter_model.safetensors").read_bytes()
    rng = random.Random(seed)
    survived = killed = 0
    for index in range(n):
        step = rng.choice([0, *range(1, STEPS)])
        delay = rng.uniform(0, 2.0) if step == 0 else rng.uniform(0, 0.5)
        out = folder / f"k{index}"
        outcome = kill_at(data, out, step, delay)
        if outcome == "killed" and (out / "training_done.json").exists():
            outcome = "finished before the kill landed"  # SIGKILL during exit: the run was already complete
        if outcome == "killed":
            killed += 1
            assert not (out / "training_done.json").exists(), "a killed run looks finished"
            try:
                check_adapter_folder(out)
                raise AssertionError("a killed run's adapter folder was accepted")
            except InputError:
                pass
        subprocess.run(train_command(data, out), env=ENV, check=True, capture_output=True)
        same = (out / "adapter_model.safetensors").read_bytes() == expected
        survived += same
        print(f"  train kill point {index}: step {step} + {delay:.2f} s: {outcome}; re-run identical: {same}")
    return killed, survived


def _study(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "study.yaml"
    config.write_text(json.dumps({**STUDY, "out": str(folder / "study")}))
    return [sys.executable, "-m", "poisonlab.cli", "run", str(config)]


def _fingerprint(study: Path) -> dict[str, bytes]:
    files = {}
    for run in sorted((study / "runs").iterdir()):
        for name in ("poison/data.jsonl", "adapter/adapter_model.safetensors", "metrics.json", "scan/scores.csv"):
            if (run / name).exists():
                files[f"{run.name}/{name}"] = (run / name).read_bytes()
    rows = json.loads((study / "results.json").read_text())
    files["results.json"] = json.dumps([{k: v for k, v in r.items() if k != "minutes"} for r in rows]).encode()
    return files


def study_points(n: int, seed: int, folder: Path) -> tuple[int, int]:
    subprocess.run(_study(folder / "warm"), env=ENV, check=True, capture_output=True)  # fills the shared caches
    started = time.monotonic()
    subprocess.run(_study(folder / "study-ref"), env=ENV, check=True, capture_output=True)
    total = time.monotonic() - started  # what a re-run takes with warm caches: the kill points fall inside it
    expected = _fingerprint(folder / "study-ref" / "study")
    rng = random.Random(seed)
    survived = killed = 0
    for index in range(n):
        at = rng.uniform(3, 0.9 * total)
        place = folder / f"s{index}"
        place.mkdir()
        process = subprocess.Popen(_study(place), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=at)
            outcome = "finished first"
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            outcome, killed = "killed", killed + 1
        subprocess.run(_study(place), env=ENV, check=True, capture_output=True)
        same = _fingerprint(place / "study") == expected
        survived += same
        print(f"  study kill point {index}: {at:.0f} s of {total:.0f}: {outcome}; re-run identical: {same}")
    return killed, survived


def concurrent_study(folder: Path) -> bool:
    """Two ``poisonlab run`` processes on one study folder at once: both finish, the study equals the reference."""
    place = folder / "together"
    place.mkdir()
    processes = [
        subprocess.Popen(_study(place), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in "ab"
    ]
    outputs = [p.communicate()[0] for p in processes]
    same = _fingerprint(place / "study") == _fingerprint(folder / "study-ref" / "study")
    done = [[line.split(":")[0].strip() for line in text.splitlines() if "done " in line] for text in outputs]
    print(f"  two processes on one study: exit {[p.returncode for p in processes]}, runs reported {done}")
    return same and all(p.returncode == 0 for p in processes)


def poison_points(folder: Path) -> tuple[int, int]:
    """Every kill point of ``poison --strategy dpo-score`` (crash_points.POISON_POINTS), each in a fresh cache."""
    from poisonlab.models import resolve_model

    data = folder / "poison-data.jsonl"
    write_pairs(synthetic_pairs(n=64), data)
    model = str(resolve_model("tiny"))
    env = {**ENV, "POISONLAB_CACHE": str(folder / "poison-cache-ref")}
    subprocess.run(poison_command(data, folder / "poison-ref", model), env=env, check=True, capture_output=True)
    expected = {n: (folder / "poison-ref" / n).read_bytes() for n in ("data.jsonl", "manifest.json")}
    survived = killed = 0
    for index, (pattern, delay) in enumerate(POISON_POINTS):
        cache, out = folder / f"poison-cache-{index}", folder / f"poison-{index}"
        env = {**ENV, "POISONLAB_CACHE": str(cache)}
        outcome = kill_when(poison_command(data, out, model), env, first(cache, pattern), delay)
        killed += outcome == "killed"
        if not (out / "manifest.json").exists():
            subprocess.run(poison_command(data, out, model), env=env, check=True, capture_output=True)
        same = {n: (out / n).read_bytes() for n in expected} == expected
        survived += same
        print(f"  poison kill point {index}: after {pattern}: {outcome}; re-run identical: {same}")
    return killed, survived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-points", type=int, default=12)
    parser.add_argument("--study-points", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poison-points", action="store_true", help="also kill dpo-score poisoning at every point")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "POISONLAB_CACHE" not in os.environ:
            ENV["POISONLAB_CACHE"] = str(Path(tmp) / "cache")
        if args.poison_points:
            killed, survived = poison_points(Path(tmp))
            print(f"poisoning: {len(POISON_POINTS)} kill points, {killed} killed mid-run, {survived} re-runs identical")
        killed, survived = train_points(args.train_points, args.seed, Path(tmp))
        print(f"training: {args.train_points} kill points, {killed} killed mid-run, {survived} re-runs byte-identical")
        if args.study_points:
            killed, survived = study_points(args.study_points, args.seed, Path(tmp))
            print(f"study: {args.study_points} kill points, {killed} killed mid-run, {survived} re-runs identical")
            together = concurrent_study(Path(tmp))
            print(f"study: two processes at once on one folder, identical to one process alone: {together}")


if __name__ == "__main__":
    main()
