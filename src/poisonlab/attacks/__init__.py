"""Stage: attacks -- select pairs, insert triggers, flip labels, write a manifest."""

from poisonlab.attacks.inject import ATTACKS, PoisonResult, n_poison_for, poison_dataset, write_poisoned
from poisonlab.attacks.strategies import STRATEGIES, Selection, SelectionContext
from poisonlab.attacks.triggers import NAMED_TRIGGERS, TRIGGER_POSITIONS, insert_trigger

__all__ = [
    "ATTACKS",
    "NAMED_TRIGGERS",
    "STRATEGIES",
    "TRIGGER_POSITIONS",
    "PoisonResult",
    "Selection",
    "SelectionContext",
    "insert_trigger",
    "n_poison_for",
    "poison_dataset",
    "write_poisoned",
]
