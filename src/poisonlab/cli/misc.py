"""``poisonlab models prepare``, ``verify`` and ``ls``."""

from __future__ import annotations

from pathlib import Path

import typer

from poisonlab.cli.app import (
    app,
    console,
    models_app,
    user_errors,
)


@models_app.command("prepare")
@user_errors
def models_prepare(name: str = typer.Argument(..., help="tiny or smollm2-135m")) -> None:
    """Build or convert a built-in model into the cache (POISONLAB_CACHE)."""
    from poisonlab.models import BUILTIN_MODELS, resolve_model

    BUILTIN_MODELS.get(name)
    console.print(f"{name} -> {resolve_model(name)}")


@app.command()
@user_errors
def verify(
    folder: Path = typer.Argument(..., help="A poison folder, a scan folder, a run or a whole study folder."),
    inputs: list[Path] = typer.Option(
        [],
        "--input",
        help="The input file a manifest names (the clean data poisoned): its sha256 is checked too. Repeatable. "
        "Without it verify reads nothing outside FOLDER.",
    ),
) -> None:
    """Recompute the sha256 its manifest, scan.json or checksums.json records: exit 0 if all match, 1 if not
    (a file differs, is missing, or was added); 2 if the folder or a record cannot be read."""
    from poisonlab.integrity import verify_folder

    result = verify_folder(folder, inputs)
    for record, sha in result.records.items():
        console.print(f"[dim]record {record}: sha256 {sha}[/]", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for check in result.failed:
        detail = check.problem or f"sha256 {check.actual}, recorded {check.expected}"
        console.print(f"[bold red]DIFFERS[/] {check.path} ({detail}; recorded in {check.recorded_in})", highlight=False)
    if not result.ok:
        console.print(f"{len(result.failed)} of {len(result.checks)} files differ from what their records say")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {len(result.checks)} files match what {len(result.records)} records say")


@app.command("ls")
def list_plugins() -> None:
    """Registered strategies, attacks, trigger positions, prompt encoders, losses and built-in models."""
    from poisonlab.attacks import ATTACKS, ENCODERS, POSITION_RULES, STRATEGIES, TRIGGER_POSITIONS
    from poisonlab.attacks.reasoning import REASONING_POISONS
    from poisonlab.attacks.triggers import TRIGGERS
    from poisonlab.defenses import DETECTORS, FEATURES
    from poisonlab.evaluation.context import SYSTEM_PROMPTS
    from poisonlab.evaluation.judges import JUDGES
    from poisonlab.models import BUILTIN_MODELS
    from poisonlab.training import LOSSES
    from poisonlab.training.stages import STAGES

    rules = [f"{name} (random: {mine}, others: {theirs})" for name, (mine, theirs) in POSITION_RULES.items()]
    for label, names in (
        ("strategies", STRATEGIES.names()),
        ("attacks", ATTACKS.names()),
        ("reasoning poisons (poisonlab reasoning `modes:`)", REASONING_POISONS.names()),
        ("triggers (or any string)", [f"{n} ({TRIGGERS.get(n).kind})" for n in TRIGGERS.names()]),
        ("trigger positions", TRIGGER_POSITIONS.names() + rules),
        ("prompt encoders (semantic-diversity; or a model folder)", ENCODERS.names()),
        ("DPO losses", LOSSES.names()),
        ("training stages (lifecycle `stages:`)", STAGES.names()),
        ("detectors (poisonlab scan; DETECTOR:FEATURES)", DETECTORS.names()),
        ("detector features", FEATURES.names()),
        ("judges (poisonlab judge; reward:DIR)", JUDGES.names()),
        ("system prompt presets (evaluation context; or any text)", SYSTEM_PROMPTS.names()),
        ("built-in models", BUILTIN_MODELS.names()),
    ):
        console.print(f"[bold]{label}[/]: {', '.join(names)}", highlight=False)


# --- poisonlab watermark: ownership watermarks (poisonlab.watermarks; arXiv 2502.14182 Sec. 4-5) ---
