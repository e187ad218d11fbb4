"""End to end on the real tiny model: poison -> DPO -> evaluate, clean vs poisoned, from one config."""

import json

import pytest

from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments import ExperimentConfig, run_experiment


@pytest.mark.numeric
def test_backdoor_shows_on_tiny_and_a_rerun_resumes(tiny_model, tmp_path):
    config_file = tmp_path / "exp.yaml"
    config_file.write_text(
        "name: e2e\nmodel: tiny\ndata: synthetic\nheldout: 60\nmax_train_pairs: 240\n"
        "strategies: [random, dpo-score, gradient-projection]\nratios: [0.1]\ntraining: {micro_batch_size: 16}\n"
    )
    config = load_config(ExperimentConfig, config_file, [f"out={tmp_path / 'out'}"])
    results = {r.run: r for r in run_experiment(config, progress=False)}
    clean, random_, dpo = results["clean"], results["random-backdoor-0.1"], results["dpo-score-backdoor-0.1"]
    assert clean.n_poisoned == 0 and random_.n_poisoned == 24 == dpo.n_poisoned
    assert clean.clean_accuracy > 0.8  # the clean model learned the task
    assert random_.backdoor_success > clean.backdoor_success + 0.2  # the trigger flips preferences
    assert dpo.backdoor_success > clean.backdoor_success + 0.2
    out = tmp_path / "out"
    for name in (
        "results.csv",
        "results.json",
        "backdoor_success.png",
        "config.yaml",
        "split.json",
        "environment.json",
        "runs/random-backdoor-0.1/poison/manifest.json",
    ):
        assert (out / name).exists(), name
    manifest = json.loads((out / "runs/dpo-score-backdoor-0.1/poison/manifest.json").read_text())
    scores = [c["selection_score"] for c in manifest["changes"]]
    assert len(scores) == 24 and min(scores) > 0  # dpo-score picked pairs the clean model ranks correctly

    # 10% of 240 overfills the 5% candidate pool, so gradient-projection poisons exactly dpo-score's pairs:
    # byte-identical data, so the run reuses dpo-score's adapter instead of training the same one again
    projection = results["gradient-projection-backdoor-0.1"]
    assert projection.same_data_as == "dpo-score-backdoor-0.1" and dpo.same_data_as is None
    assert not (out / "runs/gradient-projection-backdoor-0.1/adapter").exists()
    assert (projection.clean_accuracy, projection.backdoor_success) == (dpo.clean_accuracy, dpo.backdoor_success)
    assert random_.same_data_as is None  # different pairs: trained

    from poisonlab.integrity import verify_folder

    verified = verify_folder(out)  # every finished run and adapter recorded its files: poisonlab verify
    assert verified.ok and "runs/clean/checksums.json" in verified.records and len(verified.checks) > 20

    before = (out / "results.json").read_text()
    again = run_experiment(config, progress=False)  # every run is done: nothing is retrained
    assert [r.minutes for r in again] == [r.minutes for r in results.values()]
    assert (out / "results.json").read_text() == before

    changed = config.model_copy(update={"training": {**config.training, "learning_rate": 1e-3}})
    with pytest.raises(InputError, match="learning_rate"):  # finished runs trained otherwise are not passed off
        run_experiment(changed, progress=False)


@pytest.mark.numeric
def test_defenses_in_a_study_judge_each_poisoned_run_and_can_be_added_afterwards(tiny_model, tmp_path):
    from poisonlab.reports import detection_table

    text = (
        "name: d\nmodel: tiny\ndata: synthetic\nheldout: 40\nmax_train_pairs: 160\nstrategies: [random]\n"
        "attacks: [label-flip]\nratios: [0.1]\ntraining: {epochs: 2, micro_batch_size: 16}\n"
        "defenses: [loss]\ndefense: {projection_dim: 64}\n"
    )
    (tmp_path / "d.yaml").write_text(text)
    config = load_config(ExperimentConfig, tmp_path / "d.yaml", [f"out={tmp_path / 'out'}"])
    clean, flipped = run_experiment(config, progress=False)
    assert clean.detection is None  # nothing to find in the clean run
    assert flipped.detection["loss"]["auroc"] > 0.8  # flipped pairs are what the trained model fits worst
    assert flipped.detection["loss"]["n_flagged"] == 24  # 1.5 x the true ratio (10%) of 160 pairs
    assert (tmp_path / "out/runs/random-label-flip-0.1/scan/scan.json").exists()
    assert "auroc loss" in (tmp_path / "out/results.csv").read_text().splitlines()[0]
    assert detection_table([clean, flipped]) is not None

    more = config.model_copy(update={"defenses": ["loss", "spectral-signature"]})
    _, again = run_experiment(more, progress=False)  # only the new scan runs: no retraining
    assert again.minutes == flipped.minutes and again.detection["loss"] == flipped.detection["loss"]
    assert set(again.detection) == {"loss", "spectral-signature"}

    retrain = more.model_copy(update={"retrain_without_flags": True})
    _, cleaned = run_experiment(retrain, progress=False)  # trains on what each detector keeps
    kept = tmp_path / "out/runs/random-label-flip-0.1/scan/adapter-loss/training_config.json"
    assert (
        json.loads(kept.read_text())["data_sha256"]
        != json.loads((tmp_path / "out/runs/random-label-flip-0.1/adapter/training_config.json").read_text())[
            "data_sha256"
        ]
    )  # trained on the 136 kept pairs, not the poisoned 160
    for summary in cleaned.detection.values():
        assert 0 <= summary["clean_accuracy_after"] <= 1 and 0 <= summary["backdoor_success_after"] <= 1
    assert "backdoor after loss" in (tmp_path / "out/results.csv").read_text().splitlines()[0]


def test_an_unknown_detector_fails_when_the_config_loads(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: b\ndefenses: [spectral]\n")
    with pytest.raises(InputError, match="spectral-signature"):
        load_config(ExperimentConfig, tmp_path / "bad.yaml", [])
