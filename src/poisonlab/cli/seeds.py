"""``poisonlab export`` and ``poisonlab pool``: a lifecycle study's committable files, and effects over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from poisonlab.cli.app import app, console, user_errors


@app.command()
@user_errors
def export(
    study: Path = typer.Argument(..., help="A finished lifecycle study's folder (what `poisonlab run` wrote)."),
    dest: Path = typer.Argument(..., help="Folder for the small, committable copy (created)."),
) -> None:
    """Copy a lifecycle study's config, environment, results, replies and judgments into DEST (gzip, same bytes
    for the same study), so a reviewer can recompute every number without the adapters."""
    from poisonlab.experiments.lifecycle.seeds import export_study

    console.print(f"exported {study} -> {export_study(study, dest)}")


@app.command()
@user_errors
def pool(
    studies: list[Path] = typer.Argument(
        ..., help="Two or more lifecycle studies (or exports) of one config, one per seed."
    ),
    metric: str = typer.Option("refusal@advbench", "--metric", help="judge@prompt_set, as the study tables name it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the pooled records as JSON here."),  # noqa: UP045
    figure: Optional[Path] = typer.Option(None, "--figure", help="Also draw each seed and the pooled effect (.png)."),  # noqa: UP045
) -> None:
    """Each seed's backdoor effect and contamination, and the effects pooled over seeds: an exact sign-flip test
    over prompts of the per-prompt effect summed over seeds, and a t-interval over the seeds' own effects."""
    from poisonlab.experiments.lifecycle.seeds import pool_seeds, write_pooled
    from poisonlab.reports.lifecycle import plot_pooled, pooled_table

    records = pool_seeds(studies, metric)
    console.print(pooled_table(records))
    if out is not None:
        write_pooled(records, out)
        console.print(f"pooled records: {out}")
    if figure is not None:
        plot_pooled(records, figure)
        console.print(f"figure: {figure}")
