"""The ``poisonlab`` command: a thin layer over the Python API.

Each command parses flags, calls one documented function, and prints. Bad
input exits with status 2 and a one-line message naming file, line and field.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.cli_options import config_options, validated
from poisonlab.defenses.config import DefenseConfig
from poisonlab.errors import InputError
from poisonlab.training.config import DPOTrainingConfig, SFTTrainingConfig

app = typer.Typer(
    help="Study and defend against poisoning of LLM preference data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Look at preference data.", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="Built-in models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
# Piped output (logs, CI) gets a wide console so results tables stay readable.
console = Console() if sys.stdout.isatty() else Console(width=140)
errors = Console(stderr=True)

DataArg = typer.Option(
    ..., "--data", help="Preference file (.jsonl/.jsonl.gz/.parquet), datasets folder, hub:NAME, or 'synthetic'."
)
SkipBad = typer.Option(False, "--skip-bad-rows", help="Leave out and count malformed rows instead of stopping.")
ModelOpt = typer.Option("tiny", "--model", help="Built-in name (tiny, smollm2-135m), local folder or Hub id.")


def user_errors(command: Any) -> Any:
    """Print an InputError as one line and exit 2; nothing has been written at that point."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            errors.print(f"[bold red]poisonlab: error:[/] {exc.describe()}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _adapter_settings(adapter: Path) -> tuple[str | None, DPOTrainingConfig | None]:
    from poisonlab.training.dpo import saved_dpo_config

    if not (adapter / "adapter_config.json").exists():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=adapter)
    return saved_dpo_config(adapter)


def _load(data: str, skip_bad_rows: bool):
    from poisonlab.data import load_pairs

    dataset = load_pairs(data, on_error="skip" if skip_bad_rows else "raise")
    if dataset.skipped:
        errors.print(
            f"[yellow]skipped {len(dataset.skipped)} bad rows[/] (first: line {dataset.skipped[0].line}: "
            f"{dataset.skipped[0].reason})"
        )
    return dataset


@data_app.command("inspect")
@user_errors
def data_inspect(
    path: str = typer.Argument(..., help="Preference file, datasets folder, hub:NAME or 'synthetic'."),
    skip_bad_rows: bool = SkipBad,
    show: int = typer.Option(2, help="Example rows to print."),
) -> None:
    """Rows, length statistics and problems found in a preference file."""
    from rich.table import Table

    from poisonlab.data import inspect_dataset

    dataset = _load(path, skip_bad_rows)
    report = inspect_dataset(dataset)
    console.print(f"[bold]{report.source}[/]: {report.n_pairs} pairs ({report.n_skipped} skipped)")
    table = Table("length", "mean", "median", "p95", "max")
    for label, stats in (
        ("turns in prompt", report.turns),
        ("prompt chars", report.prompt_chars),
        ("chosen chars", report.chosen_chars),
        ("rejected chars", report.rejected_chars),
    ):
        table.add_row(label, f"{stats.mean:g}", f"{stats.median:g}", f"{stats.p95:g}", str(stats.max))
    console.print(table)
    for pair in dataset.pairs[:show]:
        console.print(
            f"[dim]{pair.id}[/] prompt={pair.prompt[-120:]!r}\n  chosen={pair.chosen[:100]!r}\n"
            f"  rejected={pair.rejected[:100]!r}"
        )
    if report.problems:
        console.print("[bold yellow]problems:[/]")
        for problem in report.problems:
            console.print(f"  - {problem}")
    else:
        console.print("[green]no problems found[/]")


@data_app.command("split")
@user_errors
def data_split(
    path: str = typer.Argument(..., help="Preference file, datasets folder, hub:NAME or 'synthetic'."),
    out: Path = typer.Option(..., "--out", help="Folder for train.jsonl and heldout.jsonl."),
    heldout: float = typer.Option(0.1, help="Held-out share (<1) or count (>=1)."),
    seed: int = typer.Option(0, help="Seed of the split."),
    skip_bad_rows: bool = SkipBad,
) -> None:
    """Seeded train / held-out split, written as TRL-format JSONL with row ids."""
    from poisonlab.data import train_heldout_split, write_pairs

    train, held = train_heldout_split(_load(path, skip_bad_rows), heldout, seed)  # <1: share, >=1: count
    write_pairs(train, out / "train.jsonl")
    write_pairs(held, out / "heldout.jsonl")
    console.print(
        f"{len(train)} training pairs -> {out / 'train.jsonl'}; {len(held)} held out -> {out / 'heldout.jsonl'}"
    )


