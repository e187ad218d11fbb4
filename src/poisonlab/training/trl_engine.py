"""The ``trl`` engine: LoRA DPO with TRL's ``DPOTrainer``, from the same config, writing the same files.

For users who want TRL's trainer, or who scale out with ``accelerate launch`` /
DeepSpeed. Both engines see the same tokens: pairs are tokenised here by
poisonlab (chat template, truncation that keeps the final reply) and handed to
TRL already tokenised, so TRL's own tokenisation and ``keep_start`` truncation
(which would cut the reply) never run. The learning-rate schedule is poisonlab's
too (TRL's first warm-up step has learning rate 0), so on identical data the two
engines' losses agree step by step (``tests/test_trl_engine.py``).

Everything else is TRL's: the DPO loss, the fused LM head, the reference
recomputed every step with the adapter switched off, and activation checkpointing
(TRL's default), which is why it is slower on a CPU (``benchmarks/engine.py``).
Offline: nothing is pushed or reported anywhere.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.hardware import resolve_bf16, torch_threads
from poisonlab.io import atomic_write_json
from poisonlab.models.adapters import load_with_adapters
from poisonlab.models.encoding import EncodedPair, encode_pairs
from poisonlab.models.loading import load_tokenizer
from poisonlab.progress import on_terminal
from poisonlab.training.config import DPOTrainingConfig
from poisonlab.training.loop import DONE_MARKER, lora_config, lr_schedule, save_adapter
from poisonlab.training.losses import LOSSES, loss_facts
from poisonlab.training.result import TrainResult

CHECKPOINTS = "trl-checkpoints"


def trl_loss_type(loss: str) -> str:
    """TRL's loss_type for poisonlab's ``loss`` (a fact of the loss). TRL's "ipo" divides each log-ratio by
    the reply's token count and poisonlab's does not, so an ipo run is the same objective only up to that
    per-pair scale (documented, not hidden)."""
    trl_name = loss_facts(loss).trl_loss_type
    if trl_name is None:
        usable = [name for name in LOSSES.names() if loss_facts(name).trl_loss_type]
        raise InputError(
            f"loss {loss!r} has no TRL equivalent: with --engine trl use one of {', '.join(usable)}, "
            "or train it with --engine poisonlab",
            field="--loss",
        )
    return trl_name


def tokenized_dataset(encoded: list[EncodedPair]) -> Any:
    """Pre-tokenised rows in TRL's column names (``prompt_ids``, ``chosen_ids``, ``rejected_ids``)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt_ids": [p.prompt_ids for p in encoded],
            "chosen_ids": [p.chosen_ids for p in encoded],
            "rejected_ids": [p.rejected_ids for p in encoded],
        }
    )


