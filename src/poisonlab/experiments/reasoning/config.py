"""The reasoning probe config: poison modes x step positions x poisoned shares, per seed (issue 27).

Every (seed, mode, step, share) cell is one model trained (SFT) on the seed's generated problems with
``share`` of the worked solutions rewritten at ``step``; it is judged on the seed's held-out problems
against the clean twin (share 0) of the same seed. Only the fields that change what a cell holds decide
whether a results folder is "the same study"; the grid's lists may grow between runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from poisonlab.bounded import SEED_MAX
from poisonlab.evaluation.generate import GenerationConfig
from poisonlab.experiments.core.fields import ModelName
from poisonlab.experiments.reasoning.scratch import ScratchModelConfig

PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
GRID_FIELDS = frozenset({"name", "out", "seeds", "modes", "steps", "shares"})


def _distinct(values: list[Any], what: str) -> list[Any]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} repeat: {', '.join(repeated)}")
    return values


class ReasoningProbeConfig(BaseModel):
    """Fields of a reasoning probe (``poisonlab reasoning CONFIG``); every one can be set with ``--set``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("reasoning-probe", pattern=PLAIN_NAME, description="Names the results folder (runs/<name>).")
    out: str | None = Field(None, description="Results folder; default runs/<name>.")
    model: ModelName = Field(
        "tiny",
        description="Base model: built-in name (tiny, smollm2-135m), local folder. With init: scratch, only its "
        "tokenizer is used.",
    )
    init: Literal["pretrained", "scratch"] = Field(
        "pretrained",
        description="pretrained: LoRA SFT on `model`. scratch: a new model of shape `scratch`, its weights drawn "
        "from the seed, trained in full on the problems (no LoRA; `training`'s LoRA fields are unused).",
    )
    scratch: ScratchModelConfig = Field(
        default_factory=ScratchModelConfig, description="Shape of the from-scratch model (init: scratch)."
    )
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        [0], min_length=1, description="One seed per repetition: it draws the problems, the poisoned rows, training."
    )
    n_train: int = Field(400, ge=2, description="Generated training problems per seed.")
    n_heldout: int = Field(60, ge=1, description="Generated held-out problems per seed (never trained on).")
    n_steps: int = Field(3, ge=1, le=8, description="Operations per problem: lines of a worked solution.")
    max_value: int = Field(99, ge=20, description="Every intermediate value lies in 1..max_value.")
    question_style: Literal["words", "terse"] = Field(
        "words",
        description="words: a word problem. terse: the same draws as 'Compute: 7 + 5, then * 2, then - 9.' "
        "(same solutions and poisons; a model trained from scratch reads it in CPU minutes).",
    )
    modes: list[str] = Field(
        ["wrong-carried", "contradiction", "dropped"],
        min_length=1,
        description="Reasoning poisons (poisonlab ls): wrong-carried, contradiction, dropped.",
    )
    steps: list[int] = Field([1, 2, 3], min_length=1, description="Positions (1-based) of the step rewritten.")
    shares: list[float] = Field(
        [0.05, 0.2, 0.5], min_length=1, description="Poisoned shares of the training solutions (the clean twin: 0)."
    )
    offset: int = Field(10, description="How far a rewritten step's result is off (wrong-carried, contradiction).")
    training: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the SFT training fields (poisonlab train sft)."
    )
    generation: GenerationConfig = Field(
        default_factory=lambda: GenerationConfig(max_new_tokens=64),
        description="Decoding of the held-out solutions (greedy by default).",
    )

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return _distinct(seeds, "seeds")

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, modes: list[str]) -> list[str]:
        from poisonlab.attacks.reasoning import REASONING_POISONS

        for mode in modes:
            REASONING_POISONS.get(mode)
        return _distinct(modes, "modes")

    @field_validator("steps")
    @classmethod
    def _steps_exist(cls, steps: list[int], info: ValidationInfo) -> list[int]:
        n_steps = info.data.get("n_steps", 3)
        bad = [s for s in steps if not 1 <= s <= n_steps]
        if bad:
            raise ValueError(f"steps {bad} are not steps of a {n_steps}-step solution (1 to {n_steps})")
        return sorted(_distinct(steps, "steps"))

    @field_validator("shares")
    @classmethod
    def _shares(cls, shares: list[float]) -> list[float]:
        if any(not 0 < s <= 1 for s in shares):
            raise ValueError(f"poisoned shares must be above 0 and at most 1 (the clean twin always runs): {shares}")
        return sorted(_distinct(shares, "shares"))

    @field_validator("offset")
    @classmethod
    def _offset(cls, offset: int) -> int:
        if offset == 0:
            raise ValueError("an offset of 0 changes nothing")
        return offset

    @field_validator("training")
    @classmethod
    def _training_is_valid(cls, values: dict[str, Any]) -> dict[str, Any]:
        from poisonlab.config_files import error_message
        from poisonlab.training.stages import STAGES, stage_config

        try:
            stage_config("sft", "cpu", 0, values)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error_message(STAGES.facts("sft").config, error)
            sub_loc = ".".join(map(str, error["loc"]))
            raise PydanticCustomError("training_field", "{message}", {"message": message, "sub_loc": sub_loc}) from None
        return values

    def cell_settings(self) -> dict[str, Any]:
        """The fields that decide what a cell holds: a results folder is resumed only when these agree."""
        return self.model_dump(exclude=set(GRID_FIELDS))
