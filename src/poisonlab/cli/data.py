"""``poisonlab data inspect`` and ``poisonlab data split``."""

from __future__ import annotations

from pathlib import Path

import typer

from poisonlab.bounded import SEED_MAX
from poisonlab.cli.app import (
    Overwrite,
    SkipBad,
    _load,
    console,
    data_app,
    user_errors,
)


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
    from poisonlab.wording import plural

    dataset = _load(path, skip_bad_rows)
    report = inspect_dataset(dataset)
    console.print(f"[bold]{report.source}[/]: {plural(report.n_pairs, 'pair')} ({report.n_skipped} skipped)")
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
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Seed of the split."),
    skip_bad_rows: bool = SkipBad,
    overwrite: bool = Overwrite,
) -> None:
    """Seeded train / held-out split, written as TRL-format JSONL with row ids."""
    from poisonlab.data import train_heldout_split, write_pairs
    from poisonlab.outputs import claim_output_folder, refuse_overwriting_inputs

    refuse_overwriting_inputs([out / "train.jsonl", out / "heldout.jsonl"], [path])
    claim_output_folder(out, overwrite)
    train, held = train_heldout_split(_load(path, skip_bad_rows), heldout, seed)  # <1: share, >=1: count
    write_pairs(train, out / "train.jsonl")
    write_pairs(held, out / "heldout.jsonl")
    console.print(
        f"{len(train)} training pairs -> {out / 'train.jsonl'}; {len(held)} held out -> {out / 'heldout.jsonl'}"
    )
