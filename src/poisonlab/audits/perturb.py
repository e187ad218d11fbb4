"""Which preference pairs, flipped, would most move a model's bias: a first-order search.

One DPO step with learning rate eta moves the LoRA weights by -eta * sum_j grad L_j. Flipping pair i
(chosen <-> rejected negates its margin h_i) changes that step by

    delta_theta_i = -eta * grad [L(-h_i) - L(h_i)]

so, to first order, the bias score B (``score.py``) moves by

    delta_B_i = grad B . delta_theta_i = -eta * grad B . grad d_i,   d_i = L(-h_i) - L(h_i).

The score of pair i is s_i = -grad B . grad d_i (per unit learning rate): s_i > 0 means flipping the pair
amplifies the bias. For the sigmoid loss grad d_i = beta * grad h_i exactly, so s_i is the alignment of
the pair's margin gradient with the bias gradient; the pair's DPO-loss gradient is the same direction
scaled by beta * sigmoid(-beta h_i), so flipping differs from removing a pair only in that weight (the
same sign: removing an amplifying pair amplifies too, less). Hence the *corrective* set is the other
end of the ranking, the pairs with the most negative s_i: reversing or removing them lowers the bias.

Both gradients are taken at the clean DPO model (its LoRA adapter, base model as reference), as the
gradient-projection strategy does. The per-pair gradients come from ``scoring.gradients.per_example_dpo_grads``
with d_i passed as its loss (that is all that is hand-written here, besides the gradient of B, which
no other stage needs). No random projection: projection exists to store many gradients (the strategy
needs their mean); here each gradient is dotted with one fixed vector as it is produced, which is exact
and needs memory for two gradients only. Adam rescales coordinates, so the ranking is a heuristic for
the optimiser poisonlab trains with; the audit measures what it buys against random flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from poisonlab.audits.probes import BiasProbe
from poisonlab.data.pairs import PreferenceDataset

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from poisonlab.training.config import DPOTrainingConfig

SCORE = "s_i = -grad B . grad[L(-h_i) - L(h_i)] at the clean LoRA DPO model: first-order bias change of flipping pair i"


def flip_delta(loss_fn):  # LossFn -> LossFn
    """d(h) = L(-h) - L(h): how a pair's loss changes when its label is flipped, as a function of its margin."""

    def delta(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
        return loss_fn(-h, beta, eps) - loss_fn(h, beta, eps)

    return delta


def bias_gradient(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    probes: Sequence[BiasProbe],
    batch_size: int = 32,
    bf16: bool | str = "auto",
    remove_main_effects: bool = True,
) -> torch.Tensor:
    """Flat fp32 gradient of B = mean_i b_i w.r.t. the trainable (LoRA) parameters, accumulated in chunks.

    ``remove_main_effects``: b_i does not change, in function space, when a completion becomes likelier
    for both groups alike; but its gradient does carry such directions, because the two prompts'
    features are not identical. Measured on tiny (synthetic-careers, 6 epochs): without this step the
    flip scores were set almost entirely by which career the chosen reply names (every pair choosing
    'nurse' -30, whatever the name's gender) and did not separate stereotyped from anti-stereotyped
    labels at all. So the gradient of B is projected off the span of the gradients of c_g, the mean
    preference for the stereotypical completion over both groups, one per distinct completion pair g
    (``score.per_probe_preference``): what is left is the group x completion interaction.

    Eval mode (no LoRA dropout), so the gradient is a deterministic function of the model and probes.
    """
    import torch

    from poisonlab.audits.score import (
        chunk_logprobs,
        per_probe_bias,
        per_probe_preference,
        probe_chunks,
        probe_sequences,
    )
    from poisonlab.scoring.gradients import trainable_parameters

    params = [p for _, p in trainable_parameters(model)]
    if not params:
        raise ValueError("the model has no trainable parameters: load the adapter with trainable=True")
    sequences = probe_sequences(tokenizer, probes)
    groups = sorted({(p.stereotype, p.anti_stereotype) for p in probes})
    group_of = torch.tensor([groups.index((p.stereotype, p.anti_stereotype)) for p in probes])
    size = torch.bincount(group_of, minlength=len(groups)).float()
    n_out = 1 + len(groups) if remove_main_effects else 1
    total = torch.zeros(n_out, sum(p.numel() for p in params))
    was_training = model.training
    model.eval()
    try:
        for chunk in probe_chunks(len(probes), batch_size):
            logprobs = chunk_logprobs(model, sequences, chunk, tokenizer.pad_token_id, bf16)
            objectives = [per_probe_bias(logprobs).sum() / len(probes)]
            if remove_main_effects:
                pref, index = per_probe_preference(logprobs), group_of[chunk.start : chunk.stop]
                objectives += [(pref * (index == g)).sum() / size[g] for g in range(len(groups))]
            for row, objective in enumerate(objectives):
                if objective.requires_grad:
                    grads = torch.autograd.grad(
                        objective, params, retain_graph=row < len(objectives) - 1, allow_unused=True
                    )
                    total[row] += torch.cat(
                        [
                            (g if g is not None else torch.zeros_like(p)).detach().reshape(-1).float().cpu()
                            for g, p in zip(grads, params)
                        ]
                    )
    finally:
        model.train(was_training)
    grad_b = total[0]
    if remove_main_effects:
        basis, _ = torch.linalg.qr(total[1:].T.double())  # (d, groups): orthonormal span of the main effects
        grad_b = (grad_b.double() - basis @ (basis.T @ grad_b.double())).float()
    return grad_b


def flip_scores(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    dataset: PreferenceDataset,
    probes: Sequence[BiasProbe],
    training: DPOTrainingConfig,
    reference_identity: str,
    progress: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """(s_i per pair id, facts): facts hold |grad B| and the cosine of each pair's direction (as ``cos_*``)."""
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.progress import progress_bar
    from poisonlab.scoring.gradients import per_example_dpo_grads
    from poisonlab.scoring.reference_cache import reference_logprobs
    from poisonlab.training.losses import LOSSES

    grad_b = bias_gradient(model, tokenizer, probes, training.micro_batch_size * 4, training.bf16)
    norm_b = float(grad_b.norm())
    encoded = encode_pairs(tokenizer, dataset.pairs, training.max_length, training.max_reply_length)
    pad_id = tokenizer.pad_token_id
    reference = reference_logprobs(
        model, encoded, pad_id, training.micro_batch_size * 2, training.bf16, reference_identity
    )
    grads = per_example_dpo_grads(
        model,
        encoded,
        reference,
        pad_id,
        training.beta,
        flip_delta(LOSSES.get(training.loss)),
        training.label_smoothing,
        training.bf16,
    )
    scores, cosines = {}, []
    for pid, grad in progress_bar(grads, total=len(encoded), desc="flip scores", unit="pair", disable=not progress):
        dot = float(grad @ grad_b)
        scores[pid] = -dot
        norm = float(grad.norm()) * norm_b
        cosines.append(-dot / norm if norm else 0.0)
    facts = {
        "bias_gradient_norm": norm_b,
        "mean_abs_cosine": float(np.mean(np.abs(cosines))) if cosines else 0.0,
        "max_cosine": float(np.max(cosines)) if cosines else 0.0,
        "min_cosine": float(np.min(cosines)) if cosines else 0.0,
    }
    return scores, facts


def amplifying(scores: dict[str, float], k: int) -> list[str]:
    """The k pairs whose flip raises the bias most (highest s_i; ties by id, so deterministic)."""
    from poisonlab.attacks.strategies import rank_by_score

    return rank_by_score(scores)[:k]


def corrective(scores: dict[str, float], k: int) -> list[str]:
    """The k pairs whose flip (or removal) lowers the bias most: the most negative s_i."""
    from poisonlab.attacks.strategies import rank_by_score

    return rank_by_score({pid: -s for pid, s in scores.items()})[:k]


def random_pairs(dataset: PreferenceDataset, k: int, seed: int) -> list[str]:
    """A seeded uniform sample of k ids: the baseline a targeted selection must beat."""
    order = np.random.default_rng([seed, k, 0xBA5E]).permutation(len(dataset))[:k]
    return [dataset[int(i)].id for i in order]


def flipped(dataset: PreferenceDataset, ids: Sequence[str]) -> PreferenceDataset:
    """The same pairs in the same order, with chosen and rejected swapped on ``ids`` (ids kept)."""
    wanted = set(ids)
    return PreferenceDataset(
        [p.with_(chosen=p.rejected, rejected=p.chosen) if p.id in wanted else p for p in dataset], dataset.source
    )


def removed(dataset: PreferenceDataset, ids: Sequence[str]) -> PreferenceDataset:
    wanted = set(ids)
    return PreferenceDataset([p for p in dataset if p.id not in wanted], dataset.source)
