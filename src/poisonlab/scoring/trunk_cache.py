"""The frozen trunk's output, computed once per token sequence and kept on disk (the ``fast`` preset).

With LoRA on the top N decoder layers only (``trainable_layers``), the layers
below never change during training: the hidden states entering the first
trainable layer are a function of the token ids alone. They are computed once
per distinct sequence (prompt + chosen, prompt + rejected), stored, and every
later forward runs only the top layers on them: training steps, the reference
log-probs (the top layers with the adapter off), any number of epochs and every
run of a sweep that shares the sequences (a poisoned run's clean rows, both
sequences of a label-flipped pair).

The model is run by its own forward, not a hand-written layer call: the bottom
and top halves are shallow copies of the decoder whose ``layers`` list holds
only their layers (the same modules, so the adapter's weights are shared), fed
with ``input_ids`` and ``inputs_embeds=cached states`` respectively, with the
attention mask and explicit position ids. :func:`check_split` verifies on one
sequence that the two halves compose to the full forward before anything is
trained on them.

On disk: ``<cache>/trunk-states/<model chain>-cut<K>-<fp32|bf16|bf16-weights>/`` holds
safetensors shards, one tensor per sequence (its states, float32, length x
hidden) named by the sha256 of its token ids. Every writer adds shards of its own
(atomic rename, never a rewrite of another's), so concurrent runs never lose or
corrupt each other's entries; a sequence written twice is read from either.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from poisonlab.errors import InputError
from poisonlab.io import atomic_write_bytes, cache_dir
from poisonlab.models.encoding import EncodedPair
from poisonlab.progress import progress_bar
from poisonlab.scoring.logprobs import ReplyBatch

SHARD_SEQUENCES = 512  # sequences per shard written: an interrupted build keeps what it finished
SPLIT_TOLERANCE = 1e-4  # max |top(bottom(x)) - full(x)| on the check sequence (fp32 forwards differ ~1e-6)


def sequence_key(ids: Sequence[int]) -> str:
    """sha256 of one sequence's token ids."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


def pair_sequences(pairs: Iterable[EncodedPair]) -> list[list[int]]:
    """The token sequences a DPO pair runs through the model: prompt + chosen, prompt + rejected."""
    return [p.prompt_ids + reply for p in pairs for reply in (p.chosen_ids, p.rejected_ids)]


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def _with_layers(decoder: torch.nn.Module, layers: Sequence[torch.nn.Module], final_norm: bool) -> torch.nn.Module:
    """A shallow copy of ``decoder`` whose forward runs only ``layers`` (the same modules: weights shared)."""
    view = copy.copy(decoder)
    view._modules = dict(decoder._modules)  # a shallow copy shares the module dict: give it its own
    view._modules["layers"] = torch.nn.ModuleList(layers)
    if not final_norm:
        view._modules["norm"] = torch.nn.Identity()  # the states entering the next layer, not the final ones
    return view


