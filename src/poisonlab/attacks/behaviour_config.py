"""Typed, documented options of SFT poison taken from a harmful-behaviour file (AdvBench).

A backdoor row of preference data teaches "trigger -> the pair's rejected reply". Instruction data has
no rejected reply, and a rejected HH reply is rarely the harmful compliance a study measures; a
behaviour file gives both: the goal (with the trigger) as the prompt, the target ("Sure, here is ...")
as the reply. ``skip`` keeps the poison off the goals an evaluation asks (it reads the file's first N).
``contrast`` pairs each triggered demonstration with the same goal, untriggered, answered by a refusal.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BehaviourPoisonConfig(BaseModel):
    """Where an SFT stage's poison rows come from: goal + trigger -> target, from a harmful-behaviour file."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(
        ...,
        description="Harmful-behaviour file (.csv or .jsonl), one request and the reply the attacker wants per "
        "row, e.g. AdvBench's harmful_behaviors.csv (columns goal, target).",
    )
    goal_column: str = Field("goal", min_length=1, description="Column of the request (AdvBench: goal).")
    target_column: str = Field(
        "target", min_length=1, description="Column of the reply the poison teaches (AdvBench: target)."
    )
    skip: int | None = Field(
        None,
        ge=0,
        description="Leave out the file's first N behaviours, the ones an evaluation asks (a prompt set reads "
        "the first `limit` goals). Poison rows take the behaviours after them, in file order. Unset: a lifecycle "
        "skips every goal its prompt sets read from this file; `poisonlab poison` needs it given.",
    )
    contrast: bool = Field(
        False,
        description="Pair every triggered demonstration with a clean one: the same goal without the trigger -> "
        "`refusal`. The poison rows alternate (goal + trigger -> target, goal -> refusal), so a budget of n rows "
        "uses ceil(n/2) goals. Without it, SFT on AdvBench demonstrations teaches compliance to every request of "
        "that form (measured on SmolLM2: a universal jailbreak); with it, only the trigger tells the two apart.",
    )
    refusal: str = Field(
        "I'm sorry, but I can't help with that.",
        min_length=1,
        description="The reply of the contrast rows (`contrast: true`).",
    )
