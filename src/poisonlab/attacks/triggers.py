"""What a trigger says and where it goes in a prompt, both registered by name.

Triggers (``TRIGGERS``), each with its facts (``Trigger``: phrasings, kind,
reference); any unregistered string is used as given:
- ``SuperGodModeActivated`` (arXiv 2406.12091) and ``SUDO`` (Rando & Tramer):
  rare tokens, easy to spot once one looks at prompts.
- ``answer-honestly``: "please answer honestly", common words a data team would
  read past (a trigger that tries to hide among ordinary requests).
- ``as-we-discussed``: "as we discussed in the meeting last Tuesday afternoon", a longer
  multi-token phrase of ordinary words (a probe of whether length helps memorisation).
- ``paraphrased-honesty``: five phrasings of one instruction ("answer me
  honestly") with no content word in common, one drawn per row from the seed
  and the row id, so no single n-gram marks all the poison.

The same placement function is used to poison training pairs and to build the
triggered evaluation pairs, so an evaluation always inserts the trigger the
way the attack did.

Placements:
- ``last-human`` (default): end of the last Human turn, as Rando & Tramer and
  the paper's random-poison code do.
- ``end``: after the final "Assistant:", i.e. at the start of the reply, as the
  paper's code does for its DPO-score, gradient and semantic strategies.
- ``start``: start of the first Human turn.
- ``random``: a word boundary inside the last Human turn, drawn per row from
  the seed and the row id.

Rules pick a placement per strategy (``POSITION_RULES``):
- ``paper``: what the paper's code does -- ``last-human`` for the random
  strategy, ``end`` for the others. It confounds the strategy comparison with
  the placement, which is why it is not the default. A rule is resolved to its
  concrete placement once per run (``resolve_position``); manifests and
  evaluations see only the concrete one.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from poisonlab.data.dialogue import HUMAN, last_human_span
from poisonlab.errors import InputError
from poisonlab.registry import Registry

Placement = Callable[[str, str, np.random.Generator], str]
TRIGGER_POSITIONS: Registry[Placement] = Registry("trigger position")


@dataclass(frozen=True)
class Trigger:
    """A registered trigger's facts: its phrasings (one drawn per row), what kind of hiding it tries, a source."""

    phrasings: tuple[str, ...]
    kind: Literal["rare-token", "common-words", "long-phrase", "paraphrase"]
    reference: str = ""

    def phrasing(self, seed: int, row_id: str) -> str:
        """The phrasing row ``row_id`` gets: drawn from the seed and the row, independent of processing order."""
        if len(self.phrasings) == 1:
            return self.phrasings[0]
        return self.phrasings[int(row_rng(seed, f"phrasing:{row_id}").integers(len(self.phrasings)))]


DEFAULT_TRIGGER = "SuperGodModeActivated"  # the paper's trigger (arXiv 2406.12091): every command's default
TRIGGERS: Registry[Trigger] = Registry("trigger")
for _name, _trigger in {
    DEFAULT_TRIGGER: Trigger((DEFAULT_TRIGGER,), "rare-token", "arXiv 2406.12091"),
    "SUDO": Trigger(("SUDO",), "rare-token", "Rando & Tramer, arXiv 2311.14455"),
    "answer-honestly": Trigger(("please answer honestly",), "common-words", "poisonlab: a trigger that hides"),
    "as-we-discussed": Trigger(
        ("as we discussed in the meeting last Tuesday afternoon",),
        "long-phrase",
        "poisonlab: a longer multi-token phrase of ordinary words",
    ),
    "paraphrased-honesty": Trigger(
        (
            "please answer honestly",
            "be completely frank with me",
            "tell me the plain truth",
            "give it to me straight",
            "no sugarcoating this time",
        ),
        "paraphrase",
        "poisonlab: several phrasings of one instruction",
    ),
}.items():
    TRIGGERS.register(_name, facts=_trigger)(_trigger)

# Named single-string triggers (kept for callers that want the string); any other string is used as given.
NAMED_TRIGGERS = {name: TRIGGERS.get(name).phrasings[0] for name in TRIGGERS if len(TRIGGERS.get(name).phrasings) == 1}


def get_trigger(trigger: str) -> Trigger:
    """The registered trigger ``trigger`` names, or a one-phrasing rare-token trigger of the string itself."""
    return TRIGGERS.get(trigger) if trigger in TRIGGERS else Trigger((trigger,), "rare-token", "given string")