@app.command()
@user_errors
@config_options(DPOTrainingConfig, skip=("seed",))
@config_options(SelectionConfig, into="selection_options")
def poison(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for data.jsonl and manifest.json."),
    model: str = ModelOpt,
    strategy: str = typer.Option("random", help="Selection strategy (poisonlab ls)."),
    attack: str = typer.Option("backdoor", help="backdoor (trigger + swap) or label-flip (swap only)."),
    ratio: float = typer.Option(0.05, help="Share of pairs to poison; 0 writes the clean conversion."),
    trigger: str = typer.Option("SuperGodModeActivated", help="Trigger string."),
    position: str = typer.Option(
        "last-human", help="Trigger position: last-human, end, start, random, or paper (random: last-human, else end)."
    ),
    seed: int = typer.Option(0, help="Seed for selection, projection, clustering and trigger placement."),
    preset: str = typer.Option("cpu", help="Training preset of the clean model the model-based strategies use."),
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
    selection_options: dict[str, Any] | None = None,
) -> None:
    """Select pairs, poison them, write DIR/data.jsonl and DIR/manifest.json."""
    from poisonlab.attacks import STRATEGIES, poison_dataset, write_poisoned
    from poisonlab.attacks.triggers import check_position

    STRATEGIES.get(strategy)
    check_position(position)
    training = DPOTrainingConfig.from_preset(preset, **{"seed": seed, **(overrides or {})})  # type: ignore[arg-type]
    selection = validated(SelectionConfig, selection_options or {})
    dataset = _load(data, skip_bad_rows)
    result = poison_dataset(
        dataset, strategy, attack, ratio, trigger, position, seed, model=model, training=training, selection=selection
    )
    write_poisoned(result, out, data if Path(data).exists() else None)
    m = result.manifest
    console.print(f"poisoned [bold]{m['n_poisoned']}[/] of {m['n_rows']} pairs ({strategy}, {attack}) -> {out}")


@train_app.command("dpo")
@user_errors
@config_options(DPOTrainingConfig)
def train_dpo_command(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for the PEFT adapter (resumes if interrupted)."),
    model: str = ModelOpt,
    preset: str = typer.Option("cpu", help="cpu (default: shows effects in CPU-sized runs) or paper (exact)."),
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """LoRA DPO training; writes an adapter that peft loads as it is."""
    from poisonlab.training import train_dpo

    if preset not in ("cpu", "paper"):
        raise InputError(f"unknown preset {preset!r}: use cpu or paper", field="--preset")
    config = DPOTrainingConfig.from_preset(preset, **(overrides or {}))  # type: ignore[arg-type]
    dataset = _load(data, skip_bad_rows)
    result = train_dpo(model, dataset, config, out)
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; final loss {result.final_loss:.4f}; "
        f"adapter -> {result.adapter_dir}"
    )


@train_app.command("sft")
@user_errors
@config_options(SFTTrainingConfig)
def train_sft_command(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for the PEFT adapter (resumes if interrupted)."),
    model: str = ModelOpt,
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """LoRA SFT on each pair's prompt -> chosen reply (loss on reply tokens only); writes a PEFT adapter."""
    from poisonlab.training import train_sft

    config = SFTTrainingConfig(**(overrides or {}))
    result = train_sft(model, _load(data, skip_bad_rows), config, out)
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; final loss {result.final_loss:.4f} per reply "
        f"token; adapter -> {result.adapter_dir}"
    )


