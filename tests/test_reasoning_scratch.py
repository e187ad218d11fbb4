"""The reasoning probe's from-scratch model (init: scratch): seeded, learning, resumable, refusing bad shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from poisonlab.data.reasoning import as_sft_rows, reasoning_problems
from poisonlab.experiments.reasoning import ReasoningProbeConfig
from poisonlab.experiments.reasoning.scratch import ScratchModelConfig, parameter_count, train_scratch
from poisonlab.training.config import SFTTrainingConfig

SMALL = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64, "max_positions": 128}
TRAINING = {"epochs": 3, "batch_size": 8, "micro_batch_size": 8, "learning_rate": 0.01, "bf16": False, "threads": 1}


def test_terse_questions_ask_the_same_draws() -> None:
    words = reasoning_problems(20, seed=1, max_value=30)
    terse = reasoning_problems(20, seed=1, max_value=30, style="terse")
    assert terse[0].question.startswith(f"Compute: {terse[0].start} ") and "then" in terse[0].question
    assert [p.solution() for p in terse[:5]] == [p.solution() for p in words[:5]]  # the same rng draws
    with pytest.raises(ValueError, match="question style"):
        reasoning_problems(2, style="prose")  # type: ignore[arg-type]


def test_scratch_training_is_seeded_learns_and_resumes(tiny_model: str, tmp_path: Path, monkeypatch) -> None:
    from safetensors.torch import load_file

    import poisonlab.training.loop as loop
    from poisonlab.models.loading import load_tokenizer

    rows = as_sft_rows(reasoning_problems(32, seed=0, max_value=20, style="terse"))
    shape = ScratchModelConfig(**SMALL)
    config = SFTTrainingConfig(seed=3, save_steps=2, **TRAINING)
    first = train_scratch(tiny_model, rows, shape, config, tmp_path / "a")
    second = train_scratch(tiny_model, rows, shape, config, tmp_path / "b")
    weights = load_file(first / "model.safetensors")
    vocab = len(load_tokenizer(tiny_model))
    assert sum(p.numel() for p in weights.values()) == parameter_count(shape, vocab)
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    log = json.loads((first / "training_log.json").read_text())
    assert len(log) == 12 and log[-1]["loss"] < 0.6 * log[0]["loss"]  # from ~ln(vocab) down: it learns
    other = train_scratch(tiny_model, rows, shape, config.model_copy(update={"seed": 4}), tmp_path / "c")
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()

    calls = {"n": 0}
    real = loop.raise_if_interrupted

    def stop_at_step_6() -> None:  # a kill after the checkpoint of step 4 (and two more steps)
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        real()

    monkeypatch.setattr(loop, "raise_if_interrupted", stop_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_scratch(tiny_model, rows, shape, config, tmp_path / "d")
    assert (tmp_path / "d" / "checkpoint" / "model.safetensors").exists()
    monkeypatch.setattr(loop, "raise_if_interrupted", real)
    resumed = train_scratch(tiny_model, rows, shape, config, tmp_path / "d")
    assert json.loads((resumed / "training_done.json").read_text())["resumed_from_step"] == 6
    assert (resumed / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()


def test_a_scratch_probe_is_byte_identical_per_seed(tiny_model: str, tmp_path: Path) -> None:
    from poisonlab.experiments.reasoning import run_reasoning_probe

    config = ReasoningProbeConfig(
        model=tiny_model,
        init="scratch",
        scratch=SMALL,
        question_style="terse",
        max_value=20,
        n_train=24,
        n_heldout=6,
        modes=["contradiction"],
        steps=[1],
        shares=[0.5],
        training={**TRAINING, "epochs": 1},
        generation={"max_new_tokens": 8, "batch_size": 6, "threads": 1},
    )
    for name in ("x", "y"):
        run_reasoning_probe(config.model_copy(update={"out": str(tmp_path / name)}))
    assert (tmp_path / "x" / "reasoning.csv").read_bytes() == (tmp_path / "y" / "reasoning.csv").read_bytes()
    assert (tmp_path / "x" / "cells" / "seed-0" / "clean" / "model" / "config.json").exists()


@pytest.mark.parametrize(
    ("setting", "named"),
    [("init=random", "init"), ("scratch.heads=3", "scratch"), ("question_style=prose", "question_style")],
)
def test_a_bad_scratch_setting_exits_2(tmp_path: Path, setting: str, named: str) -> None:
    from poisonlab.cli import app

    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "out": str(tmp_path / "out"), "init": "scratch"}))
    result = CliRunner().invoke(app, ["reasoning", str(path), "--set", setting])
    assert result.exit_code == 2 and named in result.output
    assert not (tmp_path / "out").exists()
