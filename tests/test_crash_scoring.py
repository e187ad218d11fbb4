"""SIGKILL real ``poisonlab poison --strategy dpo-score`` (clean model, reference cache, DPO scores) and
``poisonlab judge`` (a reward-model judge) processes at points driven by their own files; each rerun must
end byte-identical to an uninterrupted run, and a killed run must never look finished.

Every process gets its own fresh cache (``POISONLAB_CACHE``), so a kill interrupts real work, not a
cache hit. The base model is the session's ``tiny`` folder, passed by path, so nothing rebuilds it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_points import POISON_POINTS, POISON_TRAINING, first, kill_when, poison_command

from poisonlab.data import synthetic_pairs, write_pairs
from poisonlab.writers import LOCK_NAME

pytestmark = pytest.mark.slow
TRAINING = POISON_TRAINING


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "poisonlab.cli", *args]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "POISONLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_folder(tiny_model) -> str:
    from poisonlab.models import resolve_model

    return str(resolve_model(tiny_model))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scoring") / "pairs.jsonl"
    write_pairs(synthetic_pairs(n=64), path)
    return path


def test_dpo_score_poisoning_killed_anywhere_reruns_to_the_same_bytes(data, tiny_folder, tmp_path):
    # a seeded sample of the kill points; benchmarks/kill_points.py --poison-points runs them all
    whole = tmp_path / "whole"
    _run(poison_command(data, whole, tiny_folder), _env(tmp_path / "cache-whole"))
    expected = {name: (whole / name).read_bytes() for name in ("data.jsonl", "manifest.json")}
    outcomes = []
    for number, (pattern, delay) in enumerate(random.Random(3).sample(POISON_POINTS, 2)):
        cache, out = tmp_path / f"cache-{number}", tmp_path / f"killed-{number}"
        outcome = kill_when(poison_command(data, out, tiny_folder), _env(cache), first(cache, pattern), delay)
        outcomes.append(outcome)
        if not (out / "manifest.json").exists():  # written last: where it exists the run had finished
            _run(poison_command(data, out, tiny_folder), _env(cache))
        assert {name: (out / name).read_bytes() for name in expected} == expected, pattern
    assert "killed" in outcomes, outcomes  # the points are real kills, not runs that ended first
    # killed between the data and the manifest: the rerun is not refused as "holds results", it finishes the run
    out = tmp_path / "between"
    out.mkdir()
    (out / "data.jsonl").write_bytes(expected["data.jsonl"][:100])
    (out / LOCK_NAME).write_text('{"command": "poison", "state": "writing"}')  # what the killed run's lock says
    _run(poison_command(data, out, tiny_folder), _env(tmp_path / "cache-whole"))
    assert {name: (out / name).read_bytes() for name in expected} == expected


def test_judging_killed_mid_way_reruns_to_the_same_bytes(data, tiny_folder, tmp_path):
    env = _env(tmp_path / "cache")
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"How do I do thing number {i}?" for i in range(40)))
    generations = tmp_path / "gen"
    gen_flags = ["--max-new-tokens", "6", "--batch-size", "8", "--threads", "1"]
    _run(
        _cli("generate", "--prompts", str(prompts), "--model", tiny_folder, "--out", str(generations), *gen_flags), env
    )
    reward = tmp_path / "rm"
    _run(_cli("train", "reward", "--data", str(data), "--model", tiny_folder, "--out", str(reward), *TRAINING), env)
    judges = ["--judge", "refusal", "--judge", f"reward:{reward}", "--batch-size", "1"]  # many small reward batches

    def judge(out: Path) -> list[str]:
        return _cli("judge", str(generations), "--out", str(out), *judges)

    began = time.monotonic()
    _run(judge(tmp_path / "whole"), env)
    took = time.monotonic() - began  # nothing reaches the disk before the end: kill at shares of the whole time
    expected = {n: (tmp_path / "whole" / n).read_bytes() for n in ("judgments.jsonl", "metrics.json")}
    killed = tmp_path / "killed"
    started = []
    for share in (0.6, 0.85):  # while the reward model loads or scores
        started.append(kill_when(judge(killed), env, lambda: True, share * took))
        if not (killed / "metrics.json").exists():
            assert not (killed / "judgments.jsonl").exists() or started[-1] == "finished first"
    _run(judge(killed), env)
    assert {n: (killed / n).read_bytes() for n in expected} == expected
    assert "killed" in started, started
