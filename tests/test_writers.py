"""One writer per folder: a second command with other settings is refused naming the holder; the same one waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs, write_pairs
from poisonlab.writers import LOCK_NAME, last_writer, one_writer

runner = CliRunner()


def _pairs(tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "in.jsonl"
    if not path.exists():
        write_pairs(synthetic_pairs(n=n), path)
    return path


def test_a_writer_with_other_settings_is_refused_naming_the_holder_and_what_differs(tmp_path):
    folder = tmp_path / "f"
    with one_writer(folder, "poison", {"trigger": "A", "ratio": 0.1}):
        assert last_writer(folder)["state"] == "writing"
        try:
            with one_writer(folder, "poison", {"trigger": "B", "ratio": 0.1}):
                raise AssertionError("two writers held one folder")
        except Exception as exc:
            message = str(exc)
    assert f"process {os.getpid()}" in message and "poisonlab poison" in message
    assert 'trigger ("A" there, "B" here)' in message and "ratio" not in message
    assert last_writer(folder)["state"] == "done"


def test_the_same_writer_waits_for_the_holder_instead_of_writing_beside_it(tmp_path):
    folder, order = tmp_path / "f", []

    def second() -> None:
        with one_writer(folder, "run", {"seed": 0}):
            order.append("second")

    with one_writer(folder, "run", {"seed": 0}):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first done")
    thread.join(10)
    assert order == ["first done", "second"]


def test_a_refused_writer_leaves_no_folder_behind(tmp_path):
    folder = tmp_path / "new"
    result = runner.invoke(app, ["poison", "--data", str(tmp_path / "missing.jsonl"), "--out", str(folder)])
    assert result.exit_code == 2 and not folder.exists()


def test_poison_into_a_folder_another_poison_is_writing_exits_2_naming_it(tmp_path):
    out = tmp_path / "p"
    with one_writer(out, "poison", {"trigger": "OTHER"}):
        result = runner.invoke(app, ["poison", "--data", str(_pairs(tmp_path)), "--out", str(out), "--ratio", "0.1"])
    assert result.exit_code == 2, result.output
    assert "another command is writing this folder" in result.output and '"OTHER" there' in result.output
    assert not (out / "data.jsonl").exists() and not (out / "manifest.json").exists()


def test_run_into_a_study_folder_another_seed_is_writing_exits_2_naming_the_seed(tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig

    out = tmp_path / "F"
    sets = ["strategies=[random]", "ratios=[0.05]", f"out={out}"]
    seed0 = load_config(ExperimentConfig, "configs/quickstart.yaml", sets)
    settings = json.loads(json.dumps(seed0.model_dump(exclude={"out"}), default=str))
    with one_writer(out, "run", settings, field="out"):
        args = ["run", "configs/quickstart.yaml", "--out", str(out), "--set", "strategies=[random]"]
        result = runner.invoke(app, [*args, "--set", "ratios=[0.05]", "--set", "seed=1"])
    assert result.exit_code == 2, result.output
    assert "seed (0 there, 1 here)" in result.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # no config.yaml, environment.json or runs


_POISON = [sys.executable, "-m", "poisonlab.cli", "poison", "--strategy", "random"]


def test_two_poison_commands_racing_for_one_folder_leave_one_consistent_result(tmp_path):
    data, out = _pairs(tmp_path, 200), tmp_path / "race"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    commands = [
        [*_POISON, "--data", str(data), "--out", str(out), "--trigger", trigger, "--ratio", ratio]
        for trigger, ratio in (("AlphaTrig", "0.1"), ("BetaTrig", "0.3"))
    ]
    processes = [subprocess.Popen(c, env=env, stderr=subprocess.PIPE, text=True) for c in commands]
    codes = [p.wait(timeout=300) for p in processes]
    assert sorted(codes) == [0, 2], [p.stderr.read() for p in processes]
    manifest = json.loads((out / "manifest.json").read_text())
    text = (out / "data.jsonl").read_text()
    other = {"AlphaTrig": "BetaTrig", "BetaTrig": "AlphaTrig"}[manifest["trigger"]]
    assert manifest["trigger"] in text and other not in text
    assert text.count(manifest["trigger"]) >= manifest["n_poisoned"]


def test_a_lone_data_file_of_the_users_is_never_replaced_without_overwrite(tmp_path):
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "data.jsonl").write_text("my unrelated file\n")
    other = tmp_path / "other.jsonl"
    write_pairs(synthetic_pairs(n=40), other)
    result = runner.invoke(app, ["poison", "--data", str(other), "--out", str(mine), "--ratio", "0.1"])
    assert result.exit_code == 2 and "already holds results (data.jsonl)" in result.output, result.output
    assert (mine / "data.jsonl").read_text() == "my unrelated file\n"
    twice = runner.invoke(app, ["poison", "--data", str(other), "--out", str(mine), "--ratio", "0.1"])
    assert twice.exit_code == 2, twice.output  # the refused poison's lock record does not make the file "its own"
    assert (mine / "data.jsonl").read_text() == "my unrelated file\n"
    again = runner.invoke(app, ["poison", "--data", str(other), "--out", str(mine), "--ratio", "0.1", "--overwrite"])
    assert again.exit_code == 0 and (mine / "manifest.json").exists()


def test_a_poison_killed_between_its_data_and_its_manifest_is_finished_by_a_rerun(tmp_path):
    out, data = tmp_path / "p", _pairs(tmp_path)
    args = ["poison", "--data", str(data), "--out", str(out), "--ratio", "0.1"]
    assert runner.invoke(app, args).exit_code == 0
    whole = (out / "data.jsonl").read_bytes()
    (out / "manifest.json").unlink()  # as a kill between the two writes leaves it: the lock file says poison
    (out / "data.jsonl").write_bytes(whole[:100])  # was still writing
    record = json.loads((out / LOCK_NAME).read_text())
    (out / LOCK_NAME).write_text(json.dumps({**record, "state": "writing"}))
    assert runner.invoke(app, args).exit_code == 0
    assert (out / "data.jsonl").read_bytes() == whole and (out / "manifest.json").exists()


def test_generate_with_a_bad_adapter_is_refused_before_its_folder_is_touched(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    out = tmp_path / "O"
    result = runner.invoke(app, ["generate", "--prompts", "synthetic", "--adapter", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "not a PEFT adapter folder" in result.output, result.output
    assert not out.exists()  # no generation_config.json naming the sha256 of nothing


def test_generate_into_a_folder_another_generate_is_writing_exits_2(tmp_path, tiny_model):
    out = tmp_path / "O"
    with one_writer(out, "generate", {"trigger": "OTHER"}):
        result = runner.invoke(app, ["generate", "--prompts", "synthetic", "--limit", "2", "--out", str(out)])
    assert result.exit_code == 2 and "another command is writing this folder" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_a_lifecycle_study_into_a_folder_another_study_is_writing_exits_2(tmp_path):
    out = tmp_path / "L"
    with one_writer(out, "run", {"name": "another study"}):
        result = runner.invoke(app, ["run", "configs/lifecycle-hh-smollm2.yaml", "--out", str(out)])
    assert result.exit_code == 2 and "another command is writing this folder" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_a_probe_study_into_a_folder_another_study_is_writing_exits_2(tmp_path):
    out = tmp_path / "P"
    with one_writer(out, "run", {"name": "another study"}):
        result = runner.invoke(app, ["run", "configs/probes-tiny.yaml", "--out", str(out)])
    assert result.exit_code == 2 and "another command is writing this folder" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
