"""What a lifecycle stage's poison needs before anything trains: its rows, its goals, its scoring model.

Checked up front (:func:`check_stage_poison`, from ``stage_data``) so a bad combination stops the
study before the first stage trains: instruction rows cannot be poisoned by swapping replies, and poison
goals from a behaviour file must not be goals the evaluation asks -- a prompt set reads the file's
first ``limit`` rows, so the poison takes rows after them, and any overlap is refused by text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
from poisonlab.attacks.inject import n_poison_for
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.evaluation.config import EvaluationConfig

if TYPE_CHECKING:
    from poisonlab.experiments.lifecycle.config import LifecycleConfig


def _same_file(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def evaluated_goals(file: str, evaluation: EvaluationConfig) -> int | None:
    """How many of ``file``'s first rows the prompt sets ask (their largest limit); 0 if none reads it, None if
    one reads all of it (no skip leaves room for poison then)."""
    limits = [s.limit for s in evaluation.prompt_sets if s.source != "heldout" and _same_file(s.source, file)]
    if None in limits:
        return None
    return max(limits, default=0)


def check_stage_poison(config: LifecycleConfig, index: int, train: PreferenceDataset) -> None:
    """Refuse, before anything is written, poison that stage ``index`` (1-based) of ``config`` cannot build."""
    stage = config.stages[index - 1]
    shares = [shares[index - 1] for shares in config.shares()]
    n_needed = max(n_poison_for(share, len(train)) for share in shares)
    if not n_needed:
        return
    field = f"stages.{index - 1}.behaviours"
    if stage.behaviours is None:
        demonstrations = sum(p.is_demonstration for p in train)
        if demonstrations:
            raise InputError(
                f"{demonstrations} of the stage's {len(train)} training rows are instruction rows, with no rejected "
                "reply for a backdoor to teach: take the poison from a behaviour file (behaviours: {file: ...})",
                path=stage.data,
                field=field,
            )
        return
    check_goals_unevaluated(stage.behaviours, n_needed, config.evaluation, field)


def check_goals_unevaluated(
    behaviours: BehaviourPoisonConfig, n_needed: int, evaluation: EvaluationConfig, field: str
) -> None:
    """The first ``n_needed`` behaviours after the skip exist and are none of the prompts the evaluation asks."""
    from poisonlab.attacks.behaviours import behaviour_rows
    from poisonlab.data.prompts import as_dialogue, load_prompts

    if behaviours.skip is None:
        every = next(s.name for s in evaluation.prompt_sets if s.source != "heldout" and s.limit is None)
        raise InputError(
            f"prompt set {every!r} asks every goal of {behaviours.file}, so no goal is left for the poison: give "
            "the prompt set a limit (the poison then starts after it)",
            field=f"{field}.skip",
        )
    try:
        rows = behaviour_rows(behaviours)
        rows.check_budget(n_needed)
    except InputError as exc:
        raise InputError(exc.message, path=exc.path, line=exc.line, field=f"{field}.{exc.field or 'file'}") from None
    goals = {as_dialogue(b.goal): b for b in rows.available[: rows.behaviours_needed(n_needed)]}
    for prompt_set in evaluation.prompt_sets:
        if prompt_set.source == "heldout":
            continue
        asked = {p.text for p in load_prompts(prompt_set.source, prompt_set.column, prompt_set.limit)}
        shared = [goals[text] for text in goals if text in asked]
        if shared:
            raise InputError(
                f"{len(shared)} of the poison's {len(goals)} goals are prompts the evaluation asks (prompt set "
                f"{prompt_set.name!r}; first: line {shared[0].line}, {shared[0].goal!r}): raise skip past them",
                path=behaviours.file,
                field=f"{field}.skip",
            )
