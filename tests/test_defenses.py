"""Detectors: the formulas on planted signals, then a real scan of poisoned data on `tiny`, API and CLI."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from poisonlab.attacks import poison_dataset, write_poisoned
from poisonlab.cli import app
from poisonlab.data import synthetic_pairs
from poisonlab.defenses import DETECTORS, DefenseConfig, detection_metrics, scan, spectral_signature_scores, write_scan
from poisonlab.defenses.detectors import Detection
from poisonlab.defenses.detectors.clustering import two_clusters
from poisonlab.errors import InputError
from poisonlab.training import DPOTrainingConfig, train_dpo

SMALL = dict(epochs=2, batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False)


def planted(n: int = 200, n_poison: int = 10, dim: int = 16, shift: float = 15.0) -> np.ndarray:
    """Gaussian rows around a shared component (as hidden states have); the last ``n_poison`` moved along
    another direction, as a backdoor's shared feature would move them."""
    rows = np.random.default_rng(0).normal(size=(n, dim))
    rows[:, 1] += 20.0
    rows[-n_poison:, 0] += shift
    return rows


def test_spectral_signature_ranks_the_planted_rows_first():
    scores = spectral_signature_scores(planted())
    assert set(np.argsort(-scores)[:10]) == set(range(190, 200))


def test_clustering_isolates_the_planted_cluster_and_ranks_it_first():
    labels, scores, small = two_clusters(planted(), DefenseConfig(n_dims=4), seed=0)
    assert set(np.flatnonzero(labels == small)) == set(range(190, 200))
    assert set(np.argsort(-scores)[:10]) == set(range(190, 200))


def test_detection_metrics_count_what_was_flagged():
    detection = Detection("x", {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.0}, ["a", "b"])
    metrics = detection_metrics(detection, ["a", "c"])
    assert (metrics.true_positives, metrics.precision, metrics.recall) == (1, 0.5, 0.5)
    assert metrics.auroc == pytest.approx(0.75)  # of the 4 poison-clean pairings, 3 are ranked right
    assert detection_metrics(detection, []).auroc is None and detection_metrics(detection, []).recall is None


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """160 synthetic pairs, 10% label-flipped at random, written with their manifest."""
    result = poison_dataset(synthetic_pairs(n=160), "random", "label-flip", ratio=0.1, seed=0)
    folder = write_poisoned(result, tmp_path_factory.mktemp("poison"), None)
    return result, folder


@pytest.mark.numeric
def test_scan_finds_flipped_pairs_by_loss_and_writes_what_each_detector_keeps(tiny_model, flipped, tmp_path):
    result, folder = flipped
    poisoned = result.manifest["poisoned_ids"]
    specs = ["loss", "spectral-signature", "clustering:reply-embeddings"]
    config = DefenseConfig(expected_share=0.1, projection_dim=256)
    scanned = scan(
        result.dataset, specs, "tiny", DPOTrainingConfig(**SMALL), config, poisoned_ids=poisoned, progress=False
    )
    assert [d.detector for d in scanned.detections] == specs
    loss = scanned.metrics["loss"]
    assert loss.n_flagged == config.budget(160) == 24 and loss.n_poison == 16
    assert loss.auroc > 0.8  # a flipped pair fights the clean majority: the model fits it worst
    for spec in specs:  # every pair scored, finite
        assert len(scanned.detections[specs.index(spec)].scores) == 160
        assert np.isfinite(list(scanned.detections[specs.index(spec)].scores.values())).all()

    write_scan(scanned, tmp_path, manifest=folder / "manifest.json")
    report = json.loads((tmp_path / "scan.json").read_text())
    flagged = set(report["detectors"][0]["flagged"])
    kept = [json.loads(line)["id"] for line in (tmp_path / "kept-loss.jsonl").read_text().splitlines()]
    assert len(kept) == 136 and not flagged & set(kept)
    assert (tmp_path / "kept-clustering-reply-embeddings.jsonl").exists()
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert len(rows) == 160 and list(rows[0]) == ["id", *specs]  # scores only: the truth is not beside them
    judged = json.loads((tmp_path / "detection.json").read_text())
    assert judged["n_poison"] == 16 and judged["detectors"]["loss"]["auroc"] == pytest.approx(loss.auroc)


def test_every_registered_detector_scores_every_pair(tiny_model, flipped):
    result, _ = flipped
    names = DETECTORS.names()
    scanned = scan(
        result.dataset, names, "tiny", DPOTrainingConfig(**SMALL), DefenseConfig(projection_dim=64), progress=False
    )
    assert scanned.metrics is None and all(len(d.scores) == 160 for d in scanned.detections)


def test_cli_scan_reads_the_adapter_and_the_manifest_beside_the_data(tiny_model, flipped, tmp_path):
    result, folder = flipped
    adapter = tmp_path / "adapter"
    train_dpo("tiny", result.dataset, DPOTrainingConfig(**SMALL, seed=3), adapter, progress=False)
    out = tmp_path / "scan"
    args = ["scan", "--data", str(folder / "data.jsonl"), "--out", str(out), "--adapter", str(adapter)]
    run = CliRunner().invoke(app, [*args, "--detector", "loss", "--expected-share", "0.1"])
    assert run.exit_code == 0, run.output
    assert "/16" in run.output and "AUROC" in run.output  # judged against the manifest's 16 poisoned pairs
    assert json.loads((out / "detection.json").read_text())["detectors"]["loss"]["n_poison"] == 16


def test_scan_refuses_bad_input_before_writing(flipped, tmp_path):
    _, folder = flipped
    runner, out = CliRunner(), tmp_path / "none"
    base = ["scan", "--data", str(folder / "data.jsonl"), "--out", str(out)]
    unknown = runner.invoke(app, [*base, "--detector", "spectral"])
    assert unknown.exit_code == 2 and "Did you mean 'spectral-signature'" in unknown.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"poisoned_ids": [], "output_sha256": "0" * 64}))
    wrong = runner.invoke(app, [*base, "--manifest", str(other)])
    assert wrong.exit_code == 2 and "output_sha256" in wrong.output
    share = runner.invoke(app, [*base, "--expected-share", "2"])
    assert share.exit_code == 2 and "--expected-share" in share.output
    assert not out.exists()
    with pytest.raises(InputError, match="detector feature"):
        scan(synthetic_pairs(n=4), ["loss:pixels"])
