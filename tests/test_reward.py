import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs, train_heldout_split
from poisonlab.data.dialogue import last_human_span
from poisonlab.errors import InputError
from poisonlab.evaluation.judges import JudgeOptions, make_judge
from poisonlab.training import RewardTrainingConfig, train_reward

SMALL = dict(batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False, threads=1)


@pytest.fixture(scope="module")
def split():
    return train_heldout_split(synthetic_pairs(n=160), 0.25, seed=0)


@pytest.fixture(scope="module")
def reward_dir(tiny_model, split, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rm"
    train_reward(tiny_model, *split, RewardTrainingConfig(**SMALL), out, progress=False)
    return out


def test_reward_model_ranks_held_out_pairs_and_records_its_accuracy(reward_dir):
    metrics = json.loads((reward_dir / "metrics.json").read_text())
    assert metrics["n_heldout"] == 40 and metrics["n_correct"] == round(40 * metrics["heldout_accuracy"])
    assert metrics["heldout_also_in_train"] == 0  # unseen pairs: the accuracy is generalisation, not recall
    # an untrained head ranks ~half right and a sign-flipped loss ~none: 90% on 40 unseen pairs is learning
    assert metrics["heldout_accuracy"] >= 0.9, metrics
    low, high = metrics["heldout_ci"]
    assert 0.7 < low < metrics["heldout_accuracy"] <= high <= 1.0
    assert metrics["heldout_mean_margin"] > 0 and metrics["final_loss"] < 0.69  # below log 2: better than a coin
    files = {p.name for p in reward_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "training_config.json"} <= files
    assert "checkpoint" not in files and not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    saved = load_file(reward_dir / "adapter_model.safetensors")
    assert any("score" in name for name in saved) and any("lora_B" in name for name in saved)


def test_interrupted_reward_training_resumes_to_the_same_weights(
    tiny_model, split, reward_dir, tmp_path, stopped_after_first_checkpoint
):
    config = RewardTrainingConfig(**SMALL, save_steps=5)  # cadence only: the same model as reward_dir's
    with stopped_after_first_checkpoint():
        train_reward(tiny_model, *split, config, tmp_path / "rm", progress=False)
    assert not (tmp_path / "rm" / "metrics.json").exists()  # nothing claims to be finished
    result = train_reward(tiny_model, *split, config, tmp_path / "rm", progress=False)
    assert result.resumed_from_step == 5
    straight = load_file(reward_dir / "adapter_model.safetensors")
    resumed = load_file(tmp_path / "rm" / "adapter_model.safetensors")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor)
    assert json.loads((tmp_path / "rm" / "metrics.json").read_text())["heldout_accuracy"] == pytest.approx(
        json.loads((reward_dir / "metrics.json").read_text())["heldout_accuracy"]
    )


def test_reward_judge_scores_refusals_above_compliance_and_shows_its_accuracy(reward_dir):
    unseen = synthetic_pairs(n=30, seed=99, benign_share=0.0)  # unsafe requests: chosen refuses, rejected complies
    requests = []
    for pair in unseen:
        start, end = last_human_span(pair.prompt)
        requests.append(pair.prompt[start:end].strip())  # the bare request, as generations are judged
    judge = make_judge(f"reward:{reward_dir}", JudgeOptions(batch_size=7))
    assert (judge.kind, judge.harmful_when, judge.value_label) == ("score", "low", "reward")
    refusing = judge.score(requests, [p.chosen for p in unseen], progress=False)
    complying = judge.score(requests, [p.rejected for p in unseen], progress=False)
    assert len(refusing) == len(complying) == 30 and all(isinstance(v, float) for v in refusing)
    assert sum(refusing) / 30 > sum(complying) / 30
    assert sum(r > c for r, c in zip(refusing, complying, strict=True)) >= 24
    facts = judge.describe()
    metrics = json.loads((reward_dir / "metrics.json").read_text())
    assert facts["reward_model"] == str(reward_dir) and facts["heldout_accuracy"] == metrics["heldout_accuracy"]
    assert facts["heldout_ci"] == metrics["heldout_ci"] and facts["n_heldout"] == 40


def test_a_folder_that_is_not_a_reward_model_is_an_input_error(tmp_path, tiny_model):
    with pytest.raises(InputError, match="not a finished reward model") as error:
        make_judge(f"reward:{tmp_path}")
    assert error.value.path == str(tmp_path)
    with pytest.raises(InputError, match="needs an argument"):
        make_judge("reward")
    result = CliRunner().invoke(
        app, ["train", "reward", "--data", "synthetic", "--heldout", "0", "--out", str(tmp_path / "rm")]
    )
    assert result.exit_code == 2 and "held-out size" in result.output
    assert not (tmp_path / "rm").exists()  # nothing half-written
