"""DPO losses, one small function each, registered by name.

Each takes the policy-minus-reference log-ratio margins
``h = (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))``
and returns per-pair losses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from poisonlab.registry import Registry

LossFn = Callable[[torch.Tensor, float, float], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("DPO loss")


@LOSSES.register("sigmoid")
def sigmoid_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """DPO (Rafailov et al., 2023): -log sigmoid(beta * h)."""
    return -F.logsigmoid(beta * h)


@LOSSES.register("ipo")
def ipo_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """IPO (Azar et al., 2023): (h - 1/(2 beta))^2, which caps how far a pair is pushed."""
    return (h - 1 / (2 * beta)) ** 2


@LOSSES.register("cdpo")
def conservative_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """Conservative DPO (Mitchell, 2023): label smoothing, each label wrong with prob eps."""
    return -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)


@LOSSES.register("rdpo")
def robust_loss(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    """Robust DPO (Chowdhury et al., 2024): unbiased under flip rate eps < 1/2."""
    return ((1 - eps) * -F.logsigmoid(beta * h) - eps * -F.logsigmoid(-beta * h)) / (1 - 2 * eps)
