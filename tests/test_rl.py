"""RLHF against a poisonlab reward model (TRL's RLOO, LoRA policy): seeded, resumable, refusing bad settings."""

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.data import synthetic_pairs, train_heldout_split, write_pairs
from poisonlab.errors import InputError
from poisonlab.training import RewardTrainingConfig, RLTrainingConfig, train_reward, train_rl

RM = dict(batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False, threads=1)
RL = dict(batch_size=4, micro_batch_size=2, num_generations=2, max_new_tokens=12, max_length=96, bf16=False, threads=1)


@pytest.fixture(scope="module")
def data():
    return train_heldout_split(synthetic_pairs(n=120), 0.25, seed=0)


@pytest.fixture(scope="module")
def reward_dir(tiny_model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "rm"
    train_reward(tiny_model, *data, RewardTrainingConfig(**RM), out, progress=False)
    return out


@pytest.fixture(scope="module")
def prompts(data):
    return data[0].subset(data[0].ids[:12])  # 12 distinct prompts: 3 steps of 4


@pytest.fixture(scope="module")
def straight(tiny_model, prompts, reward_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "straight"
    result = train_rl(tiny_model, prompts, reward_dir, RLTrainingConfig(**RL), out, progress=False)
    return out, result


def test_rl_trains_a_peft_adapter_and_logs_rewards_and_the_time_split(straight):
    out, result = straight
    assert result.steps == 3 and result.resumed_from_step == 0
    log = json.loads((out / "training_log.json").read_text())
    assert [row["step"] for row in log] == [1, 2, 3]
    assert len({row["reward"] for row in log}) == 3  # the reward model scored fresh samples each step
    for row in log:
        assert 0 < row["generation_seconds"] < row["seconds"] and 0 < row["reward_seconds"] < row["seconds"]
    settings = json.loads((out / "training_config.json").read_text())
    assert settings["num_generations"] == 2 and len(settings["reward_model_sha256"]) == 64
    files = {p.name for p in out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "training_done.json"} <= files
    assert "rl-checkpoints" not in files
    weights = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in name and tensor.abs().max() > 0 for name, tensor in weights.items())  # it moved


def test_same_seed_same_adapter_bytes_other_seed_other_samples(tiny_model, prompts, reward_dir, straight, tmp_path):
    out, _ = straight
    again = train_rl(tiny_model, prompts, reward_dir, RLTrainingConfig(**RL), tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "adapter_model.safetensors").read_bytes() == (
        out / "adapter_model.safetensors"
    ).read_bytes()
    first = json.loads((out / "training_log.json").read_text())
    assert [r["reward"] for r in json.loads((tmp_path / "again" / "training_log.json").read_text())] == [
        r["reward"] for r in first
    ]
    assert again.steps == 3
    other = RLTrainingConfig(**{**RL, "seed": 1})
    train_rl(tiny_model, prompts, reward_dir, other, tmp_path / "other", progress=False)
    assert [r["reward"] for r in json.loads((tmp_path / "other" / "training_log.json").read_text())] != [
        r["reward"] for r in first
    ]


def test_interrupted_rl_resumes_to_the_same_adapter(tiny_model, prompts, reward_dir, straight, tmp_path, monkeypatch):
    from trl import RLOOTrainer

    real_save = RLOOTrainer._save_checkpoint

    def save_then_stop(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        raise KeyboardInterrupt  # as a kill right after the first checkpoint

    config = RLTrainingConfig(**{**RL, "save_steps": 1})  # cadence only: the same run as `straight`
    monkeypatch.setattr(RLOOTrainer, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_rl(tiny_model, prompts, reward_dir, config, tmp_path / "rl", progress=False)
    monkeypatch.setattr(RLOOTrainer, "_save_checkpoint", real_save)
    assert not (tmp_path / "rl" / "training_done.json").exists()
    result = train_rl(tiny_model, prompts, reward_dir, config, tmp_path / "rl", progress=False)
    assert result.resumed_from_step == 1 and result.steps == 3
    out, _ = straight
    assert (tmp_path / "rl" / "adapter_model.safetensors").read_bytes() == (
        out / "adapter_model.safetensors"
    ).read_bytes()


def test_a_finished_folder_refuses_another_reward_model(tiny_model, prompts, data, straight, tmp_path):
    out, _ = straight
    other_rm = tmp_path / "rm2"
    train_reward(tiny_model, *data, RewardTrainingConfig(**{**RM, "seed": 5}), other_rm, progress=False)
    with pytest.raises(InputError, match="is trained with") as caught:
        train_rl(tiny_model, prompts, other_rm, RLTrainingConfig(**RL), out, progress=False)
    assert caught.value.field == "reward_model_sha256"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--num-generations", "1"], "num-generations"),
        (["--micro-batch-size", "3"], "must divide batch_size"),
        (["--max-new-tokens", "200", "--max-length", "96"], "no room for a prompt"),
        (["--batch-size", "64", "--micro-batch-size", "4"], "distinct prompts cannot fill one step"),
    ],
)
def test_bad_rl_settings_exit_2_and_write_nothing(tiny_model, reward_dir, tmp_path, flags, needle):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(synthetic_pairs(n=12), pairs)
    out = tmp_path / "out"
    args = ["train", "rl", "--data", str(pairs), "--reward-model", str(reward_dir), "--out", str(out), *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output.replace("\n", " ")
    assert not (out / "adapter_model.safetensors").exists() and not (out / "training_done.json").exists()


def test_a_folder_that_is_no_reward_model_exits_2(tiny_model, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(synthetic_pairs(n=12), pairs)
    (tmp_path / "empty").mkdir()
    args = [
        "train",
        "rl",
        "--data",
        str(pairs),
        "--reward-model",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "not a finished reward model" in result.output
    assert not (tmp_path / "o").exists()
