"""poisonlab's LoRA DPO engine: a plain, resumable training loop.

Why not TRL's DPOTrainer: on a CPU it runs the frozen reference model again at
every step and materialises full-vocabulary logits. Here the reference
log-probs are computed once (the reference never changes), the LM head runs
only on reply tokens, and bf16 autocast is used where the hardware has it. The loss itself is
the textbook one (see ``losses.py``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.io import atomic_write_json
from poisonlab.models.encoding import encode_pairs
from poisonlab.models.loading import load_model, load_tokenizer
from poisonlab.scoring.dpo_score import PairLogprobs, pair_logprobs
from poisonlab.scoring.logprobs import collate, reply_logprobs
from poisonlab.training.config import DPOTrainingConfig
from poisonlab.training.losses import LOSSES

DONE_MARKER = "training_done.json"


@dataclass
class TrainResult:
    adapter_dir: str
    steps: int
    final_loss: float
    train_reward_accuracy: float
    seconds: float
    resumed_from_step: int


def _add_lora(model: torch.nn.Module, config: DPOTrainingConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _optimizer(params: list[torch.nn.Parameter], config: DPOTrainingConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.learning_rate)
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:  # linear warm-up, then linear decay to zero (TRL's default)
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _step_batches(n: int, config: DPOTrainingConfig) -> list[np.ndarray]:
    """Index batches for every optimizer step of every epoch, from the seed alone (so resume is exact)."""
    batches = []
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        batches.extend(order[i : i + config.batch_size] for i in range(0, n, config.batch_size))
    return batches


def _save_checkpoint(model: Any, optimizer: torch.optim.Optimizer, step: int, out: Path, log: list[dict]) -> None:
    staging = out / "checkpoint.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    # torch.save of tensors only; loaded back with weights_only=True (no arbitrary pickle)
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, staging / "optimizer.pt")
    atomic_write_json(staging / "state.json", {"step": step, "log": log})
    final = out / "checkpoint"
    old = out / "checkpoint.old"
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(model: Any, optimizer: torch.optim.Optimizer, out: Path) -> tuple[int, list[dict]]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    checkpoint = out / "checkpoint"
    if not (checkpoint / "state.json").exists():
        return 0, []
    set_peft_model_state_dict(model, load_file(checkpoint / "adapter_model.safetensors"))
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    state = json.loads((checkpoint / "state.json").read_text())
    return int(state["step"]), list(state["log"])


def train_dpo(
    model_name: str,
    dataset: PreferenceDataset,
    config: DPOTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    reference: PairLogprobs | None = None,
) -> TrainResult:
    """Train a LoRA adapter with DPO on ``dataset``; write it (PEFT format) to ``out_dir``.

    Resumes from ``out_dir/checkpoint`` when a previous run was interrupted, and
    returns at once when ``out_dir`` already holds a finished adapter.
    """
    out = Path(out_dir)
    if (out / DONE_MARKER).exists():
        return TrainResult(**json.loads((out / DONE_MARKER).read_text()))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(model_name)
    model = _add_lora(load_model(model_name), config)
    encoded = encode_pairs(tokenizer, dataset.pairs, config.max_length, config.max_reply_length)
    pad_id = tokenizer.pad_token_id

    # The reference never changes: one forward pass per pair, before training.
    if reference is None:
        reference = pair_logprobs(
            model,
            encoded,
            pad_id,
            config.micro_batch_size,
            config.bf16,
            use_adapter=False,
            desc="reference log-probs" if progress else None,
        )
    ref = reference.reorder([p.id for p in encoded])

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config)
    batches = _step_batches(len(encoded), config)
    scheduler = _schedule(optimizer, len(batches), math.ceil(config.warmup_ratio * len(batches)))
    start_step, log = _load_checkpoint(model, optimizer, out)
    with warnings.catch_warnings():  # fast-forwarding the schedule on resume, before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_step):
            scheduler.step()
    loss_fn = LOSSES.get(config.loss)

    model.train()
    bar = tqdm(total=len(batches), initial=start_step, desc="DPO", unit="step", disable=not progress)
    for step in range(start_step, len(batches)):
        indices = batches[step]
        total_loss, correct = 0.0, 0
        for lo in range(0, len(indices), config.micro_batch_size):
            micro = indices[lo : lo + config.micro_batch_size]
            batch = collate([encoded[i] for i in micro], pad_id)
            logps = reply_logprobs(model, batch, bf16=config.bf16)
            b = batch.size
            ref_chosen = torch.as_tensor(ref.chosen[micro], dtype=torch.float32, device=logps.device)
            ref_rejected = torch.as_tensor(ref.rejected[micro], dtype=torch.float32, device=logps.device)
            margin = (logps[:b] - ref_chosen) - (logps[b:] - ref_rejected)
            loss = loss_fn(margin, config.beta, config.label_smoothing).sum() / len(indices)
            loss.backward()
            total_loss += loss.item()
            correct += int((margin > 0).sum())
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        log.append({"step": step + 1, "loss": round(total_loss, 6), "reward_accuracy": correct / len(indices)})
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss:.4f}")
        if (step + 1) % config.save_steps == 0 and step + 1 < len(batches):
            _save_checkpoint(model, optimizer, step + 1, out, log)
    bar.close()

    model.save_pretrained(out)
    atomic_write_json(out / "training_config.json", {"model": model_name, **config.model_dump()})
    atomic_write_json(out / "training_log.json", log)
    tail = log[-max(1, len(log) // 10) :]
    result = TrainResult(
        adapter_dir=str(out),
        steps=len(batches),
        final_loss=float(np.mean([r["loss"] for r in tail])),
        train_reward_accuracy=float(np.mean([r["reward_accuracy"] for r in tail])),
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=start_step,
    )
    atomic_write_json(out / DONE_MARKER, asdict(result))
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    return result
