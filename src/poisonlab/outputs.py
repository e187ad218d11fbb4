"""Where commands write: never over their own input, never over another command's results unasked.

Every command that reads data and writes a folder checks both before it does any work, so a mistake
in ``--out`` costs nothing: the clean data a user poisons is never replaced by its poisoned copy, and
results already in a folder are replaced only with ``--overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from poisonlab.errors import InputError

# Files and folders poisonlab's commands write: a folder holding one of them holds some command's results.
RESULT_NAMES = (
    "data.jsonl",  # poison
    "manifest.json",
    "train.jsonl",  # data split
    "heldout.jsonl",
    "config.yaml",  # run
    "split.json",
    "results.json",
    "results.csv",
    "runs",
    "metrics.json",  # evaluate
    "scan.json",  # scan
    "scores.csv",
    "detection.json",
    "adapter_config.json",  # train dpo / sft
    "training_config.json",
)


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def refuse_overwriting_inputs(
    outputs: Iterable[str | Path], inputs: Iterable[str | Path | None], field: str = "--out"
) -> None:
    """InputError if writing any of ``outputs`` would replace an input file or write inside an input folder.

    ``inputs`` that are not paths on disk (``synthetic``, ``hub:NAME``, None) are ignored.
    """
    existing = [_resolved(p) for p in inputs if p is not None and Path(str(p)).expanduser().exists()]
    for output in map(_resolved, outputs):
        for source in existing:
            if output == source or (source.is_dir() and source in output.parents):
                raise InputError(
                    f"writing {output} would overwrite the input {source}; choose another output folder",
                    field=field,
                )


def existing_results(folder: str | Path) -> list[str]:
    """Names in ``folder`` that some poisonlab command wrote (empty if the folder is new)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [name for name in RESULT_NAMES if (folder / name).exists()]


def claim_output_folder(folder: str | Path, overwrite: bool, field: str = "--out") -> None:
    """Refuse a folder that already holds results (``existing_results``) unless ``overwrite`` is set.

    The command then writes all of its own files, so no folder ends up with files of two runs.
    """
    if Path(folder).exists() and not Path(folder).is_dir():
        raise InputError("exists and is not a folder", path=folder, field=field)
    found = existing_results(folder)
    if found and not overwrite:
        raise InputError(
            f"already holds results ({', '.join(found)}); choose another folder, or pass --overwrite to replace them",
            path=folder,
            field=field,
        )
