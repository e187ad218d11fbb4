"""Errors the user or the environment causes (seeds out of range, a read-only or full folder, a damaged
checkpoint) are exit 2 with one message naming the file, and leave nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs, write_pairs
from poisonlab.errors import InputError

runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    return result.output


@pytest.mark.parametrize(
    "args",
    [
        ["poison", "--data", "synthetic", "--seed", "-1"],
        ["poison", "--data", "synthetic", "--seed", str(2**32)],
        ["train", "dpo", "--data", "synthetic", "--seed", "-1"],
        ["run", "configs/quickstart.yaml", "--set", "seed=-1"],
        ["run", "configs/quickstart.yaml", "--set", "seeds=[0,-1]"],
        ["data", "split", "synthetic", "--seed", "-1"],
    ],
)
def test_a_seed_out_of_range_is_exit_2_and_writes_nothing(tmp_path, args):
    out = tmp_path / "out"
    output = _one_line_error(runner.invoke(app, [*args, "--out", str(out)]))
    assert "seed" in output
    assert not out.exists()


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")


@pytest.fixture
def small_mount(tmp_path):
    """A 64 KiB tmpfs (root and a mount namespace that allows it; else the test is skipped)."""
    folder = tmp_path / "mnt"
    _mount_tmpfs(folder, "size=64k,mode=0777")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    write_pairs(synthetic_pairs(n=200), path)
    return path


def test_poison_into_a_read_only_folder_is_exit_2_naming_it(tmp_path, small_mount):
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    out = small_mount / "p"
    output = _one_line_error(runner.invoke(app, ["poison", "--data", str(_data(tmp_path)), "--out", str(out)]))
    assert "read-only" in output and str(out) in output
    assert not out.exists()


def test_poison_onto_a_full_disk_is_exit_2_and_leaves_no_folder(tmp_path, small_mount):
    out = small_mount / "p"
    output = _one_line_error(runner.invoke(app, ["poison", "--data", str(_data(tmp_path)), "--out", str(out)]))
    assert "disk is full" in output
    assert not out.exists() and os.listdir(small_mount) == []  # no temporary file, no empty folder


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_refused_write_is_exit_2_without_a_mount(tmp_path, monkeypatch, code):
    """The same, simulated at the write layer (runs where no tmpfs can be mounted)."""
    import poisonlab.io

    real = os.fdopen

    def refusing(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        handle.close()
        raise OSError(code, os.strerror(code), "simulated")

    data, out = _data(tmp_path), tmp_path / "p"
    monkeypatch.setattr(poisonlab.io.os, "fdopen", refusing)
    output = _one_line_error(runner.invoke(app, ["poison", "--data", str(data), "--out", str(out)]))
    assert ("read-only" if code == errno.EROFS else "disk is full") in output
    assert not out.exists()


def test_a_damaged_checkpoint_is_named_with_the_way_out(tmp_path, monkeypatch):
    import peft
    import torch
    from safetensors.torch import save_file

    from poisonlab.training.loop import _load_checkpoint

    checkpoint = tmp_path / "a" / "checkpoint"
    checkpoint.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, checkpoint / "adapter_model.safetensors")
    (checkpoint / "state.json").write_text(json.dumps({"step": 3, "log": []}))
    (checkpoint / "optimizer.pt").write_bytes(b"not a torch file")
    monkeypatch.setattr(peft, "set_peft_model_state_dict", lambda model, state: None)
    with pytest.raises(InputError) as caught:
        _load_checkpoint(None, None, tmp_path / "a")
    assert caught.value.path == str(checkpoint / "optimizer.pt")
    assert f"remove the folder {checkpoint}" in caught.value.describe()
    (checkpoint / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(InputError) as caught:
        _load_checkpoint(None, None, tmp_path / "a")
    assert caught.value.path == str(checkpoint / "adapter_model.safetensors")
