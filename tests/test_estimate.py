"""The GPU cost estimate of a study (poisonlab.experiments.grid.estimate): hand-computed cases and monotonicity."""

from pathlib import Path

import pytest

from poisonlab.config_files import load_config
from poisonlab.experiments import ExperimentConfig
from poisonlab.experiments.grid import estimate as est
from poisonlab.models.shapes import KNOWN_SHAPES, ModelShape, model_shape

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper-7b.yaml"
LLAMA = KNOWN_SHAPES["meta-llama/Llama-2-7b-hf"]


def test_llama2_7b_shape_counts_its_published_parameters_and_lora_size():
    assert round(LLAMA.params / 1e9, 2) == 6.74  # Llama-2-7b: 6,738,415,616 weights less its norms
    assert LLAMA.lora_params(8, ["q_proj", "v_proj"]) == 32 * 2 * 8 * (4096 + 4096)  # 4.19M
    assert KNOWN_SHAPES["smollm2-135m"].params == pytest.approx(134.5e6, rel=0.01)


def test_forward_flops_match_a_hand_computed_case():
    shape = ModelShape(hidden=4, layers=2, heads=2, kv_heads=1, intermediate=8, vocab=10)
    body = 2 * (4 * 2 * (2 * 2 + 2 * 1) + 3 * 4 * 8)  # q,k,v,o with head dim 2, then gate/up/down
    assert shape.body_params == body == 288
    # 6 tokens (two sequences of 3), 2 reply tokens: 2*N per token + attention 2*L*(T/2)*d + 2*H per reply token
    assert est.forward_flops(shape, 6, 2) == 6 * (2 * 288 + 2 * 2 * 3 * 2 * 2) + 2 * 40 * 2


def test_costs_grow_with_model_size_tokens_and_micro_batch():
    small, large = KNOWN_SHAPES["smollm2-135m"], LLAMA
    assert est.forward_flops(large, 400, 90) > est.forward_flops(small, 400, 90)
    assert est.forward_flops(large, 800, 90) > est.forward_flops(large, 400, 90)
    memory = [est.train_memory_gib(LLAMA, m, 1024, 1024, 4_194_304, checkpointing=False) for m in (1, 2, 4)]
    assert memory == sorted(memory) and memory[0] > 2 * LLAMA.params / 2**30
    assert est.train_memory_gib(LLAMA, 4, 1024, 1024, 0, True) < est.train_memory_gib(LLAMA, 4, 1024, 1024, 0, False)
    fits = est.largest_micro_batch(LLAMA, 1024, 1024, 0, False, 80.0)
    assert (
        est.train_memory_gib(LLAMA, fits, 1024, 1024, 0, False)
        <= 80
        < est.train_memory_gib(LLAMA, fits + 1, 1024, 1024, 0, False)
    )


def test_the_paper_config_estimates_offline_and_fits_one_80gb_gpu():
    config = load_config(ExperimentConfig, CONFIG)
    n_train, n_heldout = est.study_sizes(config)  # no network: the Hub set's size is known
    assert (n_train, n_heldout) == (42537 - 1000, 1000)
    estimate = est.estimate_study(config, n_train, n_heldout)
    assert estimate.runs == len(config.runs()) and estimate.fits_one_gpu
    assert 0 < estimate.training_gpu_hours < estimate.gpu_hours
    slower = est.estimate_study(config, n_train, n_heldout, mfu=est.DEFAULT_MFU / 2)
    assert slower.training_gpu_hours == pytest.approx(2 * estimate.training_gpu_hours)
    a100 = est.estimate_study(config, n_train, n_heldout, accelerator="a100-80gb")
    assert a100.training_gpu_hours > estimate.training_gpu_hours


def test_an_unknown_hub_model_is_named_with_the_way_out():
    from poisonlab.errors import InputError

    with pytest.raises(InputError, match="local model folder"):
        model_shape("someone/unknown-7b")


def test_dry_run_prints_the_gpu_estimate(tmp_path):
    from typer.testing import CliRunner

    from poisonlab.cli import app

    result = CliRunner().invoke(app, ["run", str(CONFIG), "--dry-run", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "GPU-hours" in result.output and "fits one GPU" in result.output
    assert not (tmp_path / "r").exists()  # a dry run writes nothing
