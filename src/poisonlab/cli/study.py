"""``poisonlab run``, ``show``, ``report`` and ``probe``: whole studies from one config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from poisonlab.cli.app import (
    app,
    console,
    user_errors,
)
from poisonlab.errors import InputError

ResultsOut = typer.Option(None, "--out", help="Results folder (default runs/NAME, NAME the config's name).")


@app.command()
@user_errors
def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set training.epochs=2 --set ratios=[0.01,0.05]. Repeatable."
    ),
    out: Optional[Path] = ResultsOut,  # noqa: UP045
    dry_run: bool = typer.Option(
        False, "--dry-run/--no-dry-run", help="Print the plan (done, left, time estimate); run nothing."
    ),
    executor: str = typer.Option("local", help="local (this machine's processes) or ray."),
    jobs: int = typer.Option(1, help="Runs at a time; 0: one per core that memory allows (~6.5 GB a SmolLM2 run)."),
    memory_gb: Optional[float] = typer.Option(None, help="Memory the runs may use, in GB; caps --jobs."),  # noqa: UP045
    ray_address: Optional[str] = typer.Option(  # noqa: UP045
        None, help="Ray cluster to run on (ray://HOST:10001 or auto); default: a Ray instance on this machine."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite/--no-overwrite",
        help="Replace the results folder's contents (another study's, or this one's).",
    ),
) -> None:
    """The whole chain from one config: clean and poisoned runs side by side, with a results table."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, results_folder, run_experiment
    from poisonlab.experiments.grid.executors import EXECUTORS
    from poisonlab.experiments.grid.folder import precision
    from poisonlab.experiments.grid.plan import build_plan, plan_table
    from poisonlab.reports import detection_table, metric_tables, overlap_table, results_table, run_overlaps

    overrides = list(set_) + ([f"out={out}"] if out else [])
    kind = study_kind(config)
    if kind != "grid":  # a lifecycle (stages chained) or a probe study: each has its own runner
        if dry_run or executor != "local" or jobs != 1:
            raise InputError(f"a {kind} study runs in this process: --dry-run, --executor and --jobs do not apply")
        if kind == "probe":
            probe(config, set_, out, overwrite)
        elif kind == "reasoning":
            reasoning(config, set_, out, overwrite)
        else:
            _run_lifecycle(config, overrides, overwrite)
        return
    experiment = load_config(ExperimentConfig, config, overrides)
    folder = results_folder(experiment)
    if jobs < 0:
        raise InputError("--jobs must be 0 (automatic) or more", field="--jobs")
    runner = EXECUTORS.get(executor)(jobs, memory_gb, ray_address)
    if dry_run:
        console.print(plan_table(build_plan(experiment, folder), runner.workers(experiment.model)))
        _print_gpu_estimate(experiment)
        return
    total = len(experiment.runs())
    earlier = {t.name for t in build_plan(experiment, folder).tasks if t.state == "done"} if folder.exists() else set()
    console.print(
        f"[bold]{experiment.name}[/]: model {experiment.model}, data {experiment.data}, {total} runs -> {folder}"
        + (f" ({len(earlier)} finished earlier: read, not run again)" if earlier else "")
    )
    count = iter(range(1, total + 1))

    def show(result: Any) -> None:
        when = "finished earlier" if result.run in earlier else f"{result.minutes:.1f} min"
        console.print(
            f"  run {next(count)}/{total} {result.run}: clean acc {result.clean_accuracy:.1%}, "
            f"backdoor success {result.backdoor_success:.1%} ({when})"
        )

    if experiment.seeds:  # the whole study once per seed, then the aggregate
        from poisonlab.experiments.grid.seeds import aggregate, run_seeds, seeds_tables

        by_seed = run_seeds(experiment, executor=runner, overwrite=overwrite)
        for seed, results in by_seed.items():
            console.print(results_table(results, title=f"seed {seed}: {experiment.name} ({experiment.model})"))
        for table in seeds_tables(aggregate(by_seed)):
            console.print(table)
        console.print(f"each seed's study: {folder}/seed-<s>/ (report.html in each); over seeds: {folder}/seeds.csv")
        return
    results = run_experiment(experiment, on_result=show, executor=runner, overwrite=overwrite)
    console.print(results_table(results, title=f"{experiment.name} ({experiment.model}, {precision(experiment)})"))
    for table in metric_tables(results):
        console.print(table)
    console.print(
        "backdoor success = share of held-out pairs where the trigger makes the model prefer the harmful "
        "reply; clean acc. = share where the model prefers the chosen reply without the trigger."
    )
    detection = detection_table(results, title="poison detection (defenses:)")
    if detection is not None:
        console.print(detection)
    _print_mitigations(results)
    overlaps = run_overlaps(folder)
    if overlaps:
        console.print(overlap_table(overlaps))
    plots = ", ".join(str(p) for p in sorted(folder.glob("*.png")))
    console.print(f"results: {folder}/results.csv (and .parquet), plots: {plots}, report: {folder}/report.html")


