"""Executors: a process pool and Ray give the one-process study's results, to the last digit."""

import json
import sys

import pytest

from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig, run_experiment
from poisonlab.experiments.grid.executors import LocalExecutor, RayExecutor, default_jobs


def _results(out):
    """results.json without the minutes each run took (the only thing that may differ)."""
    return [{k: v for k, v in row.items() if k != "minutes"} for row in json.loads((out / "results.json").read_text())]


def _config(study, out):
    return load_config(ExperimentConfig, study / "config.yaml", [f"out={out}"])


def test_a_process_pool_gives_the_one_process_results(tiny_study, tmp_path):
    seen = []
    results = run_experiment(
        _config(tiny_study, tmp_path / "pool"), progress=False, on_result=seen.append, executor=LocalExecutor(jobs=2)
    )
    assert _results(tmp_path / "pool") == _results(tiny_study)
    assert [r.run for r in results] == ["clean", "random-backdoor-0.1", "dpo-score-backdoor-0.1"]  # grid order
    assert sorted(r.run for r in seen) == sorted(r.run for r in results)  # each reported as it finished
    for name in ("clean", "random-backdoor-0.1"):  # the same adapters, not just the same rounded metrics
        adapter = f"runs/{name}/adapter/adapter_model.safetensors"
        assert (tmp_path / "pool" / adapter).read_bytes() == (tiny_study / adapter).read_bytes()
    assert (tmp_path / "pool/report.html").exists() and (tmp_path / "pool/results.parquet").exists()


def test_ray_gives_the_local_results(tiny_study, tmp_path):
    pytest.importorskip("ray")
    run_experiment(_config(tiny_study, tmp_path / "ray"), progress=False, executor=RayExecutor(jobs=2))
    assert _results(tmp_path / "ray") == _results(tiny_study)


def test_jobs_follow_the_cores_and_the_memory_given():
    assert default_jobs("smollm2-135m", memory_gb=13.5) <= 2  # ~6.5 GB a SmolLM2 process
    assert default_jobs("smollm2-135m", memory_gb=1) == 1  # never fewer than one
    assert LocalExecutor(jobs=8, memory_gb=14).workers("smollm2-135m") == 2
    assert LocalExecutor(jobs=1).workers("smollm2-135m") == 1


def test_the_ray_executor_without_ray_says_how_to_get_it(monkeypatch):
    from poisonlab.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(InputError, match=r"poisonlab\[ray\]"):
        RayExecutor(jobs=1)