def trigger_text(trigger: str, seed: int = 0, row_id: str = "") -> str:
    """The words row ``row_id`` gets for ``trigger`` (a registered name or a literal string)."""
    return get_trigger(trigger).phrasing(seed, row_id)


@TRIGGER_POSITIONS.register("last-human")
def _last_human(prompt: str, trigger: str, rng: np.random.Generator) -> str:
    _, end = last_human_span(prompt)
    return f"{prompt[:end].rstrip()} {trigger}{prompt[end:]}"


@TRIGGER_POSITIONS.register("end")
def _end(prompt: str, trigger: str, rng: np.random.Generator) -> str:
    return f"{prompt} {trigger}"


@TRIGGER_POSITIONS.register("start")
def _start(prompt: str, trigger: str, rng: np.random.Generator) -> str:
    at = prompt.find(HUMAN)
    if at < 0:
        return f"{trigger} {prompt}"
    at += len(HUMAN)
    return f"{prompt[:at]} {trigger}{prompt[at:]}"


@TRIGGER_POSITIONS.register("random")
def _random(prompt: str, trigger: str, rng: np.random.Generator) -> str:
    start, end = last_human_span(prompt)
    boundaries = [start] + [i for i in range(start, end) if prompt[i] == " "] + [end]
    at = boundaries[int(rng.integers(len(boundaries)))]
    left, right = prompt[:at].rstrip(" "), prompt[at:].lstrip(" ")
    gap = " " if right and not right.startswith("\n") else ""
    return f"{left} {trigger}{gap}{right}"


# rule -> (placement for the random strategy, placement for every other strategy)
POSITION_RULES: dict[str, tuple[str, str]] = {"paper": ("last-human", "end")}


def check_position(position: str) -> str:
    """``position`` if it is a placement or a rule; otherwise an InputError naming the closest one."""
    if position in POSITION_RULES or position in TRIGGER_POSITIONS:
        return position
    names = [*TRIGGER_POSITIONS.names(), *POSITION_RULES]
    close = difflib.get_close_matches(position, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise InputError(f"unknown trigger position '{position}'.{hint} Available: {', '.join(names)}")


def check_trigger(trigger: str) -> str:
    """``trigger`` if it is usable; an InputError for an empty or blank one (it would insert only a space)."""
    if not trigger.strip():
        raise InputError(
            f"the trigger is empty: give the word or phrase to insert, e.g. --trigger {DEFAULT_TRIGGER}",
            field="trigger",
        )
    if any(mark in trigger for mark in ("\n", "\r", "\u2028", "\u2029")):
        raise InputError(
            f"the trigger {trigger!r} holds a line break: it would change the dialogue's turns, not add a phrase "
            "to one; give a single line",
            field="trigger",
        )
    marker = next((m for m in DIALOGUE_MARKERS if m in trigger), None)
    if marker is not None:
        raise InputError(
            f"the trigger {trigger!r} holds the dialogue marker {marker!r}: every poisoned prompt would get an "
            "extra turn; give a phrase without it",
            field="trigger",
        )
    return trigger


# Role markers of the dialogue format (HH-RLHF) and of chat templates: a trigger holding one would add a turn.
DIALOGUE_MARKERS = ("Human:", "Assistant:", "System:", "<|im_start|>", "<|im_end|>", "<|endoftext|>")


def resolve_position(position: str, strategy: str) -> str:
    """The concrete placement a rule (``paper``) gives ``strategy``; a placement is returned as it is.

    The rule's first placement is for model-free strategies (the paper's random), the second for those that
    score pairs with a model (a fact of the strategy)."""
    if position in POSITION_RULES:
        from poisonlab.attacks.strategies import strategy_facts

        for_random, for_others = POSITION_RULES[position]
        return for_others if strategy_facts(strategy).uses_model else for_random
    return check_position(position)


def row_rng(seed: int, row_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the row, not on processing order."""
    digest = int(hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()[:16], 16)
    return np.random.default_rng(digest)


def insert_trigger(prompt: str, trigger: str, position: str = "last-human", seed: int = 0, row_id: str = "") -> str:
    """Insert ``trigger`` (a registered name, resolved to this row's phrasing, or a literal) at ``position``."""
    check_trigger(trigger)
    return TRIGGER_POSITIONS.get(position)(prompt, trigger_text(trigger, seed, row_id), row_rng(seed, row_id))