def _print_gpu_estimate(experiment: Any) -> None:
    """The study's GPU-hours, peak memory per run and disk, where the model's shape is known offline."""
    from poisonlab.experiments.grid.estimate import estimate_study, estimate_table, study_sizes

    try:
        estimate = estimate_study(experiment, *study_sizes(experiment))
    except InputError as exc:
        console.print(f"no GPU estimate: {exc.message}")
        return
    console.print(estimate_table(estimate))


def _print_mitigations(results: list[Any]) -> None:
    from poisonlab.reports.mitigation import mitigation_table

    keys = dict.fromkeys(
        k for r in results if r.mitigations for k in (r.metrics or {}) if k != "preference-margin@heldout"
    )
    for key in keys:
        table = mitigation_table(results, key)
        if table is not None:
            console.print(table)


@app.command()
@user_errors
def report(results_dir: Path = typer.Argument(..., help="A study's results folder (holds results.json).")) -> None:
    """Write RESULTS_DIR/report.html: one self-contained page with the study's figures and tables."""
    from poisonlab.reports.report import write_report

    if not any((results_dir / name).exists() for name in ("results.json", "lifecycle.json")):
        raise InputError("not a study's results folder (no results.json or lifecycle.json)", path=results_dir)
    page = write_report(results_dir)
    if (results_dir / "checksums.json").exists() and (results_dir / "results.json").exists():
        from poisonlab.integrity import record_checksums

        record_checksums(results_dir, exclude=("runs",))  # the new page, so verify still describes the folder
    console.print(f"report: {page}")


def study_kind(config: Path) -> str:
    """``lifecycle`` (top-level ``pipelines:``), ``probe`` (``n_poisoned:``), ``reasoning`` (``modes:``) or ``grid``
    (an ExperimentConfig).

    Unreadable files count as ``grid``: ``load_config`` then reports what is wrong, with the line.
    """
    import yaml

    from poisonlab.bounded import load_yaml

    try:
        data = load_yaml(config.read_text(encoding="utf-8"), config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, InputError):
        return "grid"
    if not isinstance(data, dict):
        return "grid"
    if "modes" in data:
        return "reasoning"
    return "lifecycle" if "pipelines" in data else "probe" if "n_poisoned" in data else "grid"


def _run_lifecycle(config: Path, overrides: list[str], overwrite: bool) -> None:
    from poisonlab.config_files import load_config
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import results_folder, run_lifecycle
    from poisonlab.reports.lifecycle import lifecycle_table

    lifecycle = load_config(LifecycleConfig, config, overrides)
    stages = " -> ".join(f"{s.name} ({s.kind})" for s in lifecycle.stages)
    folder = results_folder(lifecycle)
    console.print(f"[bold]{lifecycle.name}[/]: model {lifecycle.model}, stages {stages} -> {folder}")
    rows = run_lifecycle(lifecycle, overwrite=overwrite)
    for key in dict.fromkeys(k for row in rows for k in row.metrics):
        console.print(lifecycle_table(rows, key))
    console.print(f"figures: {folder}/lifecycle_*.png; every row: {folder}/lifecycle.csv")


@app.command()
@user_errors
def show(folder: Path = typer.Argument(..., help="A study's results folder (what `poisonlab run` wrote).")) -> None:
    """Print the tables of a study that ran (finished runs only), without running anything."""
    from poisonlab.experiments import saved_study

    if (folder / "lifecycle.json").exists():  # a lifecycle study: its rows, per metric
        from poisonlab.experiments.lifecycle.runner import StageResult
        from poisonlab.reports.lifecycle import lifecycle_table

        rows = [StageResult(**row) for row in json.loads((folder / "lifecycle.json").read_text())]
        for key in dict.fromkeys(k for row in rows for k in row.metrics):
            console.print(lifecycle_table(rows, key))
        return
    seed_folders = sorted(folder.glob("seed-*/config.yaml"), key=lambda p: p.parent.name)
    if not (folder / "config.yaml").exists() and seed_folders:  # a study with `seeds:`: each seed, then over seeds
        from poisonlab.experiments.grid.seeds import aggregate, seeds_tables

        by_seed = {}
        for path in seed_folders:
            console.print(f"[bold]{path.parent.name}[/]")
            by_seed[int(path.parent.name.removeprefix("seed-"))] = _show_study(*saved_study(path.parent))
        finished = {seed: results for seed, results in by_seed.items() if results}
        if len(finished) > 1:
            for table in seeds_tables(aggregate(finished)):
                console.print(table)
        return
    _show_study(*saved_study(folder))


