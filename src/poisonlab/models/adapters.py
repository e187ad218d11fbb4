"""A model as a base plus an ordered list of LoRA adapters (SFT, then DPO, ...).

Adapters are merged into the base weights one after another, so the chain runs
as fast as a plain model (no LoRA matmuls at inference) and each adapter applies
to the model it was trained on top of.

An adapter trained with ``init`` (``poisonlab train dpo --init SFT_ADAPTER``) records
that chain in its ``training_config.json``, with each adapter's hash. :func:`full_chain`
reads it back, so ``--adapter DPO_ADAPTER`` alone loads base + SFT + DPO: an adapter
is never applied to a model it was not trained on by accident.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonlab.errors import InputError
from poisonlab.io import sha256_file_memo
from poisonlab.models.safety import check_adapter_folder

if TYPE_CHECKING:
    from transformers import PreTrainedModel

INIT_FIELD = "init"  # in an adapter's training_config.json: [{"path", "sha256"}] of the adapters below it
SETTINGS_FILE = "training_config.json"


def adapter_sha256(adapter: str | Path) -> str:
    """sha256 of an adapter's weights (memoised: chains ask for it often)."""
    return sha256_file_memo(check_adapter_folder(adapter) / "adapter_model.safetensors")


def init_record(init: Sequence[str | Path]) -> list[dict[str, str]]:
    """What a trained adapter's settings record of the adapters it started from."""
    return [{"path": str(Path(a).resolve()), "sha256": adapter_sha256(a)} for a in init]


def recorded_init(adapter: str | Path) -> list[Path]:
    """The adapters ``adapter`` was trained on top of, in order, as its folder records them ([]: the base).

    Refuses a chain whose adapters are gone or have changed since: the adapter would load onto the wrong model.
    """
    settings = Path(adapter) / SETTINGS_FILE
    if not settings.is_file():
        return []
    try:
        entries = json.loads(settings.read_text()).get(INIT_FIELD) or []
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"not a training settings file ({exc})", path=settings) from None
    chain = []
    for entry in entries:
        below = Path(entry["path"])
        if not (below / "adapter_model.safetensors").is_file():
            raise InputError(
                f"this adapter was trained on top of {below}, which is gone: restore it, or pass the chain "
                "with --adapter in order",
                path=settings,
                field=INIT_FIELD,
            )
        if adapter_sha256(below) != entry["sha256"]:
            raise InputError(
                f"this adapter was trained on top of {below}, whose weights have changed since",
                path=settings,
                field=INIT_FIELD,
            )
        chain.append(below)
    return chain


def full_chain(adapters: Sequence[str | Path]) -> list[Path]:
    """``adapters`` with each one's recorded init chain before it, where the caller left the chain out.

    ``[dpo]`` becomes ``[sft, dpo]`` when dpo was trained from sft; ``[sft, dpo]`` stays as it is; ``[other, dpo]``
    is refused. An adapter trained on the bare base may go on top of anything (a transfer experiment).
    """
    chain: list[Path] = []
    for adapter in map(Path, adapters):
        init = recorded_init(adapter)
        if init and not chain:
            chain = list(init)
        elif init and [p.resolve() for p in chain] != [p.resolve() for p in init]:
            raise InputError(
                f"was trained on top of {', '.join(map(str, init))}, not {', '.join(map(str, chain))}",
                path=adapter,
                field="--adapter",
            )
        chain.append(adapter)
    return chain


def chain_identity(model: str | Path, adapters: Sequence[str | Path]) -> str:
    """A cache key for base + adapters: the reference of a DPO run that started from an SFT adapter."""
    from poisonlab.models.loading import model_identity

    return model_identity(model) + "".join(f"+{adapter_sha256(a)[:12]}" for a in adapters)


def load_with_adapters(
    model: str | Path, adapters: Sequence[str | Path] = (), device: str | None = None, bf16: bool | str = False
) -> PreTrainedModel:
    """The base model with every adapter of :func:`full_chain` merged in, in order, on ``device``: fp32, or with
    ``bf16`` resolved true held in bf16 (the adapters merged in fp32 first, then cast; see ``hold_in_bf16``)."""
    from poisonlab.models.loading import bf16_resolved, hold_in_bf16, load_model
    from poisonlab.models.safety import load_adapter

    chain = full_chain(adapters)
    net: Any = load_model(model, device=device, bf16=bf16 if not chain else False)
    for adapter in chain:
        net = load_adapter(net, adapter).merge_and_unload()
    if chain and bf16_resolved(bf16, str(next(net.parameters()).device)):
        net = hold_in_bf16(net)
    return net