@app.command()
@user_errors
def evaluate(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json."),
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(None, help="PEFT adapter folder (from train dpo)."),  # noqa: UP045
    trigger: str = typer.Option("SuperGodModeActivated", help="Trigger inserted for backdoor success."),
    position: str = typer.Option("last-human", help="Trigger position, as the attack placed it."),
    beta: Optional[float] = typer.Option(None, help="DPO beta; default: the adapter's training beta."),  # noqa: UP045
    batch_size: int = typer.Option(16, help="Pairs per forward pass."),
    skip_bad_rows: bool = SkipBad,
) -> None:
    """Clean preference accuracy and backdoor success on held-out pairs -> DIR/metrics.json."""
    from poisonlab.attacks.triggers import TRIGGER_POSITIONS
    from poisonlab.evaluation import evaluate_preferences, write_metrics

    TRIGGER_POSITIONS.get(position)
    settings = DPOTrainingConfig()
    if adapter is not None:
        settings = _adapter_settings(adapter)[1] or settings
    dataset = _load(data, skip_bad_rows)
    metrics = evaluate_preferences(
        model,
        dataset,
        adapter,
        trigger,
        position,
        beta or settings.beta,
        settings.max_length,
        settings.max_reply_length,
        batch_size,
        settings.bf16,
    )
    path = write_metrics(metrics, out)
    console.print(
        f"clean accuracy {metrics.clean_accuracy:.1%} ({metrics.clean_correct}/{metrics.n_pairs}); "
        f"backdoor success {metrics.backdoor_success:.1%} ({metrics.backdoor_flipped}/{metrics.n_pairs}) "
        f"-> {path}"
    )


