"""RLHF against a poisonlab reward model, through TRL's ``RLOOTrainer`` (LoRA on the policy).

RLOO (Ahmadian et al. 2024, arXiv 2402.14740) is REINFORCE with a leave-one-out baseline: each prompt is
sampled ``k`` times, each completion's advantage is its reward (less ``beta`` x its KL to the start model)
minus the mean reward of the other ``k - 1``. It belongs to the PPO family without PPO's value network:
no critic, no generalised advantage estimation; with one update per batch (TRL's ``num_iterations=1``)
the ratio clip never binds. The ~4% figure of Rando & Tramèr (arXiv 2311.14455) came from PPO with a
value head on 7B LLaMA-2; this is the cheaper cousin the field uses today (docs/guide/rlhf.md).

poisonlab supplies what must match the rest of the package: prompts are tokenised as DPO tokenises them
(chat template, cut from the left), the reward is the reward model's score of (prompt, completion) encoded
exactly as it was trained (``training.reward.encode_scored``), the LoRA adapter and the schedule are the
shared ones, and the folder is claimed, locked, resumed and finished like every other adapter's. TRL
does the sampling, the leave-one-out advantages, the KL and the optimisation. Nothing is pushed anywhere.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.hardware import resolve_bf16, torch_threads
from poisonlab.io import atomic_write_json
from poisonlab.training.config import RLTrainingConfig
from poisonlab.training.loop import (
    DONE_MARKER,
    lora_config,
    lr_schedule,
    one_trainer_per_folder,
    save_adapter,
)

CHECKPOINTS = "rl-checkpoints"


@dataclass
class RLResult:
    adapter_dir: str
    steps: int
    mean_reward_first: float  # mean reward of the completions sampled at the first logged step
    mean_reward_last: float  # ... over the last 10% of steps
    generation_seconds: float  # sampling completions, all steps
    reward_seconds: float  # scoring them with the reward model, all steps
    seconds: float
    resumed_from_step: int


def training_prompts(dataset: PreferenceDataset) -> list[str]:
    """The distinct prompts of ``dataset`` in first-seen order: what the policy is asked during RL."""
    return list(dict.fromkeys(p.prompt for p in dataset.pairs))


def reward_function(folder: str | Path, device: str) -> Any:
    """A TRL reward function: the reward model in ``folder`` scores (prompt, completion) as it was trained."""
    from poisonlab.training.reward import encode_scored, load_reward_model, rewards

    tokenizer, model, settings = load_reward_model(folder, device)

    def reward_model(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        encoded = encode_scored(tokenizer, prompts, completions, settings.max_length, settings.max_reply_length)
        return rewards(model, encoded, tokenizer.pad_token_id, len(encoded)).tolist()

    reward_model.__name__ = "reward_model"
    return reward_model


def make_rl_trainer(
    model: Any, tokenizer: Any, prompts: list[str], reward: Any, config: RLTrainingConfig, output_dir: Path
) -> Any:
    """An ``RLOOTrainer`` for ``config``: prompts tokenised by poisonlab, poisonlab's LoRA and schedule."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    from poisonlab.models.encoding import encode_prompt

    room = config.max_length - config.max_new_tokens
    args = RLOOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.micro_batch_size * config.num_generations,
        gradient_accumulation_steps=config.batch_size // config.micro_batch_size,
        num_generations=config.num_generations,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        beta=config.beta,
        normalize_advantages=config.normalize_advantages,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        optim="rmsprop" if config.optimizer == "rmsprop" else "adamw_torch",
        weight_decay=0.0,
        max_grad_norm=config.max_grad_norm,
        bf16=resolve_bf16(config.bf16, model.device.type),
        fp16=False,
        use_cpu=model.device.type == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        disable_dropout=False,  # honour lora_dropout, as the other engines do
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to=[],
        push_to_hub=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
        gradient_checkpointing=False,  # TRL's default trades ~1/3 more compute for memory a small model does not need
    )

    class Timer(TrainerCallback):
        """Seconds per optimizer step, and how much of it sampling and reward scoring took."""

        def __init__(self) -> None:
            self.step: dict[int, float] = {}
            self.cpu: dict[int, float] = {}  # CPU seconds of this process: less disturbed by a busy machine
            self.generation: dict[int, float] = {}
            self.reward: dict[int, float] = {}
            self.current = {"generation": 0.0, "reward": 0.0}
            self._start = self._cpu = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self._start, self._cpu = time.perf_counter(), time.process_time()
            self.current = {"generation": 0.0, "reward": 0.0}

        def on_step_end(self, _args: Any, state: Any, *__: Any, **___: Any) -> None:
            self.step[state.global_step] = time.perf_counter() - self._start
            self.cpu[state.global_step] = time.process_time() - self._cpu
            self.generation[state.global_step] = self.current["generation"]
            self.reward[state.global_step] = self.current["reward"]

    timer = Timer()

    class Trainer(RLOOTrainer):
        def _tokenize_prompts(self, batch: list) -> tuple[list[list[int]], None, dict]:
            return [encode_prompt(tokenizer, p)[-room:] for p in batch], None, {}

        def _generate(self, batch: list) -> Any:
            start = time.perf_counter()
            try:
                return super()._generate(batch)
            finally:
                timer.current["generation"] += time.perf_counter() - start

        def _calculate_rewards(self, *a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return super()._calculate_rewards(*a, **k)
            finally:
                timer.current["reward"] += time.perf_counter() - start

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:  # poisonlab's schedule, as in the other engines
                warmup = math.ceil(config.warmup_ratio * num_training_steps)
                self.lr_scheduler = lr_schedule(optimizer or self.optimizer, num_training_steps, warmup)
            return self.lr_scheduler

    trainer = Trainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        peft_config=lora_config(config, model),
        callbacks=[timer],
    )
    trainer.step_timer = timer
    trainer.remove_callback(PrinterCallback)
    return trainer


