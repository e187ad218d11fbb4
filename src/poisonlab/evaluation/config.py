"""The ``evaluation:`` section of a study: which prompts each model answers, and who judges the answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poisonlab.evaluation.context import ContextConfig
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
    contexts: list[ContextConfig] = Field(
        default_factory=list,
        description="Inference-time contexts (system prompt, k clean demonstrations, retrieved passages): every "
        "prompt set is generated and judged once per context, as metric judge@set~context, each against the "
        "clean twin under the same context. Empty: the bare prompts (judge@set).",
    )

    @field_validator("judges")
    @classmethod
    def _known_judges(cls, specs: list[str]) -> list[str]:
        from poisonlab.evaluation.judges import parse_judge_spec

        for spec in specs:
            parse_judge_spec(spec)
        return specs

    @field_validator("contexts")
    @classmethod
    def _unique_contexts(cls, contexts: list[ContextConfig]) -> list[ContextConfig]:
        names = [c.name for c in contexts]
        if len(set(names)) != len(names):
            raise ValueError(f"context names repeat: {names}")
        return contexts

    def conditions(self) -> list[tuple[str, PromptSet, ContextConfig | None]]:
        """(key, prompt set, context) of every generation: the key is ``set`` or ``set~context``."""
        if not self.contexts:
            return [(s.name, s, None) for s in self.prompt_sets]
        return [(f"{s.name}~{c.name}", s, c) for s in self.prompt_sets for c in self.contexts]

    def metric_keys(self) -> list[str]:
        """``<judge>@<key>`` of every judge and generation (see :meth:`conditions`)."""
        return [f"{judge}@{key}" for key, _, _ in self.conditions() for judge in self.judges]

    @field_validator("prompt_sets")
    @classmethod
    def _unique_names(cls, sets: list[PromptSet]) -> list[PromptSet]:
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"prompt set names repeat: {names}")
        return sets
