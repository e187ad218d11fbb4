"""The ``poisonlab`` command: a thin layer over the Python API, one module per command group.

``app`` (``cli/app.py``) holds the groups and shared options; importing a command module registers its
commands on it.
"""

from __future__ import annotations

from poisonlab import interrupts

# isort: off
from poisonlab.cli import data, poison, train, evaluate, scan, study, seeds, misc, watermark, audit  # noqa: F401 (registers, help order)

# isort: on
from poisonlab.cli.app import app, errors
from poisonlab.cli.study import study_kind

__all__ = ["app", "main", "study_kind"]


def main() -> None:
    """The ``poisonlab`` command: ``app`` with a one-line message instead of silence when Ctrl-C stops it."""
    interrupts.install()
    from poisonlab.progress import quiet_library_bars

    quiet_library_bars()  # off a terminal: no '\r' frames from transformers' weight-loading bar in a log
    try:
        app()
    except SystemExit as exc:
        if exc.code == 130:  # typer turns KeyboardInterrupt into exit status 130
            errors.print(
                "poisonlab: interrupted. Finished work is kept (every write is atomic); "
                "run the same command again to resume.",
                highlight=False,
                soft_wrap=True,
            )
        raise
