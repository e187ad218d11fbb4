"""The probe config: trigger patterns crossed with the number of poisoned rows, per training stage.

arXiv 2502.14182 (Sec. 5) uses triggers as probes of memorisation: how few poisoned rows does a model
need before a trigger of a given shape (a rare token, common words, a long phrase, paraphrases of one
instruction) moves it? A probe study answers with one grid: every (stage, trigger, position, rows,
seed) cell is one poisoned model, judged against the clean model of the same stage and seed.

Only the fields that change what a cell contains (model, data, split, training) decide whether a
results folder holds "the same study"; the grid's lists (seeds, stages, triggers, positions,
n_poisoned) may grow between runs and the cells already done are read back.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from poisonlab.attacks.triggers import DEFAULT_TRIGGER
from poisonlab.bounded import SEED_MAX
from poisonlab.experiments.core.fields import ModelName
from poisonlab.training.config import Preset

PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# Fields whose lists only add or remove cells; every other field changes what a cell holds.
GRID_FIELDS = frozenset({"name", "out", "seeds", "stages", "triggers", "positions", "n_poisoned"})


def _distinct(values: list[Any], what: str) -> list[Any]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} repeat: {', '.join(repeated)}")
    return values


class ProbeConfig(BaseModel):
    """Fields of a probe study (``poisonlab probe CONFIG``); every one can be set with ``--set field=value``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("probes", pattern=PLAIN_NAME, description="Names the results folder (runs/<name>).")
    out: str | None = Field(None, description="Results folder; default runs/<name>.")
    model: ModelName = Field(
        "tiny", description="Base model: built-in name (tiny, smollm2-135m), local folder or Hub id."
    )
    data: str = Field(
        "synthetic", description="Preference data: a file, a datasets folder, hub:NAME, or synthetic (built in)."
    )
    skip_bad_rows: bool = Field(False, description="Leave out (and count) malformed rows instead of stopping.")
    heldout: float = Field(
        64, gt=0, description="Held-out share (<1) or count (>=1) of the data; every model is judged on these pairs."
    )
    max_train_pairs: int | None = Field(
        None, ge=1, description="Train on the first N training pairs (after the seed's split); default all."
    )
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        [0, 1, 2],
        min_length=1,
        description="One seed per repetition: it draws the split, the poisoned rows, the trigger placement and "
        "training. The curves' intervals are t-intervals over these seeds (none with one seed).",
    )
    stages: list[str] = Field(
        ["sft", "dpo"], min_length=1, description="Training stages to probe (poisonlab ls: sft, dpo), each alone."
    )
    triggers: list[str] = Field(
        [DEFAULT_TRIGGER, "answer-honestly", "as-we-discussed", "paraphrased-honesty"],
        min_length=1,
        description="Registered triggers (poisonlab ls: a rare token, common words, a long phrase, paraphrases) "
        "or literal strings.",
    )
    positions: list[str] = Field(
        ["last-human"], min_length=1, description="Where the trigger goes: last-human, end, start or random."
    )
    n_poisoned: list[int] = Field(
        [1, 2, 4, 8, 16],
        min_length=1,
        description="Poisoned training rows per cell (exact counts, not shares): the curves' x-axis.",
    )
    attack: str = Field(
        "backdoor", description="An attack that plants the trigger (backdoor: trigger in the prompt, replies swapped)."
    )
    preset: Preset = Field("cpu", description="Training preset of DPO stages: cpu or paper.")
    training: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Training overrides per stage kind, e.g. {sft: {learning_rate: 0.01}, dpo: {epochs: 2}} "
        "(fields of poisonlab train sft/dpo).",
    )

    @field_validator("heldout")
    @classmethod
    def _whole_count(cls, heldout: float) -> float:
        if heldout >= 1 and not float(heldout).is_integer():
            raise ValueError(f"a held-out count must be a whole number of pairs, got {heldout:g}")
        return heldout

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return _distinct(seeds, "seeds")

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        from poisonlab.training.stages import STAGES

        for kind in stages:
            STAGES.get(kind)
        return _distinct(stages, "stages")

    @field_validator("triggers")
    @classmethod
    def _usable_triggers(cls, triggers: list[str]) -> list[str]:
        from poisonlab.attacks.triggers import check_trigger
        from poisonlab.errors import InputError

        for trigger in triggers:
            try:
                check_trigger(trigger)
            except InputError as exc:
                raise ValueError(exc.message.replace("--trigger", "triggers:")) from None
        return _distinct(triggers, "triggers")

    @field_validator("positions")
    @classmethod
    def _fixed_positions(cls, positions: list[str]) -> list[str]:
        from poisonlab.attacks.triggers import TRIGGER_POSITIONS

        for name in positions:  # a rule (paper) depends on the strategy; a probe needs one concrete placement
            TRIGGER_POSITIONS.get(name)
        return _distinct(positions, "positions")

    @field_validator("n_poisoned")
    @classmethod
    def _counts(cls, counts: list[int], info: ValidationInfo) -> list[int]:
        if any(n < 1 for n in counts):
            raise ValueError(f"poisoned row counts must be 1 or more (the clean twin always runs), got {counts}")
        cap = info.data.get("max_train_pairs")
        if cap is not None and max(counts) > cap:
            raise ValueError(f"{max(counts)} poisoned rows do not fit in max_train_pairs {cap}")
        return sorted(_distinct(counts, "poisoned row counts"))

    @field_validator("attack")
    @classmethod
    def _plants_a_trigger(cls, name: str) -> str:
        from poisonlab.attacks.inject import ATTACKS, attack_facts

        ATTACKS.get(name)
        if not attack_facts(name).inserts_trigger:
            raise ValueError(f"{name} plants no trigger, so there is nothing to probe; use backdoor")
        return name

    @field_validator("training")
    @classmethod
    def _training_is_valid(cls, values: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        from poisonlab.config_files import error_message
        from poisonlab.training.stages import STAGES, stage_config

        for kind, overrides in values.items():
            if kind not in STAGES:
                STAGES.get(kind)  # the registry's message: unknown stage, the closest name, the list
            try:
                stage_config(kind, info.data.get("preset", "cpu"), 0, overrides)
            except ValidationError as exc:
                error = exc.errors()[0]
                message = error_message(STAGES.facts(kind).config, error)
                sub_loc = ".".join(map(str, (kind, *error["loc"])))
                context = {"message": message, "sub_loc": sub_loc}
                raise PydanticCustomError("training_field", "{message}", context) from None
        return values

    def cell_settings(self) -> dict[str, Any]:
        """The fields that decide what a cell holds: a results folder is resumed only when these agree."""
        return self.model_dump(exclude=set(GRID_FIELDS))
