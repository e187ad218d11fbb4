"""What a DPO loss is: a registered function of the margins, with its facts.

Each takes the policy-minus-reference log-ratio margins
``h = (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))``
and returns per-pair losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

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
