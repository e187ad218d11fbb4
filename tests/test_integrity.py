"""poisonlab verify: a folder is what its records say, or the file that differs is named."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs
from poisonlab.integrity import verify_folder

runner = CliRunner()


def _flip_one_byte(path: Path, at: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_poison_folder_verifies_and_one_changed_byte_is_named(tmp_path):
    source = tmp_path / "in.jsonl"
    from poisonlab.data import write_pairs

    write_pairs(synthetic_pairs(n=40), source)
    out = tmp_path / "poisoned"
    made = runner.invoke(app, ["poison", "--data", str(source), "--out", str(out), "--ratio", "0.1"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, ["verify", str(out), "--input", str(source)])
    assert result.exit_code == 0, result.output
    assert "ok: 4 files match" in result.output  # data.jsonl (twice), manifest.json and the input named

    _flip_one_byte(out / "data.jsonl")
    result = runner.invoke(app, ["verify", str(out), "--input", str(source)])
    assert result.exit_code == 1
    assert "DIFFERS data.jsonl" in result.output and "manifest.json" in result.output
    assert str(source) not in result.output.split("DIFFERS")[1]  # the input still matches

    _flip_one_byte(out / "data.jsonl")  # back as it was; now the input changes
    _flip_one_byte(source)
    failed = verify_folder(out, [source]).failed
    assert [Path(c.path).name for c in failed] == ["in.jsonl"]


def _scan_folder(tmp_path: Path) -> Path:
    from poisonlab.defenses import write_scan
    from poisonlab.defenses.detectors import Detection
    from poisonlab.defenses.scan import ScanResult

    dataset = synthetic_pairs(n=20)
    scores = {pid: float(i) for i, pid in enumerate(dataset.ids)}
    detection = Detection("loss", scores, dataset.ids[-3:])
    return write_scan(ScanResult(dataset, [detection], None), tmp_path / "scan")


def test_a_scan_folder_verifies_and_a_changed_kept_file_or_scores_file_is_named(tmp_path):
    folder = _scan_folder(tmp_path)
    assert verify_folder(folder).ok and len(verify_folder(folder).checks) == 2
    _flip_one_byte(folder / "scores.csv")
    assert [c.path for c in verify_folder(folder).failed] == ["scores.csv"]
    (folder / "kept-loss.jsonl").unlink()
    failed = {c.path: c.problem for c in verify_folder(folder).failed}
    assert failed == {"scores.csv": None, "kept-loss.jsonl": "missing"}


def test_a_record_cannot_make_verify_read_outside_its_folder(tmp_path):
    folder = _scan_folder(tmp_path)
    (tmp_path / "secret").write_text("not yours")
    report = json.loads((folder / "scan.json").read_text())
    report["detectors"][0]["kept_file"] = "../secret"
    (folder / "scan.json").write_text(json.dumps(report))
    failed = verify_folder(folder).failed
    assert len(failed) == 1 and failed[0].problem == "outside the record's folder: not read"
    assert failed[0].actual is None


def test_a_finished_adapter_records_its_files_and_a_changed_weight_is_named(tiny_model, tmp_path):
    from poisonlab.training import DPOTrainingConfig, train_dpo

    config = DPOTrainingConfig(epochs=1, batch_size=8, micro_batch_size=8, max_length=64, max_reply_length=32)
    train_dpo(tiny_model, synthetic_pairs(n=16), config.model_copy(update={"bf16": False}), tmp_path / "a", False)
    recorded = json.loads((tmp_path / "a" / "checksums.json").read_text())["files"]
    assert {"adapter_model.safetensors", "adapter_config.json", "training_done.json"} <= set(recorded)
    assert runner.invoke(app, ["verify", str(tmp_path / "a")]).exit_code == 0
    _flip_one_byte(tmp_path / "a" / "adapter_model.safetensors")
    result = runner.invoke(app, ["verify", str(tmp_path / "a")])
    assert result.exit_code == 1 and "DIFFERS adapter_model.safetensors" in result.output


def test_a_folder_without_records_is_an_input_error(tmp_path):
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to verify" in result.output


def _poisoned(tmp_path: Path) -> tuple[Path, Path]:
    from poisonlab.data import write_pairs

    source, out = tmp_path / "in.jsonl", tmp_path / "poisoned"
    write_pairs(synthetic_pairs(n=40), source)
    made = runner.invoke(app, ["poison", "--data", str(source), "--out", str(out), "--ratio", "0.1"])
    assert made.exit_code == 0, made.output
    return source, out


def test_verify_never_reads_the_callers_working_directory_or_a_path_a_manifest_names(tmp_path, monkeypatch):
    _, out = _poisoned(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "in.jsonl").write_text("another file of that name\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["source"] = "in.jsonl"  # relative: once read against the caller's folder
    (out / "manifest.json").write_text(json.dumps(manifest))
    from poisonlab.integrity import record_checksums

    record_checksums(out)  # the edit made consistent, so only the input's handling is tested
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 0 and "DIFFERS" not in result.output, result.output
    assert "not read" in result.output

    hostname = Path("/etc/hostname")
    if hostname.is_file():
        from poisonlab.io import sha256_file

        manifest.update(source=str(hostname), input_sha256=sha256_file(hostname))
        (out / "manifest.json").write_text(json.dumps(manifest))
        record_checksums(out)
        checked = verify_folder(out)
        assert all(c.path != str(hostname) for c in checked.checks)  # never hashed
        assert any("/etc/hostname" in note and "not read" in note for note in checked.notes)


def test_an_edited_manifest_and_an_added_file_in_a_poison_folder_are_named(tmp_path):
    _, out = _poisoned(tmp_path)
    assert verify_folder(out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["trigger"] = "SomethingElse"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "DIFFERS manifest.json" in result.output, result.output
    (out / "extra.txt").write_text("added")
    failed = {c.path: c.problem for c in verify_folder(out).failed}
    assert failed["extra.txt"] == "not in the record: a file added since"


def test_a_studys_results_files_are_verified(tiny_study):
    from poisonlab.integrity import verify_folder as verify

    assert verify(tiny_study).ok
    results = tiny_study / "results.csv"
    before = results.read_bytes()
    try:
        results.write_bytes(before.replace(b"0.", b"1.", 1))
        result = runner.invoke(app, ["verify", str(tiny_study)])
        assert result.exit_code == 1 and "DIFFERS results.csv" in result.output, result.output
    finally:
        results.write_bytes(before)
