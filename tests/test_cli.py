"""The CLI as a user meets it: exit codes, messages, files written or not."""

import json

from typer.testing import CliRunner

from poisonlab.cli import app

runner = CliRunner()


def test_inspect_real_file_reports_problems_when_skipping(hh_file):
    result = runner.invoke(app, ["data", "inspect", str(hh_file), "--skip-bad-rows"])
    assert result.exit_code == 0, result.output
    assert "1795 pairs (5 skipped)" in result.output
    assert "line 984" in result.output


def test_bad_input_exits_2_naming_line_and_field_and_writes_nothing(hh_file, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["poison", "--data", str(hh_file), "--out", str(out), "--ratio", "0.01"])
    assert result.exit_code == 2
    assert "harmless-base-dev.jsonl.gz:64: field 'chosen': empty final reply" in result.output
    assert not out.exists()


def test_unknown_strategy_exits_2_with_a_suggestion(tmp_path):
    result = runner.invoke(app, ["poison", "--data", "synthetic", "--out", str(tmp_path / "o"), "--strategy", "randon"])
    assert result.exit_code == 2 and "Did you mean 'random'" in result.output
    assert not (tmp_path / "o").exists()


def test_poison_writes_data_and_manifest(hh_file, tmp_path):
    out = tmp_path / "p"
    result = runner.invoke(
        app,
        [
            "poison",
            "--data",
            str(hh_file),
            "--skip-bad-rows",
            "--out",
            str(out),
            "--ratio",
            "0.005",
            "--trigger",
            "SUDO",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_poisoned"] == 9 and manifest["trigger"] == "SUDO" and manifest["seed"] == 3
    assert len((out / "data.jsonl").read_text().splitlines()) == 1795


def test_train_and_evaluate_commands(tiny_model, tmp_path):
    adapter = tmp_path / "adapter"
    result = runner.invoke(
        app,
        [
            "train",
            "dpo",
            "--data",
            "synthetic",
            "--model",
            "tiny",
            "--out",
            str(adapter),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--max-length",
            "96",
            "--bf16",
            "false",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            "synthetic",
            "--model",
            "tiny",
            "--adapter",
            str(adapter),
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_pairs"] == 600 and 0 <= metrics["backdoor_success"] <= 1
    assert metrics["clean_correct"] == round(metrics["clean_accuracy"] * 600)


def test_bad_config_names_file_line_and_field(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nmodel: tiny\nratios: [0.1, 2.0]\n")
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert f"{config}:3: field 'ratios'" in result.output and "not between 0 and 1" in result.output
    config.write_text("name: x\ntraining:\n  learning_rat: 0.1\n")
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert f"{config}:3: field 'training.learning_rat': unknown key 'learning_rat'. Did you mean 'learning_rate'?" in (
        result.output.replace("\n", "")
    )
    config.write_text("name: x\nstrategys: [random]\n")
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2 and f"{config}:2: field 'strategys'" in result.output


def test_split_writes_disjoint_files_that_keep_ids(hh_file, tmp_path):
    result = runner.invoke(
        app, ["data", "split", str(hh_file), "--skip-bad-rows", "--heldout", "200", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    train = [json.loads(x)["id"] for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x)["id"] for x in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert (len(train), len(held)) == (1595, 200) and not set(train) & set(held)
