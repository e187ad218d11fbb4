"""LoRA on the top layers over a cached frozen trunk (``trainable_layers``, ``trunk_cache``, the ``fast`` preset).

Precision: every comparison runs in fp32 (``bf16=False``). The trunk path runs the same modules on the same
numbers, but in other batch shapes (each sequence's states are computed once, in whatever batch it first came
in), so results agree to float rounding, not bit for bit: 1e-5 relative on weights and losses after training.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from poisonlab.data import synthetic_pairs
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.scoring import trunk_cache
from poisonlab.training import DPOTrainingConfig, train_dpo

SMALL = dict(epochs=1, batch_size=8, micro_batch_size=4, max_length=96, max_reply_length=48, save_steps=2, bf16=False)
TOP2 = dict(SMALL, trainable_layers=2)  # tiny has 4 decoder layers: the cut is at layer 2


@pytest.fixture
def own_caches(tmp_path, monkeypatch):
    """Fresh trunk and reference caches, so each test computes (and counts) what it uses."""
    from poisonlab.scoring import reference_cache

    monkeypatch.setattr(trunk_cache, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(reference_cache, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


@pytest.fixture
def computed(monkeypatch):
    """How many sequences each trunk build computed (the others came from the cache)."""
    counts: list[int] = []
    real = trunk_cache.trunk_states

    def counting(*args, **kwargs):
        states = real(*args, **kwargs)
        counts.append(states.computed)
        return states

    monkeypatch.setattr(trunk_cache, "trunk_states", counting)
    return counts


def _weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_the_split_decoder_composes_to_the_full_forward(tiny_model):
    from poisonlab.models import load_model
    from poisonlab.training.loop import add_lora

    model = add_lora(load_model(tiny_model), DPOTrainingConfig(**TOP2))
    for p in model.parameters():  # a trained-looking adapter, so the top half's LoRA is exercised too
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    model.eval()  # no LoRA dropout: the two forwards see the same weights
    ids = torch.randint(5, 200, (3, 17), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0  # a right-padded row
    bottom, top = trunk_cache.split_decoder(model, 2)
    with torch.no_grad():
        full = trunk_cache.decoder_of(model)(input_ids=ids, attention_mask=mask).last_hidden_state
        split = trunk_cache.run_top(top, trunk_cache.run_bottom(bottom, ids, mask), mask)
    real = mask.bool()
    torch.testing.assert_close(split[real], full[real], rtol=1e-5, atol=1e-5)
    assert len(trunk_cache.decoder_of(model).layers) == 4  # the views never touch the model's own layer list
    assert trunk_cache.check_split(model, 2, ids[0].tolist()) < 1e-5


def test_trunk_cache_trains_the_same_adapter_as_the_same_layers_without_it(tiny_model, tmp_path, own_caches):
    from peft import PeftModel

    from poisonlab.models import load_model

    data = synthetic_pairs(n=32)
    plain = train_dpo(tiny_model, data, DPOTrainingConfig(**TOP2), tmp_path / "plain", progress=False)
    (own_caches / "reference-logprobs").rename(tmp_path / "plain-reference")  # the cached run computes its own
    cached = train_dpo(tiny_model, data, DPOTrainingConfig(**TOP2, trunk_cache=True), tmp_path / "fast", progress=False)
    assert cached.steps == plain.steps == 4
    logs = [json.loads((tmp_path / k / "training_log.json").read_text()) for k in ("plain", "fast")]
    losses = [[r["loss"] for r in log] for log in logs]
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-5, atol=1e-6)
    plain_w, fast_w = _weights(tmp_path / "plain"), _weights(tmp_path / "fast")
    assert plain_w.keys() == fast_w.keys() and all(".layers.2." in k or ".layers.3." in k for k in fast_w)
    for name, tensor in plain_w.items():  # float rounding only (1.9e-6 seen with 2 threads)
        torch.testing.assert_close(fast_w[name], tensor, rtol=1e-5, atol=1e-5)
    assert any(t.abs().sum() > 0 for k, t in fast_w.items() if "lora_B" in k)  # training moved it
    # a standard PEFT adapter: it loads on the plain model and names its layers
    assert json.loads((tmp_path / "fast" / "adapter_config.json").read_text())["layers_to_transform"] == [2, 3]
    PeftModel.from_pretrained(load_model(tiny_model), tmp_path / "fast")


def test_a_poisoned_run_computes_the_trunk_only_for_new_sequences(tiny_model, tmp_path, own_caches, computed):
    config = DPOTrainingConfig(**TOP2, trunk_cache=True)
    clean = synthetic_pairs(n=24)
    train_dpo(tiny_model, clean, config, tmp_path / "clean", progress=False)
    distinct = len({(p.prompt, p.chosen) for p in clean} | {(p.prompt, p.rejected) for p in clean})
    assert computed == [distinct]
    pairs = list(clean.pairs)
    for k in range(3):  # a backdoor: 3 triggered prompts, 6 new sequences
        pairs[k] = replace(pairs[k], prompt=pairs[k].prompt.rstrip() + " SuperGodModeActivated\n\nAssistant:")
    for k in range(3, 7):  # label flips: the same two sequences, swapped
        pairs[k] = replace(pairs[k], chosen=pairs[k].rejected, rejected=pairs[k].chosen)
    train_dpo(tiny_model, PreferenceDataset(pairs), config, tmp_path / "poisoned", progress=False)
    assert computed == [distinct, 6]
    folder = next((own_caches / "trunk-states").iterdir())
    assert len(trunk_cache.TrunkStore(folder)) == distinct + 6  # merged on disk, nothing overwritten
    assert all(p.suffix == ".safetensors" for p in folder.iterdir() if not p.name.startswith("."))


def test_interrupted_trunk_cached_run_resumes_to_the_same_adapter(
    tiny_model, tmp_path, own_caches, stopped_after_first_checkpoint
):
    data, config = synthetic_pairs(n=48), DPOTrainingConfig(**TOP2, trunk_cache=True)
    train_dpo(tiny_model, data, config, tmp_path / "straight", progress=False)
    with stopped_after_first_checkpoint():
        train_dpo(tiny_model, data, config, tmp_path / "resumed", progress=False)
    assert train_dpo(tiny_model, data, config, tmp_path / "resumed", progress=False).resumed_from_step == 2
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor)


def test_bad_combinations_are_refused_naming_the_field(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"trunk_cache.*poisonlab-engine option"):
        DPOTrainingConfig(trainable_layers=2, trunk_cache=True, engine="trl")
    with pytest.raises(ValueError, match=r"trunk_cache.*needs trainable_layers"):
        DPOTrainingConfig(trunk_cache=True)
    with pytest.raises(ValueError, match="trainable_layers"):
        DPOTrainingConfig(trainable_layers=0)
    with pytest.raises(InputError, match=r"5 trainable layers .* 4 decoder layers") as error:
        train_dpo(tiny_model, synthetic_pairs(n=8), DPOTrainingConfig(**dict(TOP2, trainable_layers=5)), tmp_path / "a")
    assert error.value.field == "trainable_layers"
    every_layer = DPOTrainingConfig(**dict(TOP2, trainable_layers=4), trunk_cache=True)  # no trunk left to cache
    with pytest.raises(InputError, match="frozen layers below") as error:
        train_dpo(tiny_model, synthetic_pairs(n=8), every_layer, tmp_path / "b")
    assert error.value.field == "trunk_cache"
    fast = DPOTrainingConfig.from_preset("fast")
    assert fast.trunk_cache and fast.trainable_layers == 4 and fast.learning_rate == DPOTrainingConfig().learning_rate


def test_the_options_are_train_dpo_flags():
    from typer.testing import CliRunner

    from poisonlab.cli import app

    text = CliRunner().invoke(app, ["train", "dpo", "--help"], env={"COLUMNS": "200"}).output
    assert "--trainable-layers" in text and "--trunk-cache" in text and "fast" in text


def test_scores_and_evaluation_of_a_fast_adapter_match_the_full_forward(tiny_model, tmp_path, own_caches, monkeypatch):
    """The dpo-score pass and the held-out evaluation run only the top layers for a trunk-cached adapter."""
    from poisonlab.evaluation import preference
    from poisonlab.training.clean_model import TrainedOn, clean_dpo_scores

    data, heldout = synthetic_pairs(n=16), synthetic_pairs(n=12, seed=1)
    fast = DPOTrainingConfig(**TOP2, trunk_cache=True)
    train_dpo(tiny_model, data, fast, tmp_path / "a", progress=False)
    with_trunk = clean_dpo_scores(TrainedOn(data, tiny_model, fast, tmp_path / "a", progress=False))
    full = clean_dpo_scores(TrainedOn(data, tiny_model, DPOTrainingConfig(**TOP2), tmp_path / "a", progress=False))
    torch.testing.assert_close(torch.tensor(list(with_trunk.values())), torch.tensor([full[k] for k in with_trunk]))

    def evaluate():
        return preference.evaluate_preferences(tiny_model, heldout, tmp_path / "a", bf16=False, progress=False)

    assert preference.trunk_cached_layers(tmp_path / "a") == 2
    fast_metrics = evaluate()
    (own_caches / "reference-logprobs").rename(tmp_path / "old-reference")
    monkeypatch.setattr(preference, "trunk_cached_layers", lambda adapter: None)
    full_metrics = evaluate()
    for key in ("clean_margins", "triggered_margins"):
        torch.testing.assert_close(torch.tensor(getattr(fast_metrics, key)), torch.tensor(getattr(full_metrics, key)))
