"""The DPO loss and its robust variants from the literature, one small function each."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from poisonlab.training.losses.base import LOSSES, LossFacts


@LOSSES.register("sigmoid", facts=LossFacts(trl_loss_type="sigmoid"))
def sigmoid_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """DPO (Rafailov et al., 2023): -log sigmoid(beta * h)."""
    return -F.logsigmoid(beta * h)


@LOSSES.register("ipo", facts=LossFacts(trl_loss_type="ipo"))  # TRL divides by reply length
def ipo_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """IPO (Azar et al., 2023): (h - 1/(2 beta))^2, which caps how far a pair is pushed."""
    return (h - 1 / (2 * beta)) ** 2


@LOSSES.register("cdpo", facts=LossFacts(uses_label_smoothing=True))  # TRL 1.x has no label smoothing
def conservative_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """Conservative DPO (Mitchell, 2023): label smoothing, each label wrong with prob eps."""
    return -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)


@LOSSES.register("rdpo", facts=LossFacts(uses_label_smoothing=True, trl_loss_type="robust"))
def robust_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """Robust DPO (Chowdhury et al., 2024): unbiased under flip rate eps < 1/2."""
    return ((1 - eps) * -F.logsigmoid(beta * h) - eps * -F.logsigmoid(-beta * h)) / (1 - 2 * eps)