def make_trainer(
    model: Any,
    tokenizer: Any,
    encoded: list[EncodedPair],
    config: DPOTrainingConfig,
    output_dir: Path,
    progress: bool = False,
    **dpo_args: Any,
) -> Any:
    """A ``DPOTrainer`` for ``config`` on poisonlab-tokenised pairs; ``dpo_args`` override ``DPOConfig`` fields."""
    from accelerate import PartialState
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    world = PartialState().num_processes
    micro = min(config.micro_batch_size, config.batch_size)
    args = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": max(1, config.batch_size // (micro * world)),
        "num_train_epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "optim": "rmsprop" if config.optimizer == "rmsprop" else "adamw_torch",
        "weight_decay": 0.0,
        "max_grad_norm": config.max_grad_norm,
        "beta": config.beta,
        "loss_type": [trl_loss_type(config.loss)],
        "label_smoothing": config.label_smoothing,
        "max_length": None,  # truncated by encode_pairs, keeping the final reply
        "bf16": resolve_bf16(config.bf16, model.device.type),
        "fp16": False,
        "use_cpu": model.device.type == "cpu",  # transformers refuses bf16 on a CPU without it
        "seed": config.seed,
        "data_seed": config.seed,
        "disable_dropout": False,  # honour lora_dropout, as poisonlab's engine does
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 1,
        "report_to": [],
        "push_to_hub": False,
        "disable_tqdm": not progress or not on_terminal(),  # its bar redraws with '\r'
        "dataloader_num_workers": 0,
    }
    args.update(dpo_args)
    lora = lora_config(config, model)

    class StepTimer(TrainerCallback):
        """Seconds per optimizer step, for the training log and the benchmark."""

        def __init__(self) -> None:
            self.seconds: dict[int, float] = {}  # global step -> seconds
            self._start = 0.0

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, *_: Any, **__: Any) -> None:
            self.seconds[state.global_step] = time.perf_counter() - self._start

    class Trainer(DPOTrainer):
        def _prepare_dataset(self, dataset: Any, *_: Any, **__: Any) -> Any:
            return dataset  # already tokenised by poisonlab

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if self.lr_scheduler is None:  # poisonlab's schedule: warm-up starts above zero
                warmup = math.ceil(config.warmup_ratio * num_training_steps)
                self.lr_scheduler = lr_schedule(optimizer or self.optimizer, num_training_steps, warmup)
            return self.lr_scheduler

    timer = StepTimer()
    trainer = Trainer(
        model=model,
        args=DPOConfig(**args),
        train_dataset=tokenized_dataset(encoded),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[timer],
    )
    trainer.step_timer = timer
    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when tqdm is off
    return trainer


def training_log(trainer: Any) -> list[dict]:
    """TRL's log history in poisonlab's ``training_log.json`` shape."""
    seconds = trainer.step_timer.seconds
    log = []
    for entry in trainer.state.log_history:
        if "loss" not in entry or "step" not in entry:
            continue
        step = int(entry["step"])
        log.append(
            {
                "step": step,
                "loss": round(float(entry["loss"]), 6),
                "reward_accuracy": round(float(entry.get("rewards/accuracies", float("nan"))), 6),
                **({"seconds": round(seconds[step], 4)} if step in seconds else {}),
            }
        )
    return log


def train_dpo_trl(
    model_name: str,
    dataset: PreferenceDataset,
    config: DPOTrainingConfig,
    out: Path,
    progress: bool = True,
    init: Sequence[str | Path] = (),
) -> TrainResult:
    """Train with TRL's ``DPOTrainer``; resumes from TRL's last checkpoint in ``out/trl-checkpoints``.

    ``init`` adapters are merged into the base first; TRL's reference (the LoRA adapter switched off) is then
    that init model, as in poisonlab's engine.
    """
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint

    trl_loss_type(config.loss)  # fail before any model is loaded
    state = PartialState()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with torch_threads(config.threads):
        tokenizer = load_tokenizer(model_name)
        encoded = encode_pairs(tokenizer, dataset.pairs, config.max_length, config.max_reply_length)
        trainer = make_trainer(
            load_with_adapters(model_name, init, device=str(state.device)),
            tokenizer,
            encoded,
            config,
            out / CHECKPOINTS,
            progress,
        )
        last = get_last_checkpoint(str(out / CHECKPOINTS)) if (out / CHECKPOINTS).is_dir() else None
        # read now: with save_total_limit=1 training deletes this checkpoint when it saves the next one
        resumed = int(json.loads((Path(last) / "trainer_state.json").read_text())["global_step"]) if last else 0
        trainer.train(resume_from_checkpoint=last)
        log = training_log(trainer)
        if state.is_main_process:
            save_adapter(trainer.model, out, log)
    tail = log[-max(1, len(log) // 10) :]
    result = TrainResult(
        adapter_dir=str(out),
        steps=int(trainer.state.global_step),
        final_loss=float(np.mean([r["loss"] for r in tail])),
        train_reward_accuracy=float(np.mean([r["reward_accuracy"] for r in tail])),
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=resumed,
    )
    if state.is_main_process:
        atomic_write_json(out / DONE_MARKER, asdict(result))
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    state.wait_for_everyone()
    return result
