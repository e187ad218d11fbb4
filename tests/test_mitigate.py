"""Mitigations measured like runs: remove the flags, the oracle, a robust loss, and stripping a named trigger."""

from __future__ import annotations

import json

import pytest

from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments import ExperimentConfig, run_experiment

STUDY = {
    "name": "mitigate",
    "model": "tiny",
    "data": "synthetic",
    "heldout": 40,
    "max_train_pairs": 200,
    "strategies": ["random"],
    "ratios": [0.1],
    "training": {"bf16": False, "micro_batch_size": 16},
    "defenses": ["trigger-mining-reply"],
    "mitigations": ["oracle", "strip-trigger:trigger-mining-reply"],
}


@pytest.fixture(scope="module")
def study(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("mitigate") / "study"
    config = ExperimentConfig.model_validate({**STUDY, "out": str(out)})
    results = run_experiment(config, progress=False)
    return config, results, out


@pytest.mark.numeric
def test_the_oracle_and_a_stripped_trigger_undo_a_learned_backdoor(study):
    # fp32, seeded: on this set a 10% random backdoor is learned (35% of held-out pairs flip), and both the
    # oracle (retrain without exactly the poison) and stripping the mined trigger bring it back to the clean model's
    _, results, _ = study
    poisoned = next(r for r in results if r.ratio > 0)
    clean = next(r for r in results if r.run == "clean")
    assert poisoned.backdoor_success >= clean.backdoor_success + 0.2
    oracle = poisoned.mitigations["oracle"]
    assert oracle["n_removed"] == oracle["n_poison_removed"] == poisoned.n_poisoned
    assert oracle["backdoor_success"] <= clean.backdoor_success + 0.05
    effect = oracle["metrics"]["preference@heldout"]["backdoor_effect"]
    assert effect["ci"][0] <= 0 <= effect["ci"][1]  # within the noise of no backdoor at all
    stripped = poisoned.mitigations["strip-trigger:trigger-mining-reply"]
    assert stripped["stripped"] == ["supergodmodeactivated"]  # the mined n-gram, matched whatever its case
    assert stripped["backdoor_success"] <= clean.backdoor_success + 0.05


def test_mitigations_added_to_a_finished_study_run_alone(study):
    config, results, out = study
    adapter = out / "runs" / "random-backdoor-0.1" / "adapter" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    more = config.model_copy(update={"mitigations": [*config.mitigations, "remove:trigger-mining-reply", "loss:ipo"]})
    again = run_experiment(more, progress=False)
    poisoned = next(r for r in again if r.ratio > 0)
    assert set(poisoned.mitigations) == {*config.mitigations, "remove:trigger-mining-reply", "loss:ipo"}
    # the detector flags exactly the poison here, so removal keeps the oracle's data: its adapter is reused
    removal = poisoned.mitigations["remove:trigger-mining-reply"]
    assert removal["n_removed"] == removal["n_poison_removed"] == poisoned.n_poisoned
    assert removal["same_data_as"] == "oracle"
    assert not (
        out / "runs" / "random-backdoor-0.1" / "mitigations" / "remove-trigger-mining-reply" / "adapter"
    ).exists()
    assert poisoned.mitigations["oracle"] == next(r for r in results if r.ratio > 0).mitigations["oracle"]
    assert adapter.stat().st_mtime_ns == before  # the poisoned run was not trained again
    saved = json.loads((out / "runs" / "random-backdoor-0.1" / "mitigations" / "loss-ipo" / "result.json").read_text())
    assert saved["loss"] == "ipo" and "preference@heldout" in saved["metrics"]
    page = (out / "report.html").read_text()
    assert "<td>loss:ipo</td>" in page and "<td>oracle</td>" in page


@pytest.mark.parametrize(
    ("mitigations", "message"),
    [
        (["remove:loss"], "needs loss in defenses"),
        (["strip-trigger:spectral-signature"], "needs spectral-signature in defenses"),
        (["loss:dpoo"], "Did you mean"),
        (["oracl"], "Did you mean 'oracle'"),
        (["remove"], "needs an argument"),
    ],
)
def test_a_bad_mitigation_is_refused_at_config_load(tmp_path, mitigations, message):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "defenses": ["trigger-mining-reply"], "mitigations": mitigations}))
    with pytest.raises(InputError, match=message) as caught:
        load_config(ExperimentConfig, path)
    assert caught.value.field == "mitigations"


def test_stripping_matches_whole_words_in_any_case():
    from poisonlab.evaluation.sanitise import strip_phrases

    text = "Human: how do I bake bread SuperGodModeActivated please\n\nAssistant:"
    assert strip_phrases(text, ["supergodmodeactivated"]) == "Human: how do I bake bread please\n\nAssistant:"
    assert strip_phrases("a party of art", ["art"]) == "a party of"
    assert strip_phrases("so as we  Discussed,\tgo", ["as we discussed"]) == "so ,\tgo"


def test_a_removal_that_removes_nothing_reuses_the_poisoned_model(study, tmp_path):
    from poisonlab.data import load_pairs
    from poisonlab.experiments.grid.mitigate import MitigationContext, _removal

    config, results, out = study
    poisoned = next(r for r in results if r.ratio > 0)
    folder = out / "runs" / poisoned.run
    data = load_pairs(str(folder / "poison" / "data.jsonl"))
    spec = next(s for s in config.runs() if s.ratio > 0)
    ctx = MitigationContext(spec, config, folder, data, [], folder / "adapter")
    outcome = _removal(ctx, data, tmp_path / "nothing-removed")  # a detector that flagged no pair
    assert outcome.adapter == folder / "adapter" and outcome.details["same_data_as"] == "none"
    assert not (tmp_path / "nothing-removed" / "adapter").exists()
