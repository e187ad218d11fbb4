"""A model as a base plus an ordered list of LoRA adapters (SFT, then DPO, ...).

Adapters are merged into the base weights one after another, so the chain runs
as fast as a plain model (no LoRA matmuls at inference) and each adapter applies
to the model it was trained on top of.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from poisonlab.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def check_adapter_folder(adapter: str | Path) -> Path:
    """A PEFT adapter folder with safetensors weights, or an InputError naming what is wrong."""
    path = Path(adapter)
    if not (path / "adapter_config.json").exists():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=path)
    if not (path / "adapter_model.safetensors").exists():
        raise InputError("no adapter_model.safetensors (only safetensors weights are loaded)", path=path)
    return path


def load_with_adapters(
    model: str | Path, adapters: Sequence[str | Path] = (), device: str | None = None
) -> PreTrainedModel:
    """The base model with every adapter merged in, in order; fp32 on ``device``."""
    from peft import PeftModel

    from poisonlab.models.loading import load_model

    net = load_model(model, device=device)
    for adapter in adapters:
        net = PeftModel.from_pretrained(net, str(check_adapter_folder(adapter))).merge_and_unload()
    return net
