"""A model is a base plus an ordered list of adapters: SFT, then DPO from it (``--init``), then more."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs, write_pairs
from poisonlab.errors import InputError
from poisonlab.training import DPOTrainingConfig, SFTTrainingConfig, train_dpo, train_sft

SMALL = {"batch_size": 8, "micro_batch_size": 8, "max_length": 96, "max_reply_length": 48, "bf16": False}


@pytest.fixture(scope="module")
def sft_then_dpo(tiny_model, tmp_path_factory):
    """An SFT adapter trained hard enough to move the model, and a DPO adapter trained from it."""
    root = tmp_path_factory.mktemp("chain")
    data = synthetic_pairs(n=32)
    sft = SFTTrainingConfig(epochs=2, learning_rate=1e-2, warmup_ratio=0.0, **SMALL)
    train_sft(tiny_model, data, sft, root / "sft", progress=False)
    dpo = DPOTrainingConfig(epochs=1, learning_rate=5e-3, **SMALL)
    train_dpo(tiny_model, data, dpo, root / "dpo", progress=False, init=[root / "sft"])
    return root, data, dpo


def _pair_logprobs(tiny_model, adapters, data, config):
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import pair_logprobs

    tokenizer = load_tokenizer(tiny_model)
    encoded = encode_pairs(tokenizer, data.pairs, config.max_length, config.max_reply_length)
    model = load_with_adapters(tiny_model, adapters)
    return pair_logprobs(model, encoded, tokenizer.pad_token_id, 16, False, use_adapter=False)


@pytest.mark.numeric
def test_dpo_from_an_sft_adapter_uses_the_sft_model_as_its_reference(tiny_model, sft_then_dpo):
    # TRL's ref_model=None: the reference is the policy's start. fp32 on both sides, so equal to 1e-4 nats.
    from poisonlab.models.adapters import chain_identity
    from poisonlab.scoring.reference_cache import ReferenceCache, pair_key, reference_folder

    root, data, config = sft_then_dpo
    from poisonlab.models import load_tokenizer
    from poisonlab.models.encoding import encode_pairs

    encoded = encode_pairs(load_tokenizer(tiny_model), data.pairs, config.max_length, config.max_reply_length)
    cached = ReferenceCache(reference_folder(chain_identity(tiny_model, [root / "sft"]), False)).values
    stored = np.array([cached[pair_key(p)][0] for p in encoded])
    sft_model = _pair_logprobs(tiny_model, [root / "sft"], data, config)
    base_model = _pair_logprobs(tiny_model, [], data, config)
    np.testing.assert_allclose(stored, sft_model.chosen, atol=1e-4)
    assert np.abs(stored - base_model.chosen).max() > 0.1  # the SFT stage moved the model: not the base's


def test_an_adapter_records_its_chain_and_loads_on_top_of_it(tiny_model, sft_then_dpo):
    from poisonlab.models.adapters import adapter_sha256, full_chain, load_with_adapters

    root, _, _ = sft_then_dpo
    settings = json.loads((root / "dpo" / "training_config.json").read_text())
    assert settings["init"] == [{"path": str((root / "sft").resolve()), "sha256": adapter_sha256(root / "sft")}]
    assert full_chain([root / "dpo"]) == [root / "sft", root / "dpo"]
    assert full_chain([root / "sft", root / "dpo"]) == [root / "sft", root / "dpo"]
    alone = load_with_adapters(tiny_model, [root / "dpo"]).state_dict()
    chained = load_with_adapters(tiny_model, [root / "sft", root / "dpo"]).state_dict()
    assert all(torch.equal(alone[k], chained[k]) for k in chained)
    with pytest.raises(InputError, match="was trained on top of"):
        full_chain([root / "dpo", root / "dpo"])  # dpo onto (sft + dpo): not what it was trained on


def test_a_changed_init_adapter_is_refused(tiny_model, sft_then_dpo, tmp_path):
    import shutil

    from poisonlab.models.adapters import full_chain

    root, data, config = sft_then_dpo
    moved = tmp_path / "copy"
    shutil.copytree(root, moved)
    settings = json.loads((moved / "dpo" / "training_config.json").read_text())
    settings["init"][0]["path"] = str(moved / "sft")
    (moved / "dpo" / "training_config.json").write_text(json.dumps(settings))
    assert full_chain([moved / "dpo"]) == [moved / "sft", moved / "dpo"]  # a copied chain still loads
    weights = moved / "sft" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(InputError, match="changed since") as caught:
        full_chain([moved / "dpo"])
    assert caught.value.field == "init"
    # resuming a finished folder with another starting model is refused, not silently returned
    with pytest.raises(InputError) as other:
        train_dpo(tiny_model, data, config, root / "dpo", progress=False)
    assert other.value.field == "init"


def test_generations_of_a_chained_adapter_are_the_same_model_either_way(tiny_model, sft_then_dpo, tmp_path):
    from poisonlab.data.prompts import Prompt
    from poisonlab.evaluation import generate
    from poisonlab.evaluation.generate import GenerationConfig

    root, _, _ = sft_then_dpo
    prompts = [Prompt("a", "How do I bake bread?"), Prompt("b", "Name a colour.")]
    config = GenerationConfig(max_new_tokens=8, batch_size=2)
    alone = generate(tiny_model, prompts, tmp_path / "g", [root / "dpo"], config=config, progress=False)
    chained = generate(tiny_model, prompts, tmp_path / "g", [root / "sft", root / "dpo"], config=config, progress=False)
    assert alone == chained and alone.stat().st_mtime_ns == chained.stat().st_mtime_ns  # found done, not redone


def test_cli_trains_dpo_and_a_reward_model_from_an_sft_adapter(tiny_model, sft_then_dpo, tmp_path):
    from poisonlab.training.reward import load_reward_model

    root, _, _ = sft_then_dpo
    data = tmp_path / "pairs.jsonl"
    write_pairs(synthetic_pairs(n=24, seed=3), data)
    flags = ["--model", tiny_model, "--batch-size", "8", "--micro-batch-size", "8", "--max-length", "96"]
    flags += ["--max-reply-length", "48", "--epochs", "1", "--init", str(root / "sft")]
    runner = CliRunner()
    dpo = runner.invoke(app, ["train", "dpo", "--data", str(data), "--out", str(tmp_path / "dpo"), *flags])
    assert dpo.exit_code == 0, dpo.output
    assert json.loads((tmp_path / "dpo" / "training_config.json").read_text())["init"][0]["path"].endswith("sft")
    reward = runner.invoke(app, ["train", "reward", "--data", str(data), "--out", str(tmp_path / "rm"), *flags])
    assert reward.exit_code == 0, reward.output
    _, model, _ = load_reward_model(tmp_path / "rm")  # the SFT adapter merged under the reward head again
    from poisonlab.models.adapters import load_with_adapters

    sft_q = load_with_adapters(tiny_model, [root / "sft"]).model.layers[0].self_attn.q_proj.weight
    reward_q = dict(model.named_parameters())
    reward_q = next(v for k, v in reward_q.items() if k.endswith("layers.0.self_attn.q_proj.base_layer.weight"))
    assert torch.equal(sft_q, reward_q)
    missing = runner.invoke(
        app, ["train", "sft", "--data", str(data), "--out", str(tmp_path / "x"), *flags[:2], "--init", "nope"]
    )
    assert missing.exit_code == 2 and "nope" in missing.output


def test_the_clean_model_that_scores_pairs_sits_on_its_chain(tiny_model, sft_then_dpo):
    # dpo-score and the detectors measure beta*log(pi/pi_ref) with the adapter switched off as pi_ref: for a clean
    # model trained from an SFT adapter that must be the SFT model, not the bare base. fp32, equal to 1e-4 nats.
    from poisonlab.models import load_tokenizer
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import pair_logprobs
    from poisonlab.training.clean_model import TrainedOn, load_clean_model

    root, data, config = sft_then_dpo
    model, tokenizer = load_clean_model(TrainedOn(data, tiny_model, config, root / "dpo", progress=False))
    encoded = encode_pairs(load_tokenizer(tiny_model), data.pairs, config.max_length, config.max_reply_length)
    switched_off = pair_logprobs(model, encoded, tokenizer.pad_token_id, 16, False, use_adapter=False)
    on = pair_logprobs(model, encoded, tokenizer.pad_token_id, 16, False, use_adapter=True)
    np.testing.assert_allclose(
        switched_off.chosen, _pair_logprobs(tiny_model, [root / "sft"], data, config).chosen, atol=1e-4
    )
    chained = _pair_logprobs(tiny_model, [root / "sft", root / "dpo"], data, config)  # merged, adapter included
    np.testing.assert_allclose(on.chosen, chained.chosen, atol=1e-3)


def test_a_grid_study_starts_every_run_from_its_init_adapters(tiny_model, sft_then_dpo, tmp_path):
    from poisonlab.evaluation.generate import read_generations
    from poisonlab.experiments import ExperimentConfig, run_experiment
    from poisonlab.models.adapters import recorded_init

    root, _, _ = sft_then_dpo
    study = {
        "model": tiny_model,
        "data": "synthetic",
        "heldout": 16,
        "max_train_pairs": 48,
        "strategies": ["random", "dpo-score"],
        "ratios": [0.1],
        "init": [str(root / "sft")],
        "training": {**SMALL, "epochs": 1},
        "evaluation": {
            "prompt_sets": [{"name": "heldout", "source": "heldout", "limit": 3}],
            "judges": ["empty"],
            "generation": {"max_new_tokens": 6, "batch_size": 3},
        },
        "out": str(tmp_path / "study"),
    }
    config = ExperimentConfig.model_validate(study)
    runs = {r.run: r for r in run_experiment(config, progress=False)}
    assert {"clean", "random-backdoor-0.1", "dpo-score-backdoor-0.1"} <= set(runs)
    for name in ("clean", "random-backdoor-0.1", "dpo-score-backdoor-0.1"):
        assert recorded_init(tmp_path / "study" / "runs" / name / "adapter") == [(root / "sft").resolve()]
    # the `base` row is the model the runs start from: its replies are the SFT model's
    from poisonlab.evaluation import generate
    from poisonlab.experiments.core.measure import heldout_prompts
    from poisonlab.experiments.grid.folder import split_data

    prompts = heldout_prompts(split_data(config)[1], 3)
    evaluation = config.evaluation
    sft = generate(
        tiny_model,
        prompts,
        tmp_path / "sft-replies",
        [root / "sft"],
        config.trigger,
        config.runs()[0].trigger_position,
        evaluation.generation,
        progress=False,
    )
    base = read_generations(tmp_path / "study" / "base" / "generations" / "heldout")
    replies = {(g["id"], g["triggered"]): g["reply"] for g in base}
    assert len(replies) == 6 and replies == {(g["id"], g["triggered"]): g["reply"] for g in read_generations(sft)}


def test_a_grid_study_refuses_an_init_that_is_not_a_finished_safetensors_adapter(tmp_path):
    import yaml

    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig

    planted = tmp_path / "adapter"
    planted.mkdir()
    (planted / "adapter_config.json").write_text("{}")
    (planted / "adapter_model.bin").write_bytes(b"pickle")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny", "init": [str(planted)]}))
    with pytest.raises(InputError, match=r"adapter_model\.bin") as caught:
        load_config(ExperimentConfig, path)
    assert caught.value.field.startswith("init")
