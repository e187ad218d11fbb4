import json

import pytest
import torch

from poisonlab.data import synthetic_pairs
from poisonlab.training import SFTTrainingConfig, train_sft


@pytest.mark.numeric
def test_sft_lowers_the_reply_loss_and_writes_a_peft_adapter(tiny_model, tmp_path):
    from peft import PeftModel

    from poisonlab.models import load_model

    config = SFTTrainingConfig(
        epochs=3,
        batch_size=8,
        micro_batch_size=4,
        max_length=96,
        max_reply_length=48,
        bf16=False,
        warmup_ratio=0.0,
        learning_rate=1e-2,
    )
    result = train_sft(tiny_model, synthetic_pairs(n=24), config, tmp_path / "sft", progress=False)
    log = json.loads((tmp_path / "sft" / "training_log.json").read_text())
    assert result.steps == len(log) == 9
    first, last = log[0]["loss"], sum(r["loss"] for r in log[-3:]) / 3
    assert last < 0.9 * first, (first, last)  # tiny already knows the synthetic set: a small, sure drop
    model = PeftModel.from_pretrained(load_model(tiny_model), tmp_path / "sft")
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    assert train_sft(tiny_model, synthetic_pairs(n=24), config, tmp_path / "sft", progress=False).steps == 9
    assert torch.isfinite(torch.tensor(result.final_loss))