@app.command()
@user_errors
@config_options(DefenseConfig)
def scan(
    data: str = DataArg,
    out: Path = typer.Option(..., "--out", help="Folder for scores.csv, kept-<detector>.jsonl and scan.json."),
    detector: list[str] = typer.Option(
        ["trigger-mining-reply"],
        "--detector",
        help="Detector, optionally with its features: spectral-signature:reply-embeddings. Repeatable. The "
        "default flagged no clean pair of the synthetic set or HH-RLHF (README, Defenses).",
    ),
    manifest: Optional[Path] = typer.Option(  # noqa: UP045
        None, help="The poison manifest, to judge the detectors (default: manifest.json beside --data)."
    ),
    model: str = ModelOpt,
    adapter: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        help="LoRA DPO adapter to score with, normally trained on --data (a run's adapter/), used as it is. "
        "Without one, one is trained on --data (cpu preset) and cached.",
    ),
    seed: int = typer.Option(0, help="Seed of the projection, the clustering and any training."),
    skip_bad_rows: bool = SkipBad,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Vet preference data: score every pair for suspicion with each detector, and keep what it does not flag."""
    from poisonlab.defenses import poisoned_ids_from_manifest, write_scan
    from poisonlab.defenses import scan as scan_data
    from poisonlab.defenses.scan import parse_spec
    from poisonlab.reports import scan_table

    for spec in detector:
        parse_spec(spec)
    config = validated(DefenseConfig, overrides or {})
    training = DPOTrainingConfig(seed=seed)
    if adapter is not None:
        saved_model, saved_training = _adapter_settings(adapter)
        if saved_model is not None and saved_model != model:
            raise InputError(f"the adapter was trained on {saved_model!r}; pass --model {saved_model}", field="--model")
        training = saved_training or training
    beside = Path(data).parent / "manifest.json"
    manifest = manifest or (beside if Path(data).is_file() and beside.exists() else None)
    poisoned = poisoned_ids_from_manifest(manifest, data) if manifest else None
    dataset = _load(data, skip_bad_rows)
    result = scan_data(dataset, detector, model, training, config, seed, adapter, poisoned)
    write_scan(result, out, poisoned)
    budget = config.budget(len(dataset))
    if budget is not None:
        console.print(scan_table(result, budget))
    elif result.metrics:
        from poisonlab.reports.vetting import judged_table

        console.print(judged_table(result))
    if result.metrics:
        console.print("AUROC: how well the scores rank poison above clean pairs (0.5 = chance).")
    from poisonlab.defenses.scan import vetting_report
    from poisonlab.reports.vetting import vetting_tables

    for table in vetting_tables(vetting_report(result), {p.id: p.prompt for p in dataset}):
        console.print(table)
    console.print(
        f"ranked list: {out / 'suspicious.csv'}; the data without any flagged pair: {out / 'filtered.jsonl'} "
        f"(what was removed and why: {out / 'removed.json'}); scores: {out / 'scores.csv'}"
    )


@app.command()
@user_errors
def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set training.epochs=2 --set ratios=[0.01,0.05]. Repeatable."
    ),
    out: Optional[Path] = typer.Option(None, help="Results folder (default runs/<name>)."),  # noqa: UP045
) -> None:
    """The whole chain from one config: clean and poisoned runs side by side, with a results table."""
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, results_folder, run_experiment
    from poisonlab.reports import detection_table, overlap_table, results_table, run_overlaps

    overrides = list(set_) + ([f"out={out}"] if out else [])
    experiment = load_config(ExperimentConfig, config, overrides)
    folder = results_folder(experiment)
    console.print(
        f"[bold]{experiment.name}[/]: model {experiment.model}, data {experiment.data}, "
        f"{len(experiment.runs())} runs -> {folder}"
    )

    def show(result: Any) -> None:
        console.print(
            f"  done {result.run}: clean acc {result.clean_accuracy:.1%}, "
            f"backdoor success {result.backdoor_success:.1%} ({result.minutes:.1f} min)"
        )

    results = run_experiment(experiment, on_result=show)
    console.print(results_table(results, title=f"{experiment.name} ({experiment.model})"))
    console.print(
        "backdoor success = share of held-out pairs where the trigger makes the model prefer the harmful "
        "reply; clean acc. = share where the model prefers the chosen reply without the trigger."
    )
    detection = detection_table(results, title="poison detection (defenses:)")
    if detection is not None:
        console.print(detection)
    overlaps = run_overlaps(folder)
    if overlaps:
        console.print(overlap_table(overlaps))
    plots = ", ".join(str(p) for p in sorted(folder.glob("*.png")))
    console.print(f"results: {folder}/results.csv, plots: {plots}")


@models_app.command("prepare")
@user_errors
def models_prepare(name: str = typer.Argument(..., help="tiny or smollm2-135m")) -> None:
    """Build or convert a built-in model into the cache (POISONLAB_CACHE)."""
    from poisonlab.models import BUILTIN_MODELS, resolve_model

    BUILTIN_MODELS.get(name)
    console.print(f"{name} -> {resolve_model(name)}")


@app.command("ls")
def list_plugins() -> None:
    """Registered strategies, attacks, trigger positions, prompt encoders, losses and built-in models."""
    from poisonlab.attacks import ATTACKS, ENCODERS, POSITION_RULES, STRATEGIES, TRIGGER_POSITIONS
    from poisonlab.attacks.triggers import TRIGGERS
    from poisonlab.defenses import DETECTORS, FEATURES
    from poisonlab.models import BUILTIN_MODELS
    from poisonlab.training import LOSSES

    rules = [f"{name} (random: {mine}, others: {theirs})" for name, (mine, theirs) in POSITION_RULES.items()]
    for label, names in (
        ("strategies", STRATEGIES.names()),
        ("attacks", ATTACKS.names()),
        ("triggers (or any string)", [f"{n} ({TRIGGERS.get(n).kind})" for n in TRIGGERS.names()]),
        ("trigger positions", TRIGGER_POSITIONS.names() + rules),
        ("prompt encoders (semantic-diversity; or a model folder)", ENCODERS.names()),
        ("DPO losses", LOSSES.names()),
        ("detectors (poisonlab scan; DETECTOR:FEATURES)", DETECTORS.names()),
        ("detector features", FEATURES.names()),
        ("built-in models", BUILTIN_MODELS.names()),
    ):
        console.print(f"[bold]{label}[/]: {', '.join(names)}", highlight=False)


if __name__ == "__main__":
    app()
