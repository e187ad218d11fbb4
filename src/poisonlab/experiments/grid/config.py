"""The experiment config: one YAML file describes a whole study.

A study is a clean run plus one poisoned run per (strategy, attack, ratio) in
the grid, all trained and evaluated the same way on the same split, so every
row of the results table differs from the clean row only by its poison.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from poisonlab.attacks.access import AccessConfig
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.attacks.triggers import DEFAULT_TRIGGER
from poisonlab.bounded import SEED_MAX
from poisonlab.defenses.config import DefenseConfig
from poisonlab.evaluation.config import EvaluationConfig
from poisonlab.experiments.core.fields import AdapterFolder, ModelName, TriggerText
from poisonlab.training.config import DPOTrainingConfig, Preset, RLHFStageConfig


class ExperimentConfig(BaseModel):
    """Fields of ``poisonlab run CONFIG.yaml``; override any with ``--set field=value``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("experiment", description="Names the results folder (runs/<name>) unless `out` is set.")
    out: str | None = Field(None, description="Results folder; default runs/<name>.")
    data: str = Field("synthetic", description="Preference data: a file, a datasets folder, hub:NAME, or synthetic.")
    skip_bad_rows: bool = Field(False, description="Leave out (and count) malformed rows instead of stopping.")
    model: ModelName = Field("tiny", description="Built-in name (tiny, smollm2-135m), local folder or Hub id.")
    init: list[AdapterFolder] = Field(
        default_factory=list,
        description="Adapters every run starts from (an SFT adapter, ...), merged into `model` in order: the DPO "
        "policy's start and reference, the clean model that scores pairs, and the `base` row of the evaluation.",
    )
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seeds the split, the selection, the trigger placement and training."
    )
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] | None = Field(
        None,
        description="Repeat the whole study once per seed (each replaces `seed`) into <out>/seed-<s>/, each with "
        "its own clean twin, then aggregate every metric: each seed's value and the mean with a t-interval "
        "(seeds.json, seeds.csv).",
    )
    heldout: float = Field(0.2, gt=0, description="Held-out share (<1) or count (>=1) for evaluation.")
    max_train_pairs: int | None = Field(None, ge=1, description="Use only the first N training pairs.")
    max_heldout_pairs: int | None = Field(None, ge=1, description="Evaluate on the first N held-out pairs.")
    strategies: list[str] = Field(default_factory=lambda: ["random"], description="Selection strategies to compare.")
    attacks: list[str] = Field(default_factory=lambda: ["backdoor"], description="backdoor and/or label-flip.")
    ratios: list[float] = Field(default_factory=lambda: [0.05], description="Poisoned shares of the training pairs.")
    exclude: list[str] = Field(
        default_factory=list,
        description="Run names to leave out of the grid, shell patterns allowed (e.g. 'semantic-*-label-flip-*').",
    )
    trigger: TriggerText = Field(DEFAULT_TRIGGER, description="Trigger string (the paper's default).")
    trigger_position: str = Field(
        "last-human",
        description="Where the trigger goes: last-human, end, start, random, or paper (the paper's code: "
        "last-human for random, end for the other strategies; the clean model is evaluated at each).",
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig,
        description="Options of gradient-projection and semantic-diversity (candidate_share, n_clusters, ...).",
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig,
        description="Rows the attacker controls (annotator_share, window, labels_only, ...); default: every row.",
    )
    preset: Preset = Field(
        "cpu",
        description="Training preset: cpu (default), paper (2406.12091's values) or fast (cpu with LoRA on the "
        "top layers over a cached frozen trunk: docs/fast-preset.md).",
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Overrides of the preset's DPO fields.")
    engine: Literal["dpo", "rl"] = Field(
        "dpo",
        description="What the (poisoned) pairs train. dpo: the model, by DPO (training:). rl: a reward model, then "
        "the model by RLHF against it on the pairs' prompts (TRL's RLOO; rl:). The poison is the same file either "
        "way: model-based strategies score with a clean DPO model trained with training:, so a study and its "
        "--set engine=rl twin poison byte-identical pairs.",
    )
    rl: dict[str, Any] = Field(
        default_factory=dict,
        description="engine rl: overrides of poisonlab train rl's fields, and reward_model: {...} of train reward's.",
    )
    eval_batch_size: int = Field(16, ge=1, description="Pairs per forward pass when evaluating.")
    evaluation: EvaluationConfig | None = Field(
        None,
        description="What the models say: prompt sets every run (and the base model) answers with and without "
        "the trigger, and the judges. Added to a finished study, only the generations and judgments run.",
    )
    defenses: list[str] = Field(
        default_factory=list,
        description="Detectors run on each poisoned run's training data with the adapter trained on it, and "
        "judged against its manifest: DETECTOR or DETECTOR:FEATURES (poisonlab ls). Added to a finished "
        "study, only the scans run.",
    )
    retrain_without_flags: bool = Field(
        False,
        description="With defenses: also train on the pairs each detector keeps and evaluate that model (does "
        "removing the flagged pairs remove the backdoor?). One more training per detector and poisoned run.",
    )
    defense: DefenseConfig = Field(
        default_factory=DefenseConfig,
        description="Options of the detectors (features, projection_dim, ...); expected_share is set to each "
        "run's true ratio.",
    )
    mitigations: list[str] = Field(
        default_factory=list,
        description="What a defender does about each poisoned run, measured like the run against its clean twin: "
        "oracle (retrain without exactly the poison), remove:DETECTOR (retrain without its flags), loss:NAME "
        "(retrain with a robust loss: cdpo, rdpo, ipo), strip-trigger:DETECTOR (delete the trigger a "
        "trigger-mining detector names from every prompt). DETECTOR must be in defenses. Added to a finished "
        "study, only they run.",
    )
    mitigation_label_smoothing: float = Field(
        0.1, ge=0, lt=0.5, description="Assumed label-noise rate of loss:cdpo and loss:rdpo mitigations."
    )

    @field_validator("heldout")
    @classmethod
    def _heldout_share_or_count(cls, heldout: float) -> float:
        if heldout >= 1 and not float(heldout).is_integer():
            raise ValueError(f"a held-out count must be a whole number of pairs, got {heldout:g}")
        return heldout

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        # runs/<name> must stay under runs/: no separators, no "..", nothing absolute or hidden
        if not name or name.startswith(".") or any(c in name for c in "/\\\0:") or name != name.strip():
            raise ValueError(f"{name!r} is not a plain folder name (letters, digits, '-', '_', no '/' or '..')")
        return name

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
        return seeds

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        from poisonlab.attacks.strategies import STRATEGIES

        for name in names:
            STRATEGIES.get(name)
        return names

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, names: list[str]) -> list[str]:
        from poisonlab.attacks.inject import ATTACKS

        for name in names:
            ATTACKS.get(name)
        return names

    @field_validator("trigger_position")
    @classmethod
    def _known_position(cls, name: str) -> str:
        from poisonlab.attacks.triggers import check_position

        return check_position(name)

    @field_validator("access")
    @classmethod
    def _access_allows_attacks(cls, access: AccessConfig, info: ValidationInfo) -> AccessConfig:
        from poisonlab.attacks.access import check_labels_only
        from poisonlab.attacks.inject import attack_facts
        from poisonlab.errors import InputError

        for attack in info.data.get("attacks", []):  # at config load, not after the clean run
            try:
                check_labels_only(access, attack, attack_facts(attack).inserts_trigger)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return access

    @field_validator("ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float]) -> list[float]:
        for ratio in ratios:
            if not 0 <= ratio <= 1:
                raise ValueError(f"ratio {ratio} is not between 0 and 1")
        return ratios

    @field_validator("defenses")
    @classmethod
    def _known_detectors(cls, specs: list[str]) -> list[str]:
        from poisonlab.defenses.scan import parse_spec

        for spec in specs:
            parse_spec(spec)
        return specs

    @field_validator("mitigations")
    @classmethod
    def _known_mitigations(cls, specs: list[str], info: ValidationInfo) -> list[str]:
        from poisonlab.defenses.detectors import DETECTORS, DetectorFacts
        from poisonlab.defenses.scan import parse_spec
        from poisonlab.experiments.grid.mitigate import MITIGATIONS, parse_mitigation

        for spec in specs:
            name, argument = parse_mitigation(spec)
            if MITIGATIONS.facts(name).needs_detector:
                if argument not in info.data.get("defenses", []):
                    raise ValueError(f"{spec} needs {argument} in defenses (it acts on that detector's scan)")
                facts = DETECTORS.facts(parse_spec(argument)[0]) or DetectorFacts()
                if name == "strip-trigger" and not facts.names_trigger:
                    raise ValueError(f"{spec}: {argument} names no trigger (use a trigger-mining detector)")
        return specs

    @field_validator("training")
    @classmethod
    def _training_is_valid(cls, values: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Check unknown or invalid training fields now, not an hour into the run.
        from poisonlab.config_files import error_message

        try:
            DPOTrainingConfig.from_preset(info.data.get("preset", "cpu"), **values)
        except ValidationError as exc:
            error = exc.errors()[0]  # its path inside `training` goes in ctx, so the error names training.KEY
            message = error_message(DPOTrainingConfig, error)
            sub_loc = ".".join(map(str, error["loc"]))
            raise PydanticCustomError("training_field", "{message}", {"message": message, "sub_loc": sub_loc}) from None
        return values

    @field_validator("rl")
    @classmethod
    def _rl_is_valid(cls, values: dict[str, Any]) -> dict[str, Any]:
        from poisonlab.config_files import error_message

        try:
            RLHFStageConfig(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error_message(RLHFStageConfig, error)
            sub_loc = ".".join(map(str, error["loc"]))
            raise PydanticCustomError("training_field", "{message}", {"message": message, "sub_loc": sub_loc}) from None
        return values

    @model_validator(mode="after")
    def _rl_runs_no_dpo_defenses(self) -> ExperimentConfig:
        if self.engine == "rl" and (self.defenses or self.mitigations):
            raise ValueError(
                "engine rl: defenses and mitigations read and retrain a DPO adapter; run them in the engine dpo study"
            )
        return self

    def training_config(self) -> DPOTrainingConfig:
        """The DPO settings: the model's with engine dpo; with engine rl, the clean model's that scores the pairs."""
        return DPOTrainingConfig.from_preset(self.preset, **{"seed": self.seed, **self.training})

    def rl_config(self) -> RLHFStageConfig:
        """engine rl: the reward model's and the RL settings, seeded by the study."""
        return RLHFStageConfig(**{"seed": self.seed, **self.rl})

    def runs(self) -> list[RunSpec]:
        """The clean run, then every poisoned cell of the grid, each with its concrete trigger placement.

        Under a placement rule (``paper``) the strategies' triggers sit in different places, so the clean
        model is evaluated at each of them: ``clean`` at the first, ``clean@<position>`` at the others.
        """
        from poisonlab.attacks.triggers import resolve_position

        poisoned = []
        for strategy in self.strategies:
            position = resolve_position(self.trigger_position, strategy)
            for attack in self.attacks:
                for ratio in self.ratios:
                    name = f"{strategy}-{attack}-{ratio:g}"
                    if ratio > 0 and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude):
                        poisoned.append(RunSpec(name, strategy, attack, ratio, position))
        positions = list(dict.fromkeys(spec.trigger_position for spec in poisoned)) or [
            resolve_position(self.trigger_position, "none")
        ]
        clean = [RunSpec("clean", "none", "none", 0.0, positions[0])]
        clean += [RunSpec(f"clean@{position}", "none", "none", 0.0, position) for position in positions[1:]]
        return clean + poisoned


class RunSpec(BaseModel):
    """One cell of the grid."""

    name: str
    strategy: str
    attack: str
    ratio: float
    trigger_position: str = "last-human"  # concrete placement, for poisoning and evaluation

    def __init__(self, name: str, strategy: str, attack: str, ratio: float, trigger_position: str = "last-human"):
        super().__init__(name=name, strategy=strategy, attack=attack, ratio=ratio, trigger_position=trigger_position)


def clean_twin(spec: RunSpec, config: ExperimentConfig) -> str:
    """The clean run evaluated at the same trigger placement as ``spec``: its twin for every comparison."""
    return next(s.name for s in config.runs() if s.ratio == 0 and s.trigger_position == spec.trigger_position)
