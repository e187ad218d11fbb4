"""The plan of a study: every unit of work, the work it needs done first, what is done and what is left.

Planning is split from running so that the order a study's correctness depends on is written down
instead of implied by a loop, and any executor (one process, a process pool, Ray) can run it:

- ``clean`` trains the clean model. Model-based strategies (every one but ``random``) score the
  training pairs with its adapter, and ``clean@<position>`` (placement rule ``paper``) evaluates it.
  Every poisoned run also needs its clean twin (``clean`` or ``clean@<position>``): its contamination
  and backdoor effect are computed against the twin's per-pair margins and judgments when it ends.
- ``clean-scores`` computes the clean model's DPO scores of the training pairs once, into the shared
  score cache, so that parallel model-based runs read them instead of each computing them.
- Runs whose poisoned data may be byte-identical -- model-based strategies at the same attack, ratio and
  trigger placement (gradient-projection and semantic-diversity pick inside the top DPO-score pool, so
  once the budget fills the pool they pick dpo-score's pairs) -- wait for the group's first run
  (dpo-score where present). A finished twin is found by scanning the study's runs, so this order keeps
  the reuse of its adapter under parallelism; two later runs of one group may still train the same
  adapter twice (identical results, only time lost).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.experiments.core.measure import metric_keys
from poisonlab.experiments.grid.config import ExperimentConfig, RunSpec

SCORES = "clean-scores"
# Rough minutes per 1,000 training pairs and epoch on one CPU core, until the study has finished runs
# to take the figure from (tiny: the quickstart; smollm2-135m: the HH-RLHF runs in the README).
ROUGH_MINUTES_PER_1000_PAIR_EPOCHS = {"tiny": 0.3, "smollm2-135m": 8.0}
# Resident memory of one training or evaluation process, in GB (a SmolLM2 process takes ~6.5 GB).
MEMORY_GB_PER_PROCESS = {"tiny": 1.0, "smollm2-135m": 6.5}
UNKNOWN_MODEL_MINUTES, UNKNOWN_MODEL_GB = 8.0, 6.5


def uses_clean_model(strategy: str) -> bool:
    """Whether a strategy scores pairs with the clean run's adapter (all but the model-free ones)."""
    from poisonlab.attacks.strategies import strategy_facts

    return strategy_facts(strategy).uses_model


def memory_gb_per_process(model: str) -> float:
    return MEMORY_GB_PER_PROCESS.get(model, UNKNOWN_MODEL_GB)


@dataclass
class Task:
    """One unit of work: a run of the grid (``spec``) or the clean model's scores (``spec`` None)."""

    name: str
    needs: list[str]  # tasks that must have finished first
    state: str  # done | left | scans/evaluation/mitigations left (added since the run finished) | not needed
    minutes: float  # recorded for a finished run, else an estimate
    estimated: bool
    spec: RunSpec | None = None
    note: str = ""

    @property
    def pending(self) -> bool:
        return self.state in ("left", "scans left", "evaluation left", "mitigations left")


