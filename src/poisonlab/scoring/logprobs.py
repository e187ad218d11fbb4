"""Sequence log-probabilities of replies: the one computation every stage shares.

Two things make this cheaper than ``model(...).logits``:
- the LM head runs only on reply positions (prompts are most of an HH dialogue,
  and their logits would be thrown away), and
- log-softmax is taken as ``logit[target] - logsumexp(logits)`` in fp32 on those
  positions only, so no batch x length x vocabulary fp32 tensor is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from poisonlab.hardware import resolve_bf16
from poisonlab.models.encoding import EncodedPair

if TYPE_CHECKING:
    from poisonlab.scoring.trunk_cache import TrunkStates


@dataclass
class ReplyBatch:
    """Right-padded sequences; from ``collate``: the B chosen replies first, then the B rejected."""

    ids: list[str]
    input_ids: torch.Tensor  # (2B, T)
    attention_mask: torch.Tensor  # (2B, T)
    reply_mask: torch.Tensor  # (2B, T) True where the token is part of the reply

    @property
    def size(self) -> int:
        return len(self.ids)


def collate(pairs: Sequence[EncodedPair], pad_id: int) -> ReplyBatch:
    sequences = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    return collate_sequences([p.id for p in pairs], sequences, pad_id)


def collate_sequences(ids: list[str], sequences: Sequence[tuple[list[int], list[int]]], pad_id: int) -> ReplyBatch:
    """Right-padded (prompt, reply) sequences with a mask of the reply tokens (SFT uses one per pair)."""
    width = max(len(prompt) + len(reply) for prompt, reply in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    reply_mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, (prompt, reply) in enumerate(sequences):
        n_prompt, n = len(prompt), len(prompt) + len(reply)
        input_ids[row, :n] = torch.tensor(prompt + reply)
        attention[row, :n] = 1
        reply_mask[row, n_prompt:n] = True
    return ReplyBatch(ids, input_ids, attention, reply_mask)


def length_bucketed(pairs: Sequence[EncodedPair], batch_size: int) -> Iterator[list[EncodedPair]]:
    """Batches of similar length (little padding), for scoring where order does not matter."""
    ordered = sorted(pairs, key=lambda p: p.length, reverse=True)
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def weights_in_bf16(model: torch.nn.Module) -> bool:
    """Whether the model's frozen base is held in bf16 (``models.loading.hold_in_bf16``), not cast by autocast.

    Its values differ from autocast over fp32 weights (the residual stream and norms run in bf16 too), so
    caches of computed values name it apart (``precision_tag``).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_input_embeddings().weight.dtype == torch.bfloat16


def precision_tag(model: torch.nn.Module, bf16: bool) -> str:
    """How values are computed, for cache folder names: ``fp32``, ``bf16`` (autocast over fp32 weights) or
    ``bf16-weights`` (the base held in bf16)."""
    return "bf16-weights" if weights_in_bf16(model) else "bf16" if bf16 else "fp32"


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def reply_logprobs(
    model: torch.nn.Module, batch: ReplyBatch, bf16: bool | str = "auto", trunk: TrunkStates | None = None
) -> torch.Tensor:
    """Sum of log p(token) over each sequence's reply tokens: shape (2B,), on the model's device.

    ``trunk``: the batch's sequences' cached frozen-trunk states; only the layers above it run.
    """
    decoder, head = _decoder_and_head(model)
    device = next(model.parameters()).device
    input_ids = batch.input_ids.to(device)
    attention_mask = batch.attention_mask.to(device)
    reply_mask = batch.reply_mask.to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    with autocast if resolve_bf16(bf16, device.type) else nullcontext():
        if trunk is None:
            hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (2B, T, H)
        else:
            hidden = trunk.last_hidden(batch, device)
        # position t predicts token t+1: keep positions whose *next* token is a reply token
        rows, cols = reply_mask[:, 1:].nonzero(as_tuple=True)
        logits = head(hidden[:, :-1][rows, cols]).float()  # (n_reply_tokens, V)
    targets = input_ids[:, 1:][rows, cols]
    token_logprobs = logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    totals = torch.zeros(batch.input_ids.shape[0], dtype=torch.float32, device=token_logprobs.device)
    return totals.index_add(0, rows, token_logprobs)
