"""First use, as a new user meets it (issue 17): no lost data, no traps, true numbers, plain messages."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.errors import InputError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# --- data must never be lost -------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_the_umask_allows(tmp_path, mask):
    from poisonlab.io import atomic_write_text

    before = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask


def test_poison_refuses_to_overwrite_its_own_input(tmp_path):
    folder = tmp_path / "D"
    assert invoke("poison", "--data", "synthetic", "--ratio", "0", "--out", folder).exit_code == 0
    clean = (folder / "data.jsonl").read_bytes()
    result = invoke("poison", "--data", folder / "data.jsonl", "--out", folder)
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    result = invoke("poison", "--data", folder / "data.jsonl", "--out", folder, "--overwrite")
    assert result.exit_code == 2 and "would overwrite the input" in result.output  # --overwrite never allows it
    assert (folder / "data.jsonl").read_bytes() == clean


def test_commands_refuse_a_folder_with_results_unless_overwrite(tmp_path):
    folder = tmp_path / "out"
    assert invoke("poison", "--data", "synthetic", "--out", folder).exit_code == 0
    first = (folder / "manifest.json").read_text()
    again = invoke("poison", "--data", "synthetic", "--seed", "1", "--out", folder)
    assert again.exit_code == 2 and "already holds results (data.jsonl, manifest.json)" in again.output
    assert "--overwrite" in again.output and (folder / "manifest.json").read_text() == first
    split = invoke("data", "split", "synthetic", "--out", folder)
    assert split.exit_code == 2 and not (folder / "train.jsonl").exists()
    replaced = invoke("poison", "--data", "synthetic", "--seed", "1", "--out", folder, "--overwrite")
    assert replaced.exit_code == 0 and json.loads((folder / "manifest.json").read_text())["seed"] == 1


def test_scan_and_split_refuse_outputs_that_replace_an_input(tmp_path):
    assert invoke("data", "split", "synthetic", "--out", tmp_path / "s").exit_code == 0
    data = tmp_path / "s" / "train.jsonl"
    kept = tmp_path / "s" / "kept-loss.jsonl"
    data.rename(kept)
    result = invoke("scan", "--data", kept, "--detector", "loss", "--out", tmp_path / "s")
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    result = invoke("data", "split", tmp_path / "s" / "heldout.jsonl", "--out", tmp_path / "s", "--overwrite")
    assert result.exit_code == 2 and "would overwrite the input" in result.output


# --- a mistake must not leave a trap ----------------------------------------------------------------


def test_run_with_a_misspelt_model_or_missing_data_writes_nothing(tmp_path):
    out = tmp_path / "X"
    result = invoke("run", QUICKSTART, "--set", "model=tiny2", "--out", out)
    assert result.exit_code == 2 and "--set model" in result.output and "Did you mean 'tiny'" in result.output
    assert not out.exists()
    result = invoke("run", QUICKSTART, "--set", f"data={tmp_path / 'nope.jsonl'}", "--out", out)
    assert result.exit_code == 2 and "no such file" in result.output
    assert not out.exists()


def test_a_folder_whose_training_never_started_is_claimed_again(tmp_path):
    from poisonlab.training.loop import claim_folder

    claim_folder(tmp_path, {"model": "tiny2", "learning_rate": 0.1})  # then loading the model failed
    claim_folder(tmp_path, {"model": "tiny", "learning_rate": 0.1})  # the corrected rerun is not blocked
    assert json.loads((tmp_path / "training_config.json").read_text())["model"] == "tiny"
    (tmp_path / "checkpoint").mkdir()  # once training has started, other settings are refused
    with pytest.raises(InputError, match="trained with 'tiny'"):
        claim_folder(tmp_path, {"model": "other", "learning_rate": 0.1})


def test_poison_checks_the_model_and_the_trigger_even_when_unused(tmp_path):
    out = tmp_path / "a"
    result = invoke("poison", "--data", "synthetic", "--strategy", "random", "--model", "tiny2", "--out", out)
    assert result.exit_code == 2 and "unknown model 'tiny2'" in result.output
    for trigger in ("", "   "):
        result = invoke("poison", "--data", "synthetic", "--trigger", trigger, "--out", tmp_path / "b")
        assert result.exit_code == 2 and "the trigger is empty" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    flip = invoke("poison", "--data", "synthetic", "--attack", "label-flip", "--trigger", "", "--out", tmp_path / "c")
    assert flip.exit_code == 0, flip.output  # label-flip inserts no trigger


def test_a_study_resumes_refuses_another_study_and_overwrites_on_request(tiny_model, tmp_path):
    from poisonlab.experiments import ExperimentConfig, run_experiment, saved_study

    out = tmp_path / "study"
    config = ExperimentConfig(
        name="t",
        out=str(out),
        max_train_pairs=32,
        max_heldout_pairs=8,
        ratios=[0.1],
        training={"epochs": 1, "bf16": False},
    )
    results = run_experiment(config, progress=False)
    assert [r.precision for r in results] == ["fp32", "fp32"]
    assert json.loads((out / "environment.json").read_text())["precision"] == "fp32"
    assert [r.minutes for r in run_experiment(config, progress=False)] == [r.minutes for r in results]  # resumed
    more = config.model_copy(update={"ratios": [0.1, 0.2]})  # a bigger grid is the same study: only the new run
    assert [r.run for r in run_experiment(more, progress=False)][-1] == "random-backdoor-0.2"

    other = config.model_copy(update={"seed": 1})
    with pytest.raises(InputError, match=r"another study.*seed"):
        run_experiment(other, progress=False)
    fresh = run_experiment(other, progress=False, overwrite=True)
    assert [r.run for r in fresh] == ["clean", "random-backdoor-0.1"]
    assert not (out / "runs" / "random-backdoor-0.2").exists()  # the old study's files are gone, not mixed in
    saved, finished = saved_study(out)
    assert saved.seed == 1 and [r.run for r in finished] == ["clean", "random-backdoor-0.1"]

    data = out / "runs" / "random-backdoor-0.1" / "poison" / "data.jsonl"  # a study's poisoned data as input
    with pytest.raises(InputError, match="which this run would replace"):
        run_experiment(config.model_copy(update={"data": str(data)}), progress=False, overwrite=True)
    assert data.exists()

    shown = invoke("show", out)
    assert shown.exit_code == 0, shown.output
    assert "clean model" in shown.output and "fp32" in shown.output and "2 of 2 runs finished" in shown.output
    assert invoke("show", tmp_path).exit_code == 2


def test_a_study_folder_without_finished_work_never_blocks_a_rerun(tiny_model, tmp_path):
    from poisonlab.experiments import ExperimentConfig
    from poisonlab.experiments.grid.folder import claim_results_folder

    out = tmp_path / "study"
    out.mkdir()
    (out / "config.yaml").write_text("name: old\nmodel: tiny\nseed: 5\n")  # a failed start of another study
    (out / "runs" / "clean" / "adapter").mkdir(parents=True)
    (out / "runs" / "clean" / "adapter" / "training_config.json").write_text('{"model": "tiny2"}')
    claim_results_folder(ExperimentConfig(out=str(out)))
    assert not (out / "config.yaml").exists() and not (out / "runs").exists()

    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    (poisoned / "data.jsonl").write_text("")
    with pytest.raises(InputError, match="already holds other results"):  # another command's results
        claim_results_folder(ExperimentConfig(out=str(poisoned)))


# --- numbers the README promises --------------------------------------------------------------------


def test_the_quickstart_computes_in_fp32_even_on_a_cpu_with_fast_bf16(monkeypatch):
    from poisonlab import hardware
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig
    from poisonlab.experiments.grid.folder import precision

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(hardware, "default_device", lambda: "cpu")
    from poisonlab.experiments.grid import folder

    monkeypatch.setattr(folder, "default_device", lambda: "cpu")
    assert precision(ExperimentConfig()) == "bf16"  # what `bf16: auto` does on such a CPU
    quickstart = load_config(ExperimentConfig, QUICKSTART)
    assert precision(quickstart) == "fp32"
    assert quickstart.training_config().bf16 is False  # training, scoring and evaluation all read this one


def test_default_threads_follow_the_free_cores(monkeypatch):
    from poisonlab import hardware

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    for load, expected in ((0.2, 8), (6.2, 2), (30.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        hardware.default_threads.cache_clear()
        assert hardware.default_threads() == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    hardware.default_threads.cache_clear()
    assert hardware.default_threads() == 3
    hardware.default_threads.cache_clear()


def test_every_command_uses_the_default_thread_count(monkeypatch):
    import torch

    from poisonlab import hardware

    before = torch.get_num_threads()
    monkeypatch.setattr(hardware, "default_threads", lambda: 3)
    try:
        assert invoke("ls").exit_code == 0
        assert torch.get_num_threads() == 3  # scoring and evaluation too, not only training
    finally:
        torch.set_num_threads(before)


def test_dpo_score_says_it_trains_a_clean_model_first(tiny_model, capsys):
    from poisonlab.attacks import poison_dataset
    from poisonlab.attacks.strategies import SelectionContext
    from poisonlab.data import load_pairs
    from poisonlab.data.pairs import PreferenceDataset
    from poisonlab.training.clean_model import clean_model_folder
    from poisonlab.training.config import DPOTrainingConfig

    pairs = load_pairs("synthetic").pairs[:40]
    training = DPOTrainingConfig(epochs=1, bf16=False, seed=11)
    cached = clean_model_folder(SelectionContext(PreferenceDataset(pairs, "t"), 2, 0, "tiny", training))
    shutil.rmtree(cached, ignore_errors=True)  # a shared POISONLAB_CACHE may hold it from an earlier session
    poison_dataset(PreferenceDataset(pairs, "t"), "dpo-score", ratio=0.05, training=training, progress=True)
    err = capsys.readouterr().err
    assert "training a clean DPO model of tiny on the 40 pairs first" in err and "(3 steps" in err
    poison_dataset(PreferenceDataset(pairs, "t"), "dpo-score", ratio=0.05, training=training, progress=True)
    assert "training a clean DPO model" not in capsys.readouterr().err  # cached: nothing to announce


# --- plain messages ---------------------------------------------------------------------------------


def test_skipped_rows_are_reported_in_plain_words(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n{"bad json\n')
    result = invoke("data", "inspect", bad, "--skip-bad-rows")
    assert result.exit_code == 0 and "field 'None'" not in result.output
    assert "1 pair (1 skipped)" in result.output and "skipped 1 bad row " in result.output
    all_bad = tmp_path / "all-bad.jsonl"
    all_bad.write_text('{"bad json\n')
    result = invoke("data", "inspect", all_bad, "--skip-bad-rows")
    assert result.exit_code == 2 and "empty" not in result.output
    assert "every line is bad (1 line skipped" in result.output


def test_heldout_counts_print_as_counts(tmp_path):
    result = invoke("data", "split", "synthetic", "--heldout", "5000", "--out", tmp_path / "s")
    assert result.exit_code == 2 and "held-out size 5000 leaves" in result.output and "5000.0" not in result.output
    assert "600 pairs" in result.output


def test_a_bad_training_flag_is_one_line_naming_the_flag(tmp_path):
    for command in (["train", "dpo"], ["poison"]):
        result = invoke(*command, "--data", "synthetic", "--epochs", "0", "--out", tmp_path / "t")
        assert result.exit_code == 2 and "field '--epochs': Input should be greater than or equal to 1" in result.output
        assert "Traceback" not in result.output and not (tmp_path / "t").exists()


def test_set_errors_name_the_flag_and_unknown_keys_the_valid_ones(tmp_path):
    result = invoke("run", QUICKSTART, "--set", "training.epoch=2", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "quickstart.yaml" not in result.output
    assert "--set training.epoch" in result.output and "Did you mean 'epochs'?" in result.output
    assert "Valid keys:" in result.output and "learning_rate" in result.output
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nratio: [0.1]\n")
    result = invoke("run", config)
    assert result.exit_code == 2 and "c.yaml:2" in result.output and "Did you mean 'ratios'?" in result.output
