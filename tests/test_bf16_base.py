"""The frozen base held in bf16 (``models.loading.hold_in_bf16``), what ``bf16: true`` trains and scores with.

Precision stated: values are compared with fp32 within a bf16 tolerance (8 bits of mantissa: a reply's summed
log-prob within 2% of fp32's), never for equality.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from poisonlab.data import synthetic_pairs
from poisonlab.models import encode_pairs, load_model, load_tokenizer
from poisonlab.scoring import collate, reply_logprobs
from poisonlab.scoring.logprobs import precision_tag, weights_in_bf16
from poisonlab.training import DPOTrainingConfig, train_dpo
from poisonlab.training.loop import add_lora


def test_held_base_is_bf16_with_fp32_adapter_and_rotary_and_eager_attention_on_a_cpu(tiny_model):
    model = add_lora(load_model(tiny_model, "cpu", bf16=True), DPOTrainingConfig())
    base = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    lora = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert set(base.values()) == {torch.bfloat16} and lora and set(lora.values()) == {torch.float32}
    buffers = {n: b.dtype for n, b in model.named_buffers() if b.is_floating_point()}
    assert buffers and set(buffers.values()) == {torch.float32}  # rotary frequencies keep their precision
    assert model.get_base_model().config._attn_implementation == "eager"
    assert weights_in_bf16(model) and precision_tag(model, True) == "bf16-weights"
    fp32 = load_model(tiny_model, "cpu", bf16=False)
    assert not weights_in_bf16(fp32) and precision_tag(fp32, True) == "bf16" and precision_tag(fp32, False) == "fp32"


def test_held_base_log_probs_stay_within_bf16_tolerance_of_fp32(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    batch = collate(encode_pairs(tokenizer, synthetic_pairs(n=6).pairs, 96, 48), tokenizer.pad_token_id)
    with torch.no_grad():
        model = load_model(tiny_model, "cpu").eval()
        fp32, autocast = reply_logprobs(model, batch, bf16=False), reply_logprobs(model, batch, bf16=True)
        held = reply_logprobs(load_model(tiny_model, "cpu", bf16=True).eval(), batch, bf16=True)
    assert not torch.equal(held, fp32)  # it did compute in bf16
    torch.testing.assert_close(held, fp32, rtol=0.02, atol=0.05)
    # no less faithful than the autocast path it replaces (measured: 0.056 against 0.057 at most)
    assert (held - fp32).abs().max() <= 2 * (autocast - fp32).abs().max() + 1e-3


def test_bf16_training_saves_an_fp32_adapter_and_its_own_reference_cache(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))
    config = DPOTrainingConfig(epochs=1, batch_size=8, micro_batch_size=4, max_length=96, max_reply_length=48)
    result = train_dpo(tiny_model, synthetic_pairs(n=16), config.model_copy(update={"bf16": True}), tmp_path / "a")
    weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    assert weights and {w.dtype for w in weights.values()} == {torch.float32}
    assert torch.isfinite(torch.tensor(result.final_loss))
    folders = [p.name for p in (tmp_path / "cache" / "reference-logprobs").iterdir()]
    assert len(folders) == 1 and folders[0].endswith("-bf16-weights"), folders
    assert json.loads((tmp_path / "a" / "training_config.json").read_text())["bf16"] is True


def test_compile_is_a_poisonlab_engine_option():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="field 'compile': is a poisonlab-engine option"):
        DPOTrainingConfig(compile=True, engine="trl")
    assert DPOTrainingConfig(compile=True).compile


@pytest.mark.slow
def test_compiled_layers_train_the_same_adapter_up_to_rounding(tiny_model, tmp_path):
    """Slow on a CPU (inductor compiles for minutes), so marked: fp32, two steps, compiled against eager.

    Stated tolerance: the same losses within 1e-3, each adapter weight within AdamW's sign-flip bound.
    """
    pytest.importorskip("torch._inductor")
    small = dict(epochs=1, batch_size=8, micro_batch_size=8, max_length=64, max_reply_length=32, bf16=False)
    config = DPOTrainingConfig(**small)
    data = synthetic_pairs(n=16)
    eager = train_dpo(tiny_model, data, config, tmp_path / "eager", progress=False)
    compiled = train_dpo(tiny_model, data, config.model_copy(update={"compile": True}), tmp_path / "c", progress=False)
    a, b = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("eager", "c"))
    assert a.keys() == b.keys()
    # AdamW's first steps move each weight by about lr x sign(gradient): where a gradient is near zero, the
    # kernels' rounding can flip its sign, so a weight may differ by up to 2 x lr per step, and no more
    bound = 2 * eager.steps * config.learning_rate
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=bound)
    assert abs(eager.final_loss - compiled.final_loss) < 1e-3
