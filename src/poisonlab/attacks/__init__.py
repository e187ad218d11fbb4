"""Stage: attacks -- select pairs, insert triggers, flip labels, write a manifest."""

from poisonlab.attacks.inject import ATTACKS, PoisonResult, n_poison_for, poison_dataset, write_poisoned
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.attacks.strategies import STRATEGIES, Selection, SelectionContext
from poisonlab.attacks.triggers import (
    NAMED_TRIGGERS,
    POSITION_RULES,
    TRIGGER_POSITIONS,
    check_position,
    insert_trigger,
    resolve_position,
)
from poisonlab.scoring.encoders import ENCODERS

__all__ = [
    "ATTACKS",
    "ENCODERS",
    "NAMED_TRIGGERS",
    "POSITION_RULES",
    "STRATEGIES",
    "TRIGGER_POSITIONS",
    "PoisonResult",
    "Selection",
    "SelectionConfig",
    "SelectionContext",
    "check_position",
    "insert_trigger",
    "n_poison_for",
    "poison_dataset",
    "resolve_position",
    "write_poisoned",
]
