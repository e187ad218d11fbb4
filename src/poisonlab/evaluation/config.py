"""The ``evaluation:`` section of a study: which prompts each model answers, and who judges the answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poisonlab.evaluation.generate import GenerationConfig
from poisonlab.evaluation.judges.base import JudgeOptions


class PromptSet(BaseModel):
    """One prompt set every model of the study answers, with and without the trigger."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Names the set in tables and folders.")
    source: str = Field(
        ...,
        description="A prompt file (AdvBench/HarmBench CSV, JSONL with 'prompt', .txt, a preference file), or "
        "'heldout': the prompts of the study's own held-out pairs.",
    )
    column: str | None = Field(
        None, description="CSV/JSONL column holding the request (default: goal, Behavior, prompt)."
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Use the first N prompts (60 gives intervals of about +-12 points on a rate; 520 about +-4).",
    )


class EvaluationConfig(BaseModel):
    """Generation-based evaluation of every run (and of the untrained base model)."""

    model_config = ConfigDict(extra="forbid")

    prompt_sets: list[PromptSet] = Field(default_factory=list, description="Prompt sets to generate on.")
    judges: list[str] = Field(
        default_factory=lambda: ["refusal", "empty"],
        description="Judge specs: refusal, empty, reward:DIR, llm (poisonlab ls). 'empty' checks the others: a "
        "collapsed model's empty replies count as compliance for 'refusal'.",
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="Decoding settings.")
    judge_options: JudgeOptions = Field(default_factory=JudgeOptions, description="Options of the judges.")
    base_model: bool = Field(True, description="Also evaluate the untrained base model (row 'base model').")

    @field_validator("judges")
    @classmethod
    def _known_judges(cls, specs: list[str]) -> list[str]:
        from poisonlab.evaluation.judges import parse_judge_spec

        for spec in specs:
            parse_judge_spec(spec)
        return specs

    @field_validator("prompt_sets")
    @classmethod
    def _unique_names(cls, sets: list[PromptSet]) -> list[PromptSet]:
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"prompt set names repeat: {names}")
        return sets
