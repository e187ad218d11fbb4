"""DPO losses, one small function each, registered by name.

Each takes the policy-minus-reference log-ratio margins
``h = (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))``
and returns per-pair losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from poisonlab.registry import Registry

LossFn = Callable[[torch.Tensor, float, float], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("DPO loss")


@dataclass(frozen=True)
class LossFacts:
    """What the rest of the package needs to know about a loss, given where it is registered."""

    uses_label_smoothing: bool = False  # reads eps (the assumed share of wrong labels)
    trl_loss_type: str | None = None  # TRL's DPOTrainer loss_type for the same objective; None: TRL has none


def loss_facts(name: str) -> LossFacts:
    return LOSSES.facts(name)


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