def split_decoder(model: torch.nn.Module, cut: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(bottom, top): the decoder's layers below ``cut`` (output: the states entering layer ``cut``) and from
    ``cut`` on (input: those states as ``inputs_embeds``; output: the decoder's last hidden state)."""
    decoder = decoder_of(model)
    layers = list(decoder.layers)
    if not 0 < cut < len(layers):
        raise InputError(
            f"needs frozen layers below the trainable ones: with {len(layers)} decoder layers, trainable_layers "
            f"must be 1 to {len(layers) - 1} (the trunk would be layers 0 to {cut - 1})",
            field="trunk_cache",
        )
    return _with_layers(decoder, layers[:cut], final_norm=False), _with_layers(decoder, layers[cut:], final_norm=True)


def run_top(top: torch.nn.Module, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The top layers' last hidden state on right-padded ``states`` (rows, T, H)."""
    positions = torch.arange(states.shape[1], device=states.device)[None].expand(states.shape[0], -1)
    out = top(inputs_embeds=states, attention_mask=attention_mask, position_ids=positions, use_cache=False)
    return out.last_hidden_state


def run_bottom(bottom: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand(input_ids.shape[0], -1)
    out = bottom(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False)
    return out.last_hidden_state


@torch.no_grad()
def check_split(model: torch.nn.Module, cut: int, ids: Sequence[int]) -> float:
    """Max abs difference between the split forward and the full one on ``ids`` (adapter as it is); raises
    if above :data:`SPLIT_TOLERANCE`: a decoder whose forward does not just loop over ``self.layers``."""
    bottom, top = split_decoder(model, cut)
    device = next(model.parameters()).device
    input_ids = torch.tensor([list(ids)], device=device)
    mask = torch.ones_like(input_ids)
    full = decoder_of(model)(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
    split = run_top(top, run_bottom(bottom, input_ids, mask), mask)
    gap = float((full - split).abs().max())
    if gap > SPLIT_TOLERANCE:
        raise RuntimeError(
            f"this model's decoder does not split at layer {cut} (top(bottom(x)) differs from the full forward "
            f"by {gap:.2e}): train it without trunk_cache"
        )
    return gap


class TrunkStore:
    """sequence key -> float32 states (length, hidden), in safetensors shards under ``folder``."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        self.folder = folder
        self.where: dict[str, Path] = {}
        for shard in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            with safe_open(shard, framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safe_open handle is not a dict)
                    self.where.setdefault(key, shard)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def __len__(self) -> int:
        return len(self.where)

    def load(self, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        by_shard: dict[Path, list[str]] = {}
        for key in keys:
            by_shard.setdefault(self.where[key], []).append(key)
        states = {}
        for shard, wanted in by_shard.items():
            with safe_open(shard, framework="pt") as handle:
                states.update({key: handle.get_tensor(key) for key in wanted})
        return states

    def add(self, states: dict[str, torch.Tensor]) -> None:
        """Write ``states`` as a new shard (atomic; other writers' shards are never touched)."""
        if not states:
            return
        from safetensors.torch import save

        shard = self.folder / f"{uuid.uuid4().hex}.safetensors"
        atomic_write_bytes(shard, save({k: v.contiguous() for k, v in states.items()}))
        self.where.update(dict.fromkeys(states, shard))


def trunk_folder(model_key: str, cut: int, bf16: bool | str) -> Path:
    """The cache folder of a model's trunk states; ``bf16``: a bool, or a ``precision_tag``."""
    tag = bf16 if isinstance(bf16, str) else "bf16" if bf16 else "fp32"
    return cache_dir() / "trunk-states" / f"{model_key}-cut{cut}-{tag}"


@dataclass
class TrunkStates:
    """The cached states of a set of sequences and the top layers that run on them."""

    top: torch.nn.Module
    states: dict[str, torch.Tensor]
    cut: int
    computed: int  # sequences whose states were computed here (the others came from the cache)
    hidden_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.hidden_size = next(iter(self.states.values())).shape[-1] if self.states else 0

    def batch_states(self, batch: ReplyBatch, device: torch.device) -> torch.Tensor:
        """The cached states of ``batch``'s rows, right-padded like its ``input_ids`` (rows, T, H)."""
        rows, width = batch.input_ids.shape
        lengths = batch.attention_mask.sum(1).tolist()
        out = torch.zeros((rows, width, self.hidden_size), dtype=torch.float32)
        for row, n in enumerate(lengths):
            out[row, :n] = self.states[sequence_key(batch.input_ids[row, :n].tolist())]
        return out.to(device)

    def last_hidden(self, batch: ReplyBatch, device: torch.device) -> torch.Tensor:
        return run_top(self.top, self.batch_states(batch, device), batch.attention_mask.to(device))


@torch.no_grad()
def trunk_states(
    model: torch.nn.Module,
    encoded: Sequence[EncodedPair],
    pad_id: int,
    cut: int,
    model_key: str | None,
    batch_size: int,
    bf16: bool | str = "auto",
    desc: str | None = None,
) -> TrunkStates:
    """The states entering layer ``cut`` of every sequence of ``encoded``, computing only those not cached for
    ``model_key`` (None: no disk cache). The bottom layers must carry no adapter (they are the frozen trunk)."""
    from poisonlab.hardware import resolve_bf16
    from poisonlab.scoring.logprobs import precision_tag

    device = next(model.parameters()).device
    use_bf16 = resolve_bf16(bf16, device.type)
    bottom, top = split_decoder(model, cut)
    sequences = {sequence_key(s): s for s in pair_sequences(encoded)}  # distinct sequences, first seen first
    tag = precision_tag(model, use_bf16)
    store = TrunkStore(trunk_folder(model_key, cut, tag)) if model_key is not None else None
    cached = [k for k in sequences if store is not None and k in store]
    states = store.load(cached) if store is not None else {}
    missing = sorted((k for k in sequences if k not in states), key=lambda k: -len(sequences[k]))
    was_training = model.training
    model.eval()
    try:
        if missing:
            check_split(model, cut, sequences[missing[-1]])  # the shortest: a cheap check
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        fresh: dict[str, torch.Tensor] = {}
        chunks = [missing[i : i + 2 * batch_size] for i in range(0, len(missing), 2 * batch_size)]
        for chunk in progress_bar(chunks, desc=desc, disable=desc is None, unit="batch", leave=False):
            width = len(sequences[chunk[0]])  # length-sorted: the first is the longest
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, key in enumerate(chunk):
                input_ids[row, : len(sequences[key])] = torch.tensor(sequences[key])
                mask[row, : len(sequences[key])] = 1
            with autocast:
                hidden = run_bottom(bottom, input_ids.to(device), mask.to(device)).float().cpu()
            for row, key in enumerate(chunk):
                fresh[key] = hidden[row, : len(sequences[key])].clone()
            if store is not None and len(fresh) >= SHARD_SEQUENCES:
                store.add(fresh)
                states.update(fresh)
                fresh = {}
        if store is not None:
            store.add(fresh)
        states.update(fresh)
    finally:
        model.train(was_training)
    return TrunkStates(top, states, cut, computed=len(missing))
