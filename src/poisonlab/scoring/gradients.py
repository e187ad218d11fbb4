"""Per-example gradients of the DPO loss with respect to a model's trainable (LoRA) parameters.

The gradient-projection strategy of arXiv 2406.12091 needs one gradient per
pair, taken at the clean DPO model (its LoRA adapter) with the base model as
reference, exactly the loss the clean model was trained on.

Why a plain loop of one ``autograd.grad`` per pair and not ``torch.func``'s ``vmap(grad)``: vmap cannot
use the reply-only LM head of ``reply_logprobs`` (its boolean indexing has a data-dependent shape), so it
pays for full-vocabulary logits on every padded position, while a single pair has no padding at all; the
loop measured faster on both built-in models (``benchmarks/strategies.py --compare-grads``; figures in
docs/results/speed.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch

from poisonlab.models.encoding import EncodedPair
from poisonlab.scoring.dpo_score import PairLogprobs
from poisonlab.scoring.logprobs import collate, reply_logprobs

# (margins h, beta, label_smoothing) -> per-pair losses: the signature of training.losses.LOSSES, which
# callers pass in (scoring sits below training, so it names the type without importing it)
LossFn = Callable[[torch.Tensor, float, float], torch.Tensor]


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters a gradient is taken over, in a fixed (registration) order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def per_example_dpo_grads(
    model: torch.nn.Module,
    encoded: Sequence[EncodedPair],
    reference: PairLogprobs,
    pad_id: int,
    beta: float,
    loss_fn: LossFn,
    label_smoothing: float = 0.0,
    bf16: bool | str = "auto",
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(pair id, flat fp32 gradient)`` of each pair's DPO loss, in the order given.

    The model is put in eval mode (no LoRA dropout) so a gradient is a
    deterministic function of the pair; its training mode is restored after.
    """
    params = [p for _, p in trainable_parameters(model)]
    if not params:
        raise ValueError("the model has no trainable parameters: load the adapter with is_trainable=True")
    ref = reference.by_id()
    was_training = model.training
    model.eval()
    try:
        for pair in encoded:
            batch = collate([pair], pad_id)
            logps = reply_logprobs(model, batch, bf16=bf16)
            ref_chosen, ref_rejected = ref[pair.id]
            margin = (logps[0] - ref_chosen) - (logps[1] - ref_rejected)
            loss = loss_fn(margin, beta, label_smoothing)
            grads = torch.autograd.grad(loss, params)
            yield pair.id, torch.cat([g.detach().reshape(-1).float().cpu() for g in grads])
    finally:
        model.train(was_training)


def project_gradients(
    grads: Iterable[tuple[str, torch.Tensor]], projector, batch_size: int, total: int | None = None, progress=False
) -> torch.Tensor:
    """Stack ``projector.project`` of the gradients, ``batch_size`` at a time (each call regenerates the matrix)."""
    from poisonlab.progress import progress_bar

    out, pending = [], []
    for _, grad in progress_bar(grads, total=total, desc="gradients", unit="pair", disable=not progress):
        pending.append(grad)
        if len(pending) == batch_size:
            out.append(projector.project(torch.stack(pending)))
            pending = []
    if pending:
        out.append(projector.project(torch.stack(pending)))
    return torch.cat(out)
