"""Shared fixtures: the real HH-RLHF file from ../shared, and a session cache for built models.

Precision: ``bf16: auto`` turns bf16 autocast on where the CPU has native bf16 (AVX512_BF16 or AMX)
and leaves fp32 elsewhere (AVX2-only), so the same test computes differently on different CPUs.
Tests that compare numbers state their precision (``bf16=False``, or a tolerance stated for bf16).
Run the suite as a CPU with native bf16 would, on any CPU (emulated, slower):
``POISONLAB_FORCE_BF16=1 python -m pytest``; ``POISONLAB_FORCE_BF16=0`` pins fp32 for ``auto``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
HH_FILE = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-dev.jsonl.gz"


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built models go to POISONLAB_CACHE if the caller set one (CI reuses it), else a session folder."""
    if "POISONLAB_CACHE" not in os.environ:
        os.environ["POISONLAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return Path(os.environ["POISONLAB_CACHE"])


@pytest.fixture(scope="session")
def hh_file() -> Path:
    if not HH_FILE.exists():
        pytest.skip(f"shared data not found at {HH_FILE}")
    return HH_FILE


@pytest.fixture(scope="session")
def tiny_model(_cache: Path) -> str:
    from poisonlab.models import resolve_model

    resolve_model("tiny")  # build once per session
    return "tiny"


TINY_STUDY = (
    "name: tiny-study\nmodel: tiny\ndata: synthetic\nheldout: 24\nmax_train_pairs: 80\n"
    "strategies: [random, dpo-score]\nratios: [0.1]\ntraining: {micro_batch_size: 16, epochs: 1}\ndefenses: [loss]\n"
)


@pytest.fixture(scope="session")
def tiny_study(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (clean, random and dpo-score backdoors at 10%, a loss scan), run in this process."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, run_experiment

    folder = tmp_path_factory.mktemp("study")
    (folder / "study.yaml").write_text(TINY_STUDY)
    config = load_config(ExperimentConfig, folder / "study.yaml", [f"out={folder / 'out'}"])
    run_experiment(config, progress=False)
    return folder / "out"


# Property-based tests (tests/test_fuzz_inputs.py): a modest, derandomized number of cases in CI;
# POISONLAB_FUZZ=thorough runs many more (benchmarks/fuzz_inputs.py counts them and the messages seen).
settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=1000, derandomize=False)
settings.load_profile(os.environ.get("POISONLAB_FUZZ", "ci"))


@pytest.fixture
def stopped_after_first_checkpoint(monkeypatch: pytest.MonkeyPatch):
    """``with stopped_after_first_checkpoint(): train(...)``: the training stops right after writing its first
    checkpoint, as a Ctrl-C there would (a KeyboardInterrupt, expected); training is normal again after it."""
    from contextlib import contextmanager

    from poisonlab.training import loop

    @contextmanager
    def stopped():
        real_save = loop._save_checkpoint

        def save_then_stop(*args, **kwargs):
            real_save(*args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(loop, "_save_checkpoint", save_then_stop)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(loop, "_save_checkpoint", real_save)

    return stopped
