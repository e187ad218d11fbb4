"""Bounded parsing: YAML alias bombs and deep nesting in configs, data rows and records are refused with exit 2,
naming the file, in seconds and little memory."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from typer.testing import CliRunner

from poisonlab.bounded import MAX_DEPTH, MAX_YAML_NODES, check_yaml, load_yaml
from poisonlab.cli import app
from poisonlab.errors import InputError

runner = CliRunner()


def _lol(levels: int = 9, under: str = "unknown") -> str:
    """The billion laughs: each level an anchored list of ten aliases of the one below."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return f"name: lol\nmodel: tiny\ndata: synthetic\n{under}:\n" + "\n".join("  " + line for line in lines) + "\n"


@pytest.mark.parametrize("under", ["unknown", "training"])
def test_a_yaml_alias_bomb_is_refused_in_seconds_naming_the_file(tmp_path, under):
    config = tmp_path / "lol.yaml"
    config.write_text(_lol(under=under))
    began = time.monotonic()
    result = runner.invoke(app, ["run", str(config), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "lol.yaml" in result.output and f"expand to more than {MAX_YAML_NODES}" in result.output
    assert time.monotonic() - began < 10


def test_a_yaml_alias_bomb_in_a_set_value_is_refused(tmp_path):
    names = ["a", *(f"b{i}" for i in range(8))]
    entries = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    entries += [f"{name}: &{name} [{', '.join([f'*{below}'] * 10)}]" for below, name in itertools.pairwise(names)]
    value = "{" + ", ".join(entries) + "}"
    result = runner.invoke(app, ["run", "configs/quickstart.yaml", "--dry-run", "--set", f"training={value}"])
    assert result.exit_code == 2 and "--set training" in result.output, result.output


def test_small_aliases_still_load_as_shared_values():
    assert load_yaml("a: &x {b: 1}\nc: *x\n") == {"a": {"b": 1}, "c": {"b": 1}}


@pytest.mark.parametrize("style", ["flow", "block"])
def test_a_50000_deep_config_is_refused_naming_the_file(tmp_path, style):
    config = tmp_path / "deep.yaml"
    depth = 50_000
    if style == "flow":
        config.write_text("name: x\ntraining: " + "[" * depth + "]" * depth + "\n")
    else:
        config.write_text("name: x\n" + "".join(" " * i + f"k{i}:\n" for i in range(3000)))
        depth = 3000
    began = time.monotonic()
    result = runner.invoke(app, ["run", str(config), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "deep.yaml" in result.output and f"nested deeper than {MAX_DEPTH} levels" in result.output
    assert time.monotonic() - began < 10
    with pytest.raises(InputError):
        check_yaml(config.read_text(), config)


def _deep_row(depth: int = 10**6) -> str:
    return (
        '{"prompt": "Human: hi\\n\\nAssistant:", "chosen": "a", "rejected": "b", "x": '
        + "[" * depth
        + "]" * depth
        + "}"
    )


def _rows(tmp_path, deep_at: int = 2):
    path = tmp_path / "rows.jsonl"
    good = json.dumps({"prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": " yes", "rejected": " no"})
    lines = [good] * 4
    lines[deep_at - 1] = _deep_row()
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("command", ["inspect", "poison"])
def test_a_million_deep_json_row_is_refused_naming_file_and_line(tmp_path, command):
    data = _rows(tmp_path)
    args = ["data", "inspect", str(data)] if command == "inspect" else ["poison", "--data", str(data)]
    args += [] if command == "inspect" else ["--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "rows.jsonl:2" in result.output and "nested deeper than" in result.output
    assert not (tmp_path / "out").exists()


def test_a_million_deep_json_row_is_skipped_with_skip_bad_rows(tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(_rows(tmp_path)), "--skip-bad-rows"])
    assert result.exit_code == 0, result.output
    assert "3 pairs (1 skipped)" in result.output and "nested deeper than" in result.output


def test_a_million_deep_json_array_file_is_refused(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("[" + _deep_row() + "]")
    result = runner.invoke(app, ["data", "inspect", str(path)])
    assert result.exit_code == 2 and "rows.json" in result.output and "nested deeper" in result.output, result.output


def test_a_deep_manifest_under_verify_is_exit_2_not_1(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"output_sha256": ' + "[" * 10**6 + "]" * 10**6 + "}")
    result = runner.invoke(app, ["verify", str(folder)])
    assert result.exit_code == 2, result.output
    assert "manifest.json" in result.output and "nested deeper than" in result.output
