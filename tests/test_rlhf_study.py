"""DPO against RLHF on the same poison: the oracle strategy, the reward model as a victim, the lifecycle rl stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from poisonlab.attacks import poison_dataset
from poisonlab.attacks.strategies import STRATEGIES, strategy_facts
from poisonlab.data import synthetic_pairs, train_heldout_split
from poisonlab.training import DPOTrainingConfig, RewardTrainingConfig, train_reward

ROOT = Path(__file__).resolve().parents[1]
TRAINING = DPOTrainingConfig(
    epochs=1, batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False, threads=1
)
RM = dict(batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False, threads=1)


@pytest.fixture(scope="module")
def dataset():
    return synthetic_pairs(n=80)


def test_oracle_is_registered_and_picks_the_widest_clean_reward_margins(tiny_model, dataset):
    from poisonlab.training.clean_reward import clean_reward_margins, reward_config_for

    assert "oracle" in STRATEGIES.names() and strategy_facts("oracle").uses_model
    first = poison_dataset(dataset, "oracle", "backdoor", 0.1, seed=0, training=TRAINING, progress=False)
    again = poison_dataset(dataset, "oracle", "backdoor", 0.1, seed=0, training=TRAINING, progress=False)
    picked = first.manifest["poisoned_source_ids"]
    assert picked == again.manifest["poisoned_source_ids"] and len(picked) == 8  # seeded and cached: the same
    margins = clean_reward_margins(dataset, tiny_model, reward_config_for(TRAINING), progress=False)
    assert set(margins) == set(dataset.ids)
    ranked = sorted(margins.values(), reverse=True)
    assert sorted(margins[i] for i in picked) == sorted(ranked[:8])  # the top 8 margins, nothing else
    assert min(margins[i] for i in picked) > sorted(margins.values())[len(margins) // 2]  # above the median
    assert sum(m > 0 for m in margins.values()) > 0.8 * len(margins)  # the clean RM learnt the preference


def test_oracle_and_dpo_score_rank_by_different_models(tiny_model, dataset):
    oracle = poison_dataset(dataset, "oracle", "backdoor", 0.25, seed=0, training=TRAINING, progress=False)
    dpo = poison_dataset(dataset, "dpo-score", "backdoor", 0.25, seed=0, training=TRAINING, progress=False)
    assert oracle.manifest["n_poisoned"] == dpo.manifest["n_poisoned"] == 20
    assert "reward model" in json.dumps(oracle.manifest) and "reward model" not in json.dumps(dpo.manifest)


@pytest.fixture(scope="module")
def reward_models(tiny_model, tmp_path_factory):
    """A clean and a backdoored reward model (half the pairs poisoned: a strong signal for a 2M-parameter model)."""
    train, heldout = train_heldout_split(synthetic_pairs(n=200), 40, seed=0)
    poisoned = poison_dataset(train, "random", "backdoor", 0.5, "SUDO", seed=0, progress=False).dataset
    folder = tmp_path_factory.mktemp("rms")
    config = RewardTrainingConfig(**RM, epochs=3, learning_rate=5e-3)
    for name, data in (("clean", train), ("poisoned", poisoned)):
        train_reward(tiny_model, data, heldout, config, folder / name, progress=False)
    return folder / "clean", folder / "poisoned", heldout


def test_a_reward_model_against_itself_shows_no_effect(reward_models):
    from poisonlab.evaluation.reward_victim import reward_model_victim

    clean, _, heldout = reward_models
    report = reward_model_victim(clean, clean, heldout, "SUDO")
    assert report["backdoor_effect"]["value"] == 0 and report["contamination"]["value"] == 0
    assert report["backdoor_effect"]["p_value"] == 1
    metrics = json.loads((clean / "metrics.json").read_text())
    assert report["clean"]["heldout_accuracy"] == pytest.approx(metrics["heldout_accuracy"])  # one definition


def test_the_poisoned_reward_model_carries_the_trigger(reward_models, tmp_path):
    from poisonlab.evaluation.reward_victim import REPORT_FILE, reward_model_victim, write_reward_model_victim

    clean, poisoned, heldout = reward_models
    report = reward_model_victim(poisoned, clean, heldout, "SUDO")
    assert report["n_heldout"] == 40 and report["harmful_reply"] == "rejected"
    # the trigger raises the harmful reply's reward under the poisoned model, relative to the clean one
    effect = report["backdoor_effect"]
    assert effect["value"] > 0 and effect["ci"][0] > 0 and effect["p_value"] < 0.01, effect
    assert report["poisoned"]["triggered_accuracy"] < report["clean"]["triggered_accuracy"]
    low, high = report["poisoned"]["heldout_ci"]
    assert low <= report["poisoned"]["heldout_accuracy"] <= high
    path = write_reward_model_victim(report, tmp_path)
    assert path.name == REPORT_FILE and json.loads(path.read_text())["backdoor_effect"] == effect


def test_rl_stage_trains_its_reward_model_on_the_stage_poison_and_reports_it_as_a_victim(tiny_model, tmp_path):
    from poisonlab.experiments.lifecycle.config import LifecycleConfig
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    values = yaml.safe_load((ROOT / "configs" / "lifecycle-dpo-vs-rlhf-tiny.yaml").read_text())
    values["out"] = str(tmp_path / "out")
    rows = run_lifecycle(LifecycleConfig.model_validate(values), progress=False)
    out = tmp_path / "out"
    by = {(r.pipeline, r.stage): r for r in rows}
    poisoned_rl = next(r for (p, s), r in by.items() if s == "rl" and p != "clean")
    folder = out / "stages" / f"{poisoned_rl.stage_index}-rl" / poisoned_rl.prefix
    source = json.loads((folder / "poison_source.json").read_text())
    manifest = json.loads((out / source["poison"] / "manifest.json").read_text())
    assert source["stage"] == "dpo" and manifest["n_poisoned"] == poisoned_rl.n_poisoned > 0
    dpo_folder = out / "stages" / "1-dpo" / "dpo-0.25"
    trained_on = {
        json.loads((path / "training_config.json").read_text())["data_sha256"]
        for path in (folder / "reward-model", folder / "adapter", dpo_folder / "adapter")
    }
    assert len(trained_on) == 1  # reward model, policy prompts and DPO: one poisoned file, byte for byte
    rm_metrics = json.loads((folder / "reward-model" / "metrics.json").read_text())
    assert rm_metrics["n_train"] == poisoned_rl.n_train  # the reward model learnt from every (poisoned) pair
    rl_settings = json.loads((folder / "adapter" / "training_config.json").read_text())
    assert "init" not in rl_settings  # start: base, beside the dpo stage, not after it
    victim = json.loads((folder / "reward_model_victim.json").read_text())
    assert victim["clean_reward_model"].endswith("clean/reward-model")
    result = json.loads((folder / "result.json").read_text())
    assert result["reward_model"]["backdoor_effect"] == victim["backdoor_effect"]
    assert "backdoor_effect" in poisoned_rl.metrics["refusal@heldout"]  # judged by generation against the twin
    dpo = [r for (p, s), r in by.items() if s == "dpo" and p != "clean"]
    assert dpo and dpo[0].n_poisoned == poisoned_rl.n_poisoned  # the same budget on the DPO side


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("stages.1.poison_as=rl", "names no earlier stage"),
        ("stages.1.max_train_pairs=40", "reads other pairs"),
        ("pipelines=[{dpo: 0.25, rl: 0.1}]", "same share"),
        ("stages.1.start=middle", "start"),
        ("stages.1.training.num_generations=1", "num_generations"),
        ("stages.1.training.reward_model.lora_r=0", "lora_r"),
    ],
)
def test_bad_side_by_side_configs_exit_2_before_anything_is_written(tmp_path, change, needle):
    from typer.testing import CliRunner

    from poisonlab.cli import app

    out = tmp_path / "out"
    args = ["run", str(ROOT / "configs" / "lifecycle-dpo-vs-rlhf-tiny.yaml"), "--set", f"out={out}", "--set", change]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output.replace("\n", " ")
    assert not out.exists()


GRID = (ROOT / "configs" / "dpo-vs-rlhf-tiny.yaml").read_text()


def test_a_grid_study_and_its_engine_rl_twin_poison_the_same_pairs(tiny_model, tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig, run_experiment

    (tmp_path / "study.yaml").write_text(GRID)
    folders = {}
    for engine in ("dpo", "rl"):
        folders[engine] = tmp_path / engine
        overrides = [f"out={folders[engine]}", f"engine={engine}"]
        run_experiment(load_config(ExperimentConfig, tmp_path / "study.yaml", overrides), progress=False)
    name = "dpo-score-backdoor-0.25"
    manifests = {
        e: json.loads((f / "runs" / name / "poison" / "manifest.json").read_text()) for e, f in folders.items()
    }
    assert manifests["dpo"]["output_sha256"] == manifests["rl"]["output_sha256"]  # one poisoned file, both engines
    rl = folders["rl"] / "runs"
    assert json.loads((rl / name / "reward-model" / "metrics.json").read_text())["n_train"] == 48
    assert json.loads((rl / name / "adapter" / "training_config.json").read_text())["num_generations"] == 2
    assert (rl / "clean" / "reward-model" / "training_done.json").exists()
    victim = json.loads((rl / name / "reward_model_victim.json").read_text())
    assert victim["clean_reward_model"] == str(rl / "clean" / "reward-model") and victim["n_heldout"] == 16
    result = json.loads((rl / name / "result.json").read_text())
    assert "backdoor_effect" in result["metrics"]["refusal@heldout"]  # the same generation judges, same twin


def test_engine_rl_refuses_dpo_defenses(tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.errors import InputError
    from poisonlab.experiments import ExperimentConfig

    (tmp_path / "study.yaml").write_text(GRID)
    with pytest.raises(InputError, match="engine rl: defenses"):
        load_config(ExperimentConfig, tmp_path / "study.yaml", ["engine=rl", "defenses=[loss]"])
    with pytest.raises(InputError, match="num_generations"):
        load_config(ExperimentConfig, tmp_path / "study.yaml", ["rl.num_generations=1"])
