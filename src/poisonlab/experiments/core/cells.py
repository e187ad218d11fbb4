"""Claiming a results folder for a study made of cells (probes, the reasoning probe): resume or refuse."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from poisonlab.errors import InputError
from poisonlab.outputs import existing_results


def claim_cells(out: Path, config: Any, overwrite: bool, what: str) -> Path:
    """``out``, resumed when its ``config.yaml`` has the same ``cell_settings()`` as ``config``; a folder with
    other settings is refused (or, with ``overwrite``, its cells are removed), and one holding other kinds of
    results is refused. ``what`` names the study in the message ("a probe study")."""
    saved = out / "config.yaml"
    if saved.exists():
        try:
            same = type(config).model_validate(yaml.safe_load(saved.read_text())).cell_settings() == (
                config.cell_settings()
            )
        except Exception:  # an unreadable or other kind of config is not the same study
            same = False
        if not same and not overwrite:
            raise InputError(
                f"holds {what} with other model, data or training settings (or another kind of results); "
                "choose another folder (--out), or pass --overwrite",
                path=out,
            )
        if not same:
            shutil.rmtree(out / "cells", ignore_errors=True)
        return out
    found = existing_results(out)
    if found and not overwrite:
        raise InputError(f"already holds other results ({', '.join(found)}); choose another folder (--out)", path=out)
    return out
