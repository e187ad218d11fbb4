"""A grid study's results folder: claimed for one study (resumed, cleared or refused), its split and environment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.errors import InputError
from poisonlab.experiments.core.environment import environment
from poisonlab.experiments.grid.config import ExperimentConfig
from poisonlab.hardware import default_device, resolve_bf16
from poisonlab.io import atomic_write_json
from poisonlab.outputs import existing_results, refuse_overwriting_inputs
from poisonlab.training.loop import DONE_MARKER, NOT_COMPARED


def results_folder(config: ExperimentConfig) -> Path:
    return Path(config.out or Path("runs") / config.name)


def precision(config: ExperimentConfig) -> str:
    """``fp32`` or ``bf16``: what the study's training, scoring and evaluation compute in on this machine.

    ``bf16: auto`` depends on the hardware (AVX512_BF16/AMX CPUs, CUDA), and bf16 changes the numbers.
    """
    return "bf16" if resolve_bf16(config.training_config().bf16, default_device()) else "fp32"


def _environment(config: ExperimentConfig) -> dict[str, Any]:
    training = config.training_config()
    return environment(training.bf16, training.threads, precision(config))


# Config fields a rerun into the same results folder may change: they add or leave out runs or scans, or
# change speed only. Every other field changes what the finished runs mean, so changing it makes another study.
RESUMABLE_FIELDS = frozenset(
    {"name", "out", "strategies", "attacks", "ratios", "exclude", "eval_batch_size", "defenses"}
    | {"retrain_without_flags", "mitigations"}
)
# What a study writes at the top of its folder (plus its plots, *.png).
STUDY_ENTRIES = ("config.yaml", "environment.json", "split.json", "results.json", "results.csv", "runs")


def _study_identity(config: ExperimentConfig) -> dict[str, Any]:
    values = config.model_dump(exclude=set(RESUMABLE_FIELDS) | {"training"})
    training = config.training_config().model_dump()
    values["training"] = {k: v for k, v in training.items() if k not in NOT_COMPARED}
    return json.loads(json.dumps(values))


def study_differences(folder: Path, config: ExperimentConfig) -> list[str]:
    """The fields in which the study saved in ``folder/config.yaml`` differs from ``config`` (empty: the same).

    A saved config this version cannot read counts as different (``config.yaml``).
    """
    try:
        saved = ExperimentConfig.model_validate(yaml.safe_load((folder / "config.yaml").read_text()))
    except Exception:  # unreadable, or written by a version with other fields
        return ["config.yaml"]
    before, now = _study_identity(saved), _study_identity(config)
    fields = [key for key in now if before.get(key) != now[key] and key != "training"]
    fields += [f"training.{key}" for key in now["training"] if before["training"].get(key) != now["training"][key]]
    return fields


def holds_finished_work(folder: Path) -> bool:
    """True if any run of the study in ``folder`` finished, or trained an adapter at least to a checkpoint."""
    runs = folder / "runs"
    return runs.is_dir() and any(
        next(runs.rglob(name), None) is not None for name in ("result.json", DONE_MARKER, "checkpoint")
    )


def _clear_study(folder: Path, plots: bool = True) -> None:
    for name in STUDY_ENTRIES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for plot in folder.glob("*.png") if plots else ():
        plot.unlink()


def _clear_study_keeping_the_data(folder: Path, config: ExperimentConfig, plots: bool = True) -> None:
    """``_clear_study``, refused if the study's own data lies in what it would remove."""
    data = Path(config.data).expanduser()
    if data.exists():
        data = data.resolve()
        for name in STUDY_ENTRIES:
            entry = (folder / name).resolve()
            if data == entry or entry in data.parents:
                raise InputError(
                    f"the data {data} is inside {entry}, which this run would replace; copy it elsewhere first",
                    field="data",
                )
    _clear_study(folder, plots)


def claim_results_folder(config: ExperimentConfig, overwrite: bool = False) -> Path:
    """The study's results folder, made ready for ``config``: resumed, cleared, or refused.

    The same study (``study_differences`` finds nothing) resumes. Another study's folder is refused while it
    holds finished work, and cleared when it holds none (a failed start never blocks a rerun) or when
    ``overwrite`` is set. A folder holding another command's results (poisoned data, a split, ...) is
    refused unless ``overwrite``.
    """
    out = results_folder(config)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", path=out, field="out")
    refuse_overwriting_inputs([out / name for name in STUDY_ENTRIES], [config.data], field="out")
    if (out / "config.yaml").exists():
        differences = study_differences(out, config)
        if not differences and not overwrite:
            return out
        if differences and holds_finished_work(out) and not overwrite:
            raise InputError(
                f"holds the results of another study (it differs in {', '.join(differences)}); choose another "
                "folder (--out), or pass --overwrite to replace them",
                path=out,
            )
        _clear_study_keeping_the_data(out, config)
        return out
    found = existing_results(out)
    if found and not overwrite:
        raise InputError(
            f"already holds other results ({', '.join(found)}); choose another folder (--out), or pass "
            "--overwrite to replace them",
            path=out,
        )
    _clear_study_keeping_the_data(out, config, plots=False)  # not a study's folder: its pictures are the user's
    return out


def split_data(config: ExperimentConfig) -> tuple[PreferenceDataset, PreferenceDataset, PreferenceDataset]:
    """(training pairs, held-out pairs, all pairs) of the study, seeded, so every worker of a study derives the
    same split; loading checks the data, nothing is written."""
    dataset = load_pairs(config.data, on_error="skip" if config.skip_bad_rows else "raise")
    train, heldout = train_heldout_split(dataset, config.heldout, config.seed)
    if config.max_train_pairs:
        train = PreferenceDataset(train.pairs[: config.max_train_pairs], train.source)
    if config.max_heldout_pairs:
        heldout = PreferenceDataset(heldout.pairs[: config.max_heldout_pairs], heldout.source)
    return train, heldout, dataset


def prepare_split(config: ExperimentConfig, out: Path) -> tuple[PreferenceDataset, PreferenceDataset]:
    train, heldout, dataset = split_data(config)
    _write_split(dataset, train, heldout, out)
    return train, heldout


def _write_split(dataset: PreferenceDataset, train: PreferenceDataset, heldout: PreferenceDataset, out: Path) -> None:
    atomic_write_json(
        out / "split.json",
        {
            "source": dataset.source,
            "n_skipped": len(dataset.skipped),
            "train_ids": train.ids,
            "heldout_ids": heldout.ids,
        },
    )