def rl_log(trainer: Any) -> list[dict]:
    """TRL's log history as ``training_log.json`` rows: step, loss, mean reward, KL, seconds split."""
    timer = trainer.step_timer
    log = []
    for entry in trainer.state.log_history:
        if "reward" not in entry or "step" not in entry:
            continue
        step = int(entry["step"])
        row = {"step": step, "loss": round(float(entry.get("loss", float("nan"))), 6)}
        row["reward"] = round(float(entry["reward"]), 6)
        row["reward_std"] = round(float(entry.get("reward_std", float("nan"))), 6)
        row["kl"] = round(float(entry.get("kl", float("nan"))), 6)
        if step in timer.step:
            row["seconds"] = round(timer.step[step], 4)
            row["generation_seconds"] = round(timer.generation[step], 4)
            row["reward_seconds"] = round(timer.reward[step], 4)
            row["cpu_seconds"] = round(timer.cpu[step], 4)
        log.append(row)
    return log


def train_rl(
    model_name: str,
    dataset: PreferenceDataset,
    reward_model: str | Path,
    config: RLTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    init: Sequence[str | Path] = (),
) -> RLResult:
    """Optimise a LoRA policy on ``dataset``'s prompts against the reward model in ``reward_model`` (RLOO).

    Only the prompts of ``dataset`` are used (its replies taught the reward model). ``init`` adapters are
    merged into the base first and are the KL reference. Resumes from TRL's last checkpoint in
    ``out_dir/rl-checkpoints``; returns at once when ``out_dir`` holds a finished adapter of the same
    settings, data and reward model.
    """
    from poisonlab.training.reward import reward_model_facts

    reward_model_facts(reward_model)  # clear errors before any folder is made or model loaded
    prompts = training_prompts(dataset)
    if len(prompts) < config.batch_size:
        raise InputError(
            f"{len(prompts)} distinct prompts cannot fill one step of {config.batch_size}: lower batch_size or "
            "give more data",
            field="batch_size",
        )
    return _train_rl(model_name, prompts, dataset, reward_model, config, out_dir, progress, init)


@one_trainer_per_folder
def _train_rl(
    model_name: str,
    prompts: list[str],
    dataset: PreferenceDataset,
    reward_model: str | Path,
    config: RLTrainingConfig,
    out_dir: str | Path,
    progress: bool,
    init: Sequence[str | Path],
) -> RLResult:
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint

    from poisonlab.models.adapters import adapter_sha256, load_with_adapters
    from poisonlab.models.loading import check_model_name, load_tokenizer
    from poisonlab.training.loop import claim_folder, training_settings

    out = Path(out_dir)
    check_model_name(model_name)  # a misspelt model must not claim the folder
    settings = training_settings(model_name, config, dataset, init)
    settings["reward_model_sha256"] = adapter_sha256(reward_model)  # another reward model is another run
    claim_folder(out, settings)
    if (out / DONE_MARKER).exists():
        return RLResult(**json.loads((out / DONE_MARKER).read_text()))
    state = PartialState()
    started = time.perf_counter()
    with torch_threads(config.threads):
        tokenizer = load_tokenizer(model_name)
        model = load_with_adapters(model_name, init, device=str(state.device))
        reward = reward_function(reward_model, str(state.device))
        trainer = make_rl_trainer(model, tokenizer, prompts, reward, config, out / CHECKPOINTS)
        last = get_last_checkpoint(str(out / CHECKPOINTS)) if (out / CHECKPOINTS).is_dir() else None
        resumed = int(json.loads((Path(last) / "trainer_state.json").read_text())["global_step"]) if last else 0
        trainer.train(resume_from_checkpoint=last)
        log = rl_log(trainer)
        if state.is_main_process:
            save_adapter(trainer.model, out, log)
    rewards_seen = [r["reward"] for r in log] or [float("nan")]
    tail = rewards_seen[-max(1, len(rewards_seen) // 10) :]
    result = RLResult(
        adapter_dir=str(out),
        steps=int(trainer.state.global_step),
        mean_reward_first=float(rewards_seen[0]),
        mean_reward_last=float(np.mean(tail)),
        generation_seconds=round(sum(r.get("generation_seconds", 0.0) for r in log), 2),
        reward_seconds=round(sum(r.get("reward_seconds", 0.0) for r in log), 2),
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=resumed,
    )
    if state.is_main_process:
        from poisonlab.integrity import record_checksums

        atomic_write_json(out / DONE_MARKER, asdict(result))
        record_checksums(out, exclude=(CHECKPOINTS,))
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    state.wait_for_everyone()
    return result
