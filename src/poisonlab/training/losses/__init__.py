"""DPO losses, registered by name. ``base.py`` holds the registry and the facts; importing this package registers
every loss module beside it, so a new loss is one new file.
"""

import importlib
import pkgutil

from poisonlab.training.losses.base import LOSSES, LossFacts, LossFn, loss_facts

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

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