@dataclass
class Plan:
    config: ExperimentConfig
    out: Path
    tasks: list[Task] = field(default_factory=list)  # every task after the tasks it needs

    def task(self, name: str) -> Task:
        return next(t for t in self.tasks if t.name == name)

    def left(self) -> list[Task]:
        return [t for t in self.tasks if t.pending]

    def minutes_left(self, jobs: int = 1) -> float:
        """Estimated wall minutes with ``jobs`` parallel workers: the total shared out, or the longest chain."""
        finish: dict[str, float] = {}
        for task in self.tasks:
            start = max((finish.get(n, 0.0) for n in task.needs), default=0.0)
            finish[task.name] = start + (task.minutes if task.pending else 0.0)
        total = sum(t.minutes for t in self.left())
        return max(total / max(jobs, 1), max(finish.values(), default=0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.config.name,
            "out": str(self.out),
            "tasks": [
                {k: v for k, v in t.__dict__.items() if k != "spec"} | {"run": t.spec.name if t.spec else None}
                for t in self.tasks
            ],
        }


def _twin_leaders(specs: list[RunSpec]) -> dict[str, str]:
    """run -> the run it waits for because their data may be identical (see the module's docstring)."""
    groups: dict[tuple[str, float, str], list[RunSpec]] = {}
    for spec in specs:
        if spec.ratio > 0 and uses_clean_model(spec.strategy):
            groups.setdefault((spec.attack, spec.ratio, spec.trigger_position), []).append(spec)
    leaders = {}
    for members in groups.values():
        from poisonlab.attacks.strategies import strategy_facts

        leader = next((s for s in members if strategy_facts(s.strategy).ranks_the_pool), members[0])
        leaders.update({s.name: leader.name for s in members if s is not leader})
    return leaders


def _scores_done(config: ExperimentConfig, out: Path) -> bool:
    clean = out / "runs" / "clean" / "adapter" / "adapter_model.safetensors"
    return clean.exists() and (scores_context(config, out).scores_file()).exists()


def build_plan(config: ExperimentConfig, out: Path) -> Plan:
    """The study's tasks with their dependencies, states and minutes (recorded, or estimated)."""
    specs = config.runs()
    leaders = _twin_leaders(specs)
    recorded: dict[str, dict[str, Any]] = {}
    for spec in specs:
        done = out / "runs" / spec.name / "result.json"
        if done.exists():
            recorded[spec.name] = json.loads(done.read_text())
    trained = [r["minutes"] for r in recorded.values() if not r.get("same_data_as")]
    estimate = statistics.median(trained) if trained else _rough_minutes(config)

    tasks: list[Task] = []
    model_based = [s for s in specs if s.ratio > 0 and uses_clean_model(s.strategy)]
    for spec in specs:
        needs, notes = [], []
        if spec.ratio == 0 and spec.name != "clean":
            needs.append("clean")
            notes.append("evaluates the clean adapter at another placement")
        elif spec.ratio > 0:  # every comparison (preference margins, judgments) is against the clean twin
            from poisonlab.experiments.grid.config import clean_twin

            needs.append(clean_twin(spec, config))
            if uses_clean_model(spec.strategy):
                needs += [n for n in ("clean", SCORES) if n not in needs]
        if spec.name in leaders:
            needs.append(leaders[spec.name])
            notes.append(f"may reuse {leaders[spec.name]}'s adapter (same pairs once the pool fills)")
        if spec.name in recorded:
            result = recorded[spec.name]
            missing = set(config.defenses) - set(result.get("detection") or {}) if spec.ratio > 0 else set()
            unjudged = [k for k in metric_keys(config) if k not in (result.get("metrics") or {})]
            unmitigated = set(config.mitigations) - set(result.get("mitigations") or {}) if spec.ratio > 0 else set()
            state = (
                "scans left"
                if missing
                else "evaluation left"
                if unjudged
                else "mitigations left"
                if unmitigated
                else "done"
            )
            minutes, estimated = (estimate * 0.3, True) if missing else (result["minutes"], False)
            if unmitigated:
                minutes, estimated = estimate * len(unmitigated), True
            if result.get("same_data_as"):
                notes.append(f"reused {result['same_data_as']}'s adapter")
        else:
            state, minutes, estimated = "left", estimate, True
        tasks.append(Task(spec.name, needs, state, minutes, estimated, spec, "; ".join(notes)))
        if spec.name == "clean" and model_based:
            waiting = any(s.name not in recorded for s in model_based)
            state = "done" if _scores_done(config, out) else ("left" if waiting else "not needed")
            note = f"DPO scores of the training pairs for {', '.join(sorted({s.strategy for s in model_based}))}"
            tasks.append(Task(SCORES, ["clean"], state, round(estimate * 0.1, 2), True, None, note))
    return Plan(config, out, _needs_first(tasks))


def _needs_first(tasks: list[Task]) -> list[Task]:
    """The tasks in grid order, except that each comes after the tasks it needs (a stable topological sort)."""
    by_name, ordered, placed = {t.name: t for t in tasks}, [], set()

    def place(task: Task) -> None:
        if task.name not in placed:
            placed.add(task.name)
            for need in task.needs:
                place(by_name[need])
            ordered.append(task)

    for task in tasks:
        place(task)
    return ordered


def _rough_minutes(config: ExperimentConfig) -> float:
    from poisonlab.experiments.grid.estimate import study_sizes

    n_train = study_sizes(config)[0]  # a known Hub set is counted from a table: a dry run needs no network
    per_1000 = ROUGH_MINUTES_PER_1000_PAIR_EPOCHS.get(config.model, UNKNOWN_MODEL_MINUTES)
    minutes = per_1000 * config.training_config().epochs * n_train / 1000
    return round(minutes * (1 + 0.5 * len(config.defenses)), 2)  # a scan is about half a training


@dataclass
class ScoresContext:
    """What computing the clean model's DPO scores needs, resolved the way a poisoned run resolves it."""

    context: Any  # SelectionContext

    def scores_file(self) -> Path:
        from poisonlab.training.clean_model import clean_model_folder

        return clean_model_folder(self.context) / "dpo_scores.json"

    def compute(self) -> None:
        from poisonlab.training.clean_model import clean_dpo_scores

        clean_dpo_scores(self.context)


def scores_context(config: ExperimentConfig, out: Path, progress: bool = False) -> ScoresContext:
    """The same selection context :func:`poisonlab.attacks.inject.poison_dataset` builds for a run, so the
    scores land under the key every model-based run of the study looks up."""
    from poisonlab.attacks.strategies import SelectionContext
    from poisonlab.experiments.grid.folder import split_data

    return ScoresContext(
        SelectionContext(
            dataset=split_data(config)[0],
            n_poison=0,
            seed=config.seed,
            model=config.model,
            training=config.training_config(),
            selection=config.selection,
            clean_adapter=out / "runs" / "clean" / "adapter",
            progress=progress,
        )
    )


def plan_table(plan: Plan, jobs: int = 1) -> Any:
    """A rich Table of the plan, captioned with what is left and the estimated time."""
    from rich.table import Table

    left = plan.left()
    caption = (
        f"{len(plan.tasks) - len(left)} of {len(plan.tasks)} tasks done; {len(left)} left, "
        f"~{plan.minutes_left(1):.1f} min on one worker, ~{plan.minutes_left(jobs):.1f} min with {jobs} "
        "(* estimated: from the study's finished runs, else a rough per-model figure)"
    )
    table = Table("task", "needs", "state", "min", "note", title=f"plan of {plan.config.name} -> {plan.out}")
    table.caption = caption
    for t in plan.tasks:
        minutes = "" if t.state in ("done", "not needed") and t.estimated else f"{t.minutes:.1f}"
        table.add_row(t.name, ", ".join(t.needs), t.state, minutes + ("*" if t.estimated and minutes else ""), t.note)
    return table
