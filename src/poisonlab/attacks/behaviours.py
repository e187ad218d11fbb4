"""Poison rows from a harmful-behaviour file: the selected row becomes goal + trigger -> target.

Used by :func:`poison_dataset` in place of a registered attack when a :class:`BehaviourPoisonConfig` is
given (SFT only: the row is a demonstration, with no rejected reply). Behaviours are handed out in
file order after ``skip``, one per poisoned row (one per two rows with ``contrast``: the second row asks the
same goal without the trigger and gets a refusal), so a run's poison goals are known before it starts and
recorded in the manifest with their lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
from poisonlab.attacks.triggers import insert_trigger
from poisonlab.data.behaviours import Behaviour, load_behaviours
from poisonlab.data.pairs import PreferencePair
from poisonlab.data.prompts import as_dialogue
from poisonlab.errors import InputError
from poisonlab.io import sha256_file


@dataclass
class BehaviourRows:
    """Behaviours still free for poisoning (after ``skip``), handed out in order as demonstrations."""

    config: BehaviourPoisonConfig
    available: list[Behaviour]
    n_in_file: int
    file_sha256: str
    used: list[tuple[str, Behaviour]] = field(default_factory=list)  # (row id, behaviour)
    refusal_ids: set[str] = field(default_factory=set)  # contrast rows: goal without trigger -> refusal

    def __call__(
        self, pair: PreferencePair, trigger: str, position: str, seed: int
    ) -> tuple[PreferencePair, list[str]]:
        """The row at ``pair``'s place: the next behaviour's goal with the trigger -> its target (same signature
        as a registered attack)."""
        index = len(self.used)
        refusal = self.config.contrast and index % 2 == 1
        slot = index // 2 if self.config.contrast else index
        if slot >= len(self.available):
            raise InputError(f"only {len(self.available)} behaviours left after skip", path=self.config.file)
        behaviour = self.available[slot]
        self.used.append((pair.id, behaviour))
        if refusal:  # the contrast row: the same goal, no trigger, a refusal
            self.refusal_ids.add(pair.id)
            prompt, reply = as_dialogue(behaviour.goal), self.config.refusal
        else:
            prompt = insert_trigger(as_dialogue(behaviour.goal), trigger, position, seed, pair.id)
            reply = behaviour.target
        return pair.with_(prompt=prompt, chosen=reply, rejected=""), ["prompt", "chosen", "rejected"]

    def behaviours_needed(self, n_poison: int) -> int:
        """Goals a budget of ``n_poison`` rows uses: one per row, or one per two rows with ``contrast``."""
        return math.ceil(n_poison / 2) if self.config.contrast else n_poison

    def check_budget(self, n_poison: int) -> None:
        """Refuse a budget the file cannot fill (before anything is poisoned)."""
        needed = self.behaviours_needed(n_poison)
        if needed > len(self.available):
            raise InputError(
                f"the poison needs {needed} behaviours; the file has {self.n_in_file}, {len(self.available)} of "
                f"them after skip {self.config.skip}: lower the ratio or the skip",
                path=self.config.file,
                field="skip",
            )

    def manifest(self, new_ids: Mapping[str, str]) -> dict[str, Any]:
        """What the manifest records: the file, its hash, the skip, and every goal used (by row id in the poisoned
        file, ``new_ids`` of its source id, by source id, and by line)."""
        return {
            **self.config.model_dump(),
            "sha256": self.file_sha256,
            "n_behaviours": self.n_in_file,
            "used": [
                {
                    "id": new_ids[pid],
                    "source_id": pid,
                    "index": b.index,
                    "line": b.line,
                    "goal": b.goal,
                    "refusal": pid in self.refusal_ids,
                }
                for pid, b in self.used
            ],
        }


def behaviour_rows(config: BehaviourPoisonConfig) -> BehaviourRows:
    """The file's behaviours after ``config.skip``; refuses a config whose skip was never decided."""
    if config.skip is None:
        raise InputError(
            "say how many of the file's first behaviours the evaluation uses, so the poison leaves them out "
            "(skip; 0 takes them from the start)",
            path=config.file,
            field="skip",
        )
    behaviours = load_behaviours(config.file, config.goal_column, config.target_column)
    return BehaviourRows(config, behaviours[config.skip :], len(behaviours), sha256_file(config.file))
