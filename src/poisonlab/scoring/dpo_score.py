"""Implicit rewards and DPO scores of preference pairs (arXiv 2406.12091, Sec. 4).

For a DPO-trained policy pi and its reference pi_ref, the implicit reward of a
reply is r(y) = beta * [log pi(y|x) - log pi_ref(y|x)], and a pair's DPO score
is r(y_w) - r(y_l): how confidently the model prefers the chosen reply.

The paper's reference is the SFT model the DPO run started from. poisonlab
trains a LoRA adapter on top of the base model, so the default reference is
that base model: the same network with the adapter switched off. That needs no
second copy of the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from poisonlab.models.encoding import EncodedPair
from poisonlab.progress import progress_bar
from poisonlab.scoring.logprobs import collate, length_bucketed, reply_logprobs

if TYPE_CHECKING:
    from poisonlab.scoring.trunk_cache import TrunkStates


@dataclass
class PairLogprobs:
    """Summed reply log-probs per pair id, aligned arrays."""

    ids: list[str]
    chosen: np.ndarray
    rejected: np.ndarray

    def by_id(self) -> dict[str, tuple[float, float]]:
        return {i: (float(c), float(r)) for i, c, r in zip(self.ids, self.chosen, self.rejected)}

    def reorder(self, ids: Sequence[str]) -> PairLogprobs:
        index = {pid: k for k, pid in enumerate(self.ids)}
        order = np.array([index[i] for i in ids], dtype=np.int64)
        return PairLogprobs(list(ids), self.chosen[order], self.rejected[order])


@torch.no_grad()
def pair_logprobs(
    model: torch.nn.Module,
    encoded: Sequence[EncodedPair],
    pad_id: int,
    batch_size: int = 16,
    bf16: bool | str = "auto",
    use_adapter: bool = True,
    desc: str | None = None,
    trunk: TrunkStates | None = None,
    on_batch: Callable[[dict[str, tuple[float, float]]], None] | None = None,
) -> PairLogprobs:
    """log pi(chosen|x) and log pi(rejected|x) for every pair, in the order given (``trunk``: the pairs'
    cached frozen-trunk states, so only the layers above them run; ``on_batch`` receives each finished batch's
    values by pair id, so a caller can keep them before the pass ends)."""
    was_training = model.training
    model.eval()
    switch_off = model.disable_adapter() if (not use_adapter and hasattr(model, "disable_adapter")) else nullcontext()
    scores: dict[str, tuple[float, float]] = {}
    try:
        with switch_off:
            batches = list(length_bucketed(encoded, batch_size))
            for chunk in progress_bar(batches, desc=desc, disable=desc is None, unit="batch", leave=False):
                batch = collate(chunk, pad_id)
                values = reply_logprobs(model, batch, bf16=bf16, trunk=trunk).cpu().numpy()
                b = batch.size
                done = {pid: (float(values[k]), float(values[b + k])) for k, pid in enumerate(batch.ids)}
                scores.update(done)
                if on_batch is not None:
                    on_batch(done)
    finally:
        model.train(was_training)
    ids = [p.id for p in encoded]
    return PairLogprobs(
        ids,
        np.array([scores[i][0] for i in ids], dtype=np.float64),
        np.array([scores[i][1] for i in ids], dtype=np.float64),
    )


@dataclass
class ImplicitRewards:
    """Per-pair implicit rewards of the chosen and rejected replies."""

    ids: list[str]
    chosen: np.ndarray
    rejected: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """The DPO score r(y_w) - r(y_l) of each pair."""
        return self.chosen - self.rejected

    def scores(self) -> dict[str, float]:
        return dict(zip(self.ids, self.margin.tolist()))


def implicit_rewards(
    model: torch.nn.Module,
    encoded: Sequence[EncodedPair],
    pad_id: int,
    beta: float,
    batch_size: int = 16,
    bf16: bool | str = "auto",
    reference: PairLogprobs | None = None,
    desc: str | None = "scoring",
    trunk: TrunkStates | None = None,
) -> ImplicitRewards:
    """beta * log(pi/pi_ref) for both replies; pass ``reference`` to reuse cached ref log-probs, ``trunk``
    (an adapter on the top layers only) to run just the layers above the pairs' cached frozen-trunk states."""
    policy = pair_logprobs(
        model, encoded, pad_id, batch_size, bf16, use_adapter=True, desc=desc and f"{desc} (policy)", trunk=trunk
    )
    if reference is None:
        reference = pair_logprobs(
            model, encoded, pad_id, batch_size, bf16, False, desc=desc and f"{desc} (reference)", trunk=trunk
        )
    reference = reference.reorder(policy.ids)
    return ImplicitRewards(
        policy.ids, beta * (policy.chosen - reference.chosen), beta * (policy.rejected - reference.rejected)
    )
