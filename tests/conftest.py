"""Shared fixtures: the real HH-RLHF file from ../shared, and a session cache for built models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
