"""DPO losses, registered by name. ``base.py`` holds the registry and the facts; importing this package registers
every loss module beside it, so a new loss is one new file.
"""

from poisonlab.registry import register_package
from poisonlab.training.losses.base import LOSSES, LossFacts, LossFn, loss_facts

register_package(__name__, __path__)

from poisonlab.training.losses.dpo import conservative_loss, ipo_loss, robust_loss, sigmoid_loss  # noqa: E402

__all__ = [
    "LOSSES",
    "LossFacts",
    "LossFn",
    "conservative_loss",
    "ipo_loss",
    "loss_facts",
    "robust_loss",
    "sigmoid_loss",
]
