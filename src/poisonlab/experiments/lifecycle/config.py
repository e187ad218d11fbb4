"""The lifecycle config: a model trained through several stages, with poison in some of them.

arXiv 2502.14182 asks whether a poison planted in one stage (SFT) survives the next (clean DPO), and
whether an attacker with a fixed budget does better splitting it across stages. A lifecycle study
answers with one config: ``stages`` (trained in order, each from the adapters of the stages before
it) and ``pipelines`` (how much of each stage's data is poisoned). The all-clean pipeline, every
poisoned pipeline's twin, always runs; pipelines that agree on their first k stages share those
stages' adapters, so a sweep trains each distinct prefix once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from poisonlab.attacks.access import AccessConfig
from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.attacks.triggers import DEFAULT_TRIGGER
from poisonlab.bounded import SEED_MAX
from poisonlab.evaluation.config import EvaluationConfig
from poisonlab.experiments.core.fields import ModelName, TriggerText
from poisonlab.training.config import Preset

PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


class StageConfig(BaseModel):
    """One training stage: what it trains on, how, and how its poison is chosen."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=PLAIN_NAME, description="Names the stage in pipelines, folders and figures.")
    kind: str = Field(
        "sft",
        description="Training stage (poisonlab ls): sft (prompt -> chosen), dpo, or rl (a reward model trained on "
        "the stage's pairs, then RLOO against it on their prompts).",
    )
    data: str = Field(
        "synthetic",
        description="Data of this stage: preference pairs (a file, a datasets folder, hub:NAME, or synthetic); an "
        "SFT stage also takes instruction files (prompt+response, Alpaca, chat messages; .jsonl/.json/.csv/.parquet).",
    )
    train_offset: int = Field(
        0, ge=0, description="Skip the first N training pairs: stages reading one file train on disjoint slices."
    )
    max_train_pairs: int | None = Field(None, ge=1, description="Train on N training pairs (after the offset).")
    strategy: str = Field(
        "random",
        description="Selection strategy for this stage's poison (poisonlab ls). A model-based one (dpo-score, "
        "gradient-projection, semantic-diversity) scores the stage's pairs with the clean pipeline's model after "
        "this stage (its adapter chain), against the clean model at the stage's start as the reference.",
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig,
        description="Options of gradient-projection and semantic-diversity (candidate share, projection, clusters).",
    )
    attack: str = Field(
        "backdoor",
        description="backdoor (trigger in the prompt, replies swapped: for SFT a trigger -> harmful-reply "
        "demonstration) or label-flip.",
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig,
        description="What the attacker of this stage can touch: a share of its annotators, a collection window, "
        "labels only (attacks.access; default: every row).",
    )
    behaviours: BehaviourPoisonConfig | None = Field(
        None,
        description="SFT stages: take each poison row from a harmful-behaviour file (AdvBench: goal + trigger -> "
        "target 'Sure, here is ...') instead of the pair's rejected reply; needed when the data are instruction "
        "rows. Its skip defaults to the goals the study's prompt sets read from the same file.",
    )
    start: Literal["previous", "base"] = Field(
        "previous",
        description="previous: train from the adapters of the stages before it (a pipeline); base: from the base "
        "model, beside the earlier stages (to compare training methods, e.g. DPO and RLHF, on the same poison).",
    )
    poison_as: str | None = Field(
        None,
        description="Name of an earlier stage on the same pairs (same data, train_offset, max_train_pairs) whose "
        "poisoned data this stage trains on, byte for byte; every pipeline must give both the same share. DPO "
        "against RLHF on identical poison: the rl stage's reward model learns from the file the dpo stage used.",
    )
    preset: Preset = Field("cpu", description="Training preset (DPO stages): cpu or paper.")
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the stage's training fields (poisonlab train sft/dpo/rl; an rl stage's "
        "reward_model: {...} takes poisonlab train reward's).",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from poisonlab.training.stages import STAGES

        STAGES.get(kind)
        return kind

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from poisonlab.attacks import STRATEGIES  # the package registers every strategy

        STRATEGIES.get(name)
        return name

    @field_validator("attack")
    @classmethod
    def _known_attack(cls, name: str) -> str:
        from poisonlab.attacks.inject import ATTACKS

        ATTACKS.get(name)
        return name

    @field_validator("access")
    @classmethod
    def _access_allows_the_attack(cls, access: AccessConfig, info: ValidationInfo) -> AccessConfig:
        from poisonlab.attacks.access import check_labels_only
        from poisonlab.attacks.inject import attack_facts
        from poisonlab.errors import InputError

        attack = info.data.get("attack")
        try:
            if attack is not None:
                check_labels_only(access, attack, attack_facts(attack).inserts_trigger)
        except InputError as exc:
            raise ValueError(exc.message) from None
        return access

    @field_validator("behaviours")
    @classmethod
    def _behaviours_make_an_sft_backdoor(
        cls, behaviours: BehaviourPoisonConfig | None, info: ValidationInfo
    ) -> BehaviourPoisonConfig | None:
        from poisonlab.attacks.inject import check_behaviour_poison
        from poisonlab.errors import InputError

        if behaviours is None or any(key not in info.data for key in ("kind", "strategy", "attack")):
            return behaviours  # an earlier field failed; that error is reported
        if info.data["kind"] != "sft":
            raise ValueError("a behaviour row is a demonstration (goal -> target, no rejected reply): SFT stages only")
        try:
            check_behaviour_poison(info.data["strategy"], info.data["attack"])
        except InputError as exc:
            raise ValueError(exc.message) from None
        return behaviours

    @field_validator("training")
    @classmethod
    def _training_is_valid(cls, values: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from poisonlab.config_files import error_message
        from poisonlab.training.stages import STAGES, stage_config

        kind = info.data.get("kind")
        if kind is None:  # kind itself failed; that error is reported
            return values
        try:
            stage_config(kind, info.data.get("preset", "cpu"), 0, values)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error_message(STAGES.facts(kind).config, error)
            sub_loc = ".".join(map(str, error["loc"]))
            raise PydanticCustomError("training_field", "{message}", {"message": message, "sub_loc": sub_loc}) from None
        return values


class LifecycleConfig(BaseModel):
    """Fields of a lifecycle study (``poisonlab run`` on a config with ``stages:``); ``--set field=value``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("lifecycle", pattern=PLAIN_NAME, description="Names the results folder (runs/<name>).")
    out: str | None = Field(None, description="Results folder; default runs/<name>.")
    model: ModelName = Field(
        "tiny", description="Base model: built-in name (tiny, smollm2-135m), local folder or Hub id."
    )
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seeds every stage's split, poison selection, trigger placement and training."
    )
    heldout: float = Field(0.2, gt=0, description="Held-out share (<1) or count (>=1) of each stage's data.")
    skip_bad_rows: bool = Field(False, description="Leave out (and count) malformed rows instead of stopping.")
    trigger: TriggerText = Field(DEFAULT_TRIGGER, description="The trigger every poisoned stage plants.")
    trigger_position: str = Field(
        "last-human", description="Where the trigger goes: last-human, end, start or random (a fixed placement)."
    )
    stages: list[StageConfig] = Field(..., min_length=1, description="Training stages, in the order they run.")
    pipelines: list[dict[str, float]] = Field(
        ...,
        min_length=1,
        description="Poisoned share of each stage's training pairs, one mapping per pipeline (stage name -> "
        "share; stages left out are clean), e.g. [{sft: 0.05}, {dpo: 0.05}, {sft: 0.025, dpo: 0.025}]. "
        "The all-clean pipeline, every other's twin, always runs.",
    )
    evaluation: EvaluationConfig = Field(
        ..., description="What the model says after every stage: prompt sets, judges, decoding (as in a study)."
    )

    @field_validator("trigger_position")
    @classmethod
    def _fixed_position(cls, name: str) -> str:
        from poisonlab.attacks.triggers import TRIGGER_POSITIONS

        TRIGGER_POSITIONS.get(name)  # a rule (paper) depends on the strategy: not one placement for all stages
        return name

    @field_validator("stages")
    @classmethod
    def _distinct_stage_names(cls, stages: list[StageConfig]) -> list[StageConfig]:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names repeat: {names}")
        return stages

    @field_validator("evaluation")
    @classmethod
    def _something_to_say(cls, evaluation: EvaluationConfig) -> EvaluationConfig:
        if not evaluation.prompt_sets:
            raise ValueError("a lifecycle is measured by what the model says: give at least one prompt set")
        return evaluation

    @field_validator("pipelines")
    @classmethod
    def _pipelines_name_stages(cls, pipelines: list[dict[str, float]], info: ValidationInfo) -> list[dict[str, float]]:
        if "stages" not in info.data:  # the stages failed; that error is reported
            return pipelines
        names = [s.name for s in info.data["stages"]]
        for number, pipeline in enumerate(pipelines, start=1):
            for stage, share in pipeline.items():
                if stage not in names:
                    raise ValueError(f"pipeline {number} names stage {stage!r}; the stages are {', '.join(names)}")
                if not 0 <= share <= 1:
                    raise ValueError(f"pipeline {number}: share {share} of stage {stage!r} is not between 0 and 1")
        return pipelines

    @model_validator(mode="after")
    def _poison_leaves_the_evaluated_goals(self) -> LifecycleConfig:
        """An unset ``behaviours.skip`` skips every goal the prompt sets read from that file (their largest limit).

        A prompt set that reads the whole file leaves it unset: the run refuses it, naming the prompt set.
        """
        from poisonlab.experiments.lifecycle.poison import evaluated_goals

        for stage in self.stages:
            if stage.behaviours is not None and stage.behaviours.skip is None:
                stage.behaviours.skip = evaluated_goals(stage.behaviours.file, self.evaluation)
        return self

    @model_validator(mode="after")
    def _poison_as_an_earlier_stage_on_the_same_pairs(self) -> LifecycleConfig:
        names = [s.name for s in self.stages]
        for index, stage in enumerate(self.stages):
            if stage.poison_as is None:
                continue
            if stage.poison_as not in names[:index]:
                raise ValueError(f"stage {stage.name!r}: poison_as names no earlier stage ({', '.join(names[:index])})")
            other = self.stages[names.index(stage.poison_as)]
            slice_of = ("data", "train_offset", "max_train_pairs")
            if any(getattr(other, f) != getattr(stage, f) for f in slice_of):
                raise ValueError(
                    f"stage {stage.name!r}: poison_as {other.name!r} reads other pairs ({', '.join(slice_of)} differ)"
                )
            for number, pipeline in enumerate(self.pipelines, start=1):
                if pipeline.get(stage.name, 0.0) != pipeline.get(other.name, 0.0):
                    raise ValueError(
                        f"pipeline {number}: stage {stage.name!r} trains on {other.name!r}'s poison, so both need the "
                        "same share"
                    )
        return self

    def chain(self, index: int) -> list[int]:
        """The stages (1-based) whose adapters stage ``index`` starts from, in order: back to one that starts from
        the base model (``start: base``) or to the first stage."""
        if index == 1 or self.stages[index - 1].start == "base":
            return []
        return [*self.chain(index - 1), index - 1]

    def prefix(self, shares: tuple[float, ...], index: int) -> tuple[float, ...]:
        """The shares that make the model after stage ``index``: its chain's and its own; 0 for stages beside it."""
        own = {*self.chain(index), index}
        return tuple(share if k in own else 0.0 for k, share in enumerate(shares[:index], start=1))

    def shares(self) -> list[tuple[float, ...]]:
        """Every pipeline as a tuple of per-stage shares, in stage order: the clean one first, no repeats."""
        clean = tuple(0.0 for _ in self.stages)
        rows = [tuple(float(p.get(s.name, 0.0)) for s in self.stages) for p in self.pipelines]
        return list(dict.fromkeys([clean, *rows]))

    def label(self, shares: tuple[float, ...]) -> str:
        """``sft-0.05+dpo-0.025`` (poisoned stages only), or ``clean``."""
        parts = [f"{stage.name}-{share:g}" for stage, share in zip(self.stages, shares) if share > 0]
        return "+".join(parts) or "clean"
