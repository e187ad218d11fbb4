import json

import pytest
import torch
from safetensors.torch import load_file

from poisonlab.data import synthetic_pairs
from poisonlab.training import LOSSES, DPOTrainingConfig, train_dpo

SMALL = dict(epochs=1, batch_size=8, micro_batch_size=4, max_length=96, max_reply_length=48, save_steps=2, bf16=False)


def test_adapter_loads_with_peft_and_training_moved_the_weights(tiny_model, tmp_path):
    from peft import PeftModel

    from poisonlab.models import load_model

    result = train_dpo(tiny_model, synthetic_pairs(n=32), DPOTrainingConfig(**SMALL), tmp_path / "a", progress=False)
    assert result.steps == 4 and torch.isfinite(torch.tensor(result.final_loss))
    model = PeftModel.from_pretrained(load_model(tiny_model), tmp_path / "a")
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero; DPO moved it
    assert json.loads((tmp_path / "a" / "training_config.json").read_text())["beta"] == 0.1


def test_a_folder_trained_otherwise_is_refused_not_silently_reused(tiny_model, tmp_path):
    from poisonlab.errors import InputError

    data, config = synthetic_pairs(n=16), DPOTrainingConfig(**SMALL)
    first = train_dpo(tiny_model, data, config, tmp_path / "a", progress=False)
    faster = config.model_copy(update={"threads": 2, "save_steps": 1})  # speed and cadence only: same adapter
    assert train_dpo(tiny_model, data, faster, tmp_path / "a", progress=False) == first
    with pytest.raises(InputError, match="learning_rate") as error:
        train_dpo(tiny_model, data, config.model_copy(update={"learning_rate": 1e-3}), tmp_path / "a")
    assert error.value.path.endswith("training_config.json") and error.value.field == "learning_rate"
    with pytest.raises(InputError) as error:
        train_dpo(tiny_model, synthetic_pairs(n=16, seed=1), config, tmp_path / "a")
    assert error.value.field == "data_sha256"


def test_interrupted_run_resumes_to_the_same_adapter(tiny_model, tmp_path, stopped_after_first_checkpoint):
    data, config = synthetic_pairs(n=48), DPOTrainingConfig(**SMALL)
    train_dpo(tiny_model, data, config, tmp_path / "straight", progress=False)
    with stopped_after_first_checkpoint():
        train_dpo(tiny_model, data, config, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "checkpoint" / "state.json").exists()
    result = train_dpo(tiny_model, data, config, tmp_path / "resumed", progress=False)
    assert result.resumed_from_step == 2
    straight = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor)


@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_loss_prefers_the_chosen_reply(loss):
    fn = LOSSES.get(loss)
    wrong, none, right = (fn(torch.tensor([h]), 0.1, 0.1).item() for h in (-5.0, 0.0, 5.0))
    assert right < none < wrong


def test_presets_and_validation():
    paper = DPOTrainingConfig.from_preset("paper")
    assert (paper.learning_rate, paper.lora_r, paper.lora_alpha, paper.lora_dropout, paper.batch_size) == (
        1.41e-5,
        8,
        16,
        0.05,
        16,
    )
    assert DPOTrainingConfig.from_preset("cpu", beta=0.2).beta == 0.2
    with pytest.raises(ValueError, match="Did you mean 'ipo'"):
        DPOTrainingConfig(loss="ipoo")
    with pytest.raises(ValueError):
        DPOTrainingConfig(bogus=1)
