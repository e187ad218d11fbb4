"""Hostile files: pickled weights, remote code, evaluated configs and path escapes are refused, and nothing runs."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.errors import InputError

runner = CliRunner()


class _Payload:
    """Unpickling this runs ``touch CANARY``: what a hostile ``pytorch_model.bin`` can do."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return os.system, (f"touch {self.canary}",)


def _plant(folder: Path, name: str, canary: Path) -> Path:
    path = folder / name
    path.write_bytes(pickle.dumps({"weight": _Payload(canary)}))
    return path


def test_the_planted_payload_is_live(tmp_path):
    """The canary works: a plain unpickle of the planted file does create the file, so the tests below can fail."""
    canary = tmp_path / "ran"
    path = _plant(tmp_path, "pytorch_model.bin", canary)
    pickle.loads(path.read_bytes())
    assert canary.exists()


@pytest.fixture
def hostile_model(tiny_model, tmp_path) -> tuple[Path, Path, Path]:
    """The tiny model's config and tokenizer, with a malicious pickle as its weights (no safetensors)."""
    from poisonlab.models import resolve_model

    folder = tmp_path / "model"
    folder.mkdir()
    for source in Path(resolve_model(tiny_model)).iterdir():
        if not source.name.endswith(".safetensors"):
            shutil.copy(source, folder / source.name)
    canary = tmp_path / "payload-ran"
    return folder, _plant(folder, "pytorch_model.bin", canary), canary


def test_a_pickled_model_is_refused_naming_the_file_and_its_payload_never_runs(hostile_model, tmp_path):
    from poisonlab.models import load_model, load_tokenizer

    folder, planted, canary = hostile_model
    for load in (load_model, load_tokenizer):
        with pytest.raises(InputError, match="pickle") as caught:
            load(str(folder))
        assert caught.value.path == str(planted)
    out = tmp_path / "metrics"
    result = runner.invoke(app, ["evaluate", "--data", "synthetic", "--out", str(out), "--model", str(folder)])
    assert result.exit_code == 2, result.output
    assert "pytorch_model.bin" in result.output and "Traceback" not in result.output
    assert not canary.exists() and not out.exists()


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "x.pkl", "last.ckpt"])
def test_every_pickle_suffix_is_refused_even_beside_safetensors(tiny_model, tmp_path, name):
    from poisonlab.models import resolve_model

    folder = tmp_path / "model"
    shutil.copytree(resolve_model(tiny_model), folder)
    planted = _plant(folder, name, tmp_path / "ran")
    with pytest.raises(InputError) as caught:
        resolve_model(str(folder))
    assert caught.value.path == str(planted)
    assert not (tmp_path / "ran").exists()


def test_a_model_asking_for_its_own_code_is_refused_and_the_code_never_runs(tiny_model, tmp_path):
    from poisonlab.models import load_tokenizer, resolve_model

    folder = tmp_path / "model"
    shutil.copytree(resolve_model(tiny_model), folder)
    canary = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(canary)!r}).touch()\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="never runs code") as caught:
        load_tokenizer(str(folder))
    assert caught.value.field == "auto_map"
    assert not canary.exists()


def _adapter_folder(tmp_path: Path) -> Path:
    from peft import LoraConfig

    folder = tmp_path / "adapter"
    LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM").save_pretrained(folder)
    return folder


def test_a_pickled_adapter_is_refused_naming_the_file_and_its_payload_never_runs(tiny_model, tmp_path):
    from poisonlab.models import load_adapter, load_model

    folder = _adapter_folder(tmp_path)
    canary = tmp_path / "payload-ran"
    planted = _plant(folder, "adapter_model.bin", canary)
    with pytest.raises(InputError, match="pickle") as caught:
        load_adapter(load_model(tiny_model), folder)
    assert caught.value.path == str(planted)
    for command in (["evaluate", "--out", str(tmp_path / "m")], ["scan", "--out", str(tmp_path / "s")]):
        result = runner.invoke(app, [*command, "--data", "synthetic", "--adapter", str(folder)])
        assert result.exit_code == 2, result.output
        assert "adapter_model.bin" in result.output and "pickle" in result.output
    assert not canary.exists()
    assert not (tmp_path / "m").exists() and not (tmp_path / "s").exists()


def test_an_adapter_without_safetensors_weights_is_refused(tmp_path):
    from poisonlab.models import check_adapter_folder

    with pytest.raises(InputError, match="no safetensors"):
        check_adapter_folder(_adapter_folder(tmp_path))


def test_loaders_never_trust_remote_code():
    """Every Auto*.from_pretrained in the package passes trust_remote_code=False (the GGUF conversion reads a
    fixed file from an installed wheel)."""
    source = Path(__file__).resolve().parents[1] / "src" / "poisonlab"
    calls = 0
    for path in source.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if node.func.attr != "from_pretrained" or not (isinstance(owner, ast.Name) and owner.id.startswith("Auto")):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            if "gguf_file" in keywords:
                continue
            calls += 1
            trust = keywords.get("trust_remote_code")
            assert isinstance(trust, ast.Constant) and trust.value is False, f"{path}:{node.lineno}"
    assert calls >= 4


def test_a_config_is_data_never_evaluated(tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig

    canary = tmp_path / "yaml-ran"
    config = tmp_path / "study.yaml"
    config.write_text(f"name: x\nseed: !!python/object/apply:os.system ['touch {canary}']\n")
    with pytest.raises(InputError, match="invalid YAML") as caught:
        load_config(ExperimentConfig, config)
    assert caught.value.path == str(config)
    config.write_text("name: !!python/object:pathlib.Path {}\n")
    with pytest.raises(InputError):
        load_config(ExperimentConfig, config)
    assert not canary.exists()


@pytest.mark.parametrize("name", ["../../etc", "/etc/poisonlab", "a/b", "..", ".hidden", "x\\..\\y"])
def test_a_study_name_cannot_escape_the_runs_folder(tmp_path, name):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig

    config = tmp_path / "study.yaml"
    config.write_text(json.dumps({"name": name}))
    with pytest.raises(InputError, match="plain folder name") as caught:
        load_config(ExperimentConfig, config)
    assert caught.value.field == "name" and caught.value.line == 1
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2 and "plain folder name" in result.output


def test_a_link_planted_in_the_study_folder_cannot_redirect_writes(tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, run_experiment

    study, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    (study / "runs").mkdir(parents=True)
    elsewhere.mkdir()
    (study / "runs" / "clean").symlink_to(elsewhere, target_is_directory=True)
    config = load_config(ExperimentConfig, None, [f"out={study}", "max_train_pairs=8", "max_heldout_pairs=4"])
    # the study's own folder (its config.yaml), so it is resumed rather than refused as another command's
    (study / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    with pytest.raises(InputError, match="outside the study folder") as caught:
        run_experiment(config, progress=False)
    assert "is a link to" in str(caught.value)
    assert list(elsewhere.iterdir()) == []


def test_inside_accepts_the_folder_and_its_children_only(tmp_path):
    from poisonlab.io import inside

    assert inside(tmp_path, tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert inside(tmp_path, tmp_path) == tmp_path
    for escape in (tmp_path / ".." / "x", Path("/etc"), tmp_path / "a" / ".." / ".." / "y"):
        with pytest.raises(InputError, match="outside"):
            inside(tmp_path, escape)