def _show_study(config: Any, results: list[Any]) -> list[Any]:
    """The tables `poisonlab run` prints at the end, for the runs that finished; returns those results."""
    from poisonlab.reports import detection_table, metric_tables, overlap_table, results_table, run_overlaps

    folder = Path(config.out)
    runs = config.runs()
    console.print(
        f"[bold]{config.name}[/]: model {config.model}, data {config.data}; {len(results)} of {len(runs)} runs finished"
    )
    if not results:
        console.print(f"nothing finished yet: `poisonlab run {folder}/config.yaml --out {folder}` runs the study")
        return results
    precisions = sorted({r.precision or "precision not recorded" for r in results})
    console.print(results_table(results, title=f"{config.name} ({config.model}, {', '.join(precisions)})"))
    for table in metric_tables(results):
        console.print(table)
    detection = detection_table(results, title="poison detection (defenses:)")
    if detection is not None:
        console.print(detection)
    _print_mitigations(results)
    overlaps = run_overlaps(folder)
    if overlaps:
        console.print(overlap_table(overlaps))
    missing = [spec.name for spec in runs if spec.name not in {r.run for r in results}]
    if missing:
        console.print(f"not finished: {', '.join(missing)} (rerun the study to finish them)")
    return results


@app.command()
@user_errors
def probe(
    config: Path = typer.Argument(..., help="Probe study YAML (see configs/probes-tiny.yaml)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set n_poisoned=[1,4,16] --set training.dpo.epochs=2."
    ),
    out: Optional[Path] = ResultsOut,  # noqa: UP045
    overwrite: bool = typer.Option(
        False, "--overwrite/--no-overwrite", help="Replace the results folder's cells when it holds another study."
    ),
) -> None:
    """Backdoor effect against the number of poisoned rows, per trigger, stage and position, over seeds."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments.probes.config import ProbeConfig
    from poisonlab.experiments.probes.runner import results_folder, rows_needed, run_probes
    from poisonlab.reports.probes import probes_table, rows_needed_table

    study = load_config(ProbeConfig, config, list(set_) + ([f"out={out}"] if out else []))
    folder = results_folder(study)
    total = len(study.stages) * len(study.seeds) * len(study.triggers) * len(study.positions) * len(study.n_poisoned)
    console.print(f"[bold]{study.name}[/]: model {study.model}, data {study.data}, {total} cells -> {folder}")
    count = iter(range(1, total + 1))

    def show(cell: dict[str, Any], ran: bool) -> None:
        effect = cell["measures"]["backdoor_effect"]["value"]
        when = f"{cell['minutes']:.1f} min" if ran else "finished earlier"
        console.print(
            f"  cell {next(count)}/{total} {cell['stage']} seed {cell['seed']} {cell['trigger']}@{cell['position']} "
            f"n={cell['n_poisoned']}: backdoor effect {effect:+.1%} ({when})",
            highlight=False,
        )

    rows = run_probes(study, overwrite=overwrite, on_cell=show)
    for stage in study.stages:
        console.print(probes_table(rows, stage))
    console.print(rows_needed_table(rows_needed(rows)))
    console.print(f"figures: {folder}/probes_<stage>.png; every row: {folder}/probes.csv and probes.json")


@app.command()
@user_errors
def reasoning(
    config: Path = typer.Argument(..., help="Reasoning probe YAML (see configs/reasoning-probe-tiny.yaml)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field: --set shares=[0.1,0.5]."),
    out: Optional[Path] = ResultsOut,  # noqa: UP045
    overwrite: bool = typer.Option(
        False, "--overwrite/--no-overwrite", help="Replace the results folder's cells when it holds another study."
    ),
) -> None:
    """Poisoned worked solutions: final-answer accuracy and the poisoned step reproduced, per mode, step, share."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments.reasoning import ReasoningProbeConfig, run_reasoning_probe
    from poisonlab.experiments.reasoning.runner import results_folder

    study = load_config(ReasoningProbeConfig, config, list(set_) + ([f"out={out}"] if out else []))
    folder = results_folder(study)
    total = len(study.seeds) * len(study.modes) * len(study.steps) * len(study.shares)
    console.print(f"[bold]{study.name}[/]: model {study.model}, {total} cells (and a clean twin per seed) -> {folder}")

    def show(cell: dict[str, Any], ran: bool) -> None:
        m = cell["measures"]
        when = f"{cell['minutes']:.1f} min" if ran else "finished earlier"
        console.print(
            f"  seed {cell['seed']} {cell['mode']} step {cell['step']} share {cell['share']:g}: accuracy "
            f"{m['accuracy']['value']:.1%} (twin {m['twin_accuracy']['value']:.1%}), poisoned step reproduced "
            f"{m['reproduction_rate']['value']:.1%} (twin {m['twin_reproduction_rate']['value']:.1%})"
            f" ({when})",
            highlight=False,
        )

    run_reasoning_probe(study, overwrite=overwrite, on_cell=show)
    console.print(f"every cell: {folder}/reasoning.csv and reasoning.json; figures: {folder}/reasoning_*.png")


# --- poisonlab audit bias: bias audits by optimised perturbation (poisonlab.audits; arXiv 2502.14182 Sec. 4) ---
