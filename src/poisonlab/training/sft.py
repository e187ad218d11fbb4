"""LoRA supervised fine-tuning on prompt -> chosen reply, with the DPO engine's loop.

The paper's DPO starts from an SFT model; this is that stage. The loss is the
mean negative log-likelihood of the chosen reply's tokens (the prompt is
context only), computed with ``reply_logprobs`` so the LM head runs on reply
tokens only. Batches, length grouping, threads, checkpoints and resume are the
DPO engine's (``dpo.train_lora``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.hardware import torch_threads
from poisonlab.scoring.logprobs import collate_sequences, reply_logprobs
from poisonlab.training.config import SFTTrainingConfig
from poisonlab.training.loop import (
    claim_or_finished,
    lora_model_and_pairs,
    mark_done,
    one_trainer_per_folder,
    save_adapter,
    train_lora,
)


@dataclass
class SFTResult:
    adapter_dir: str
    steps: int
    final_loss: float  # mean NLL per reply token over the last 10% of steps
    seconds: float
    resumed_from_step: int


@one_trainer_per_folder
def train_sft(
    model_name: str,
    dataset: PreferenceDataset,
    config: SFTTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    init: Sequence[str | Path] = (),
) -> SFTResult:
    """Train a LoRA adapter on each pair's prompt -> chosen reply; write it (PEFT format) to ``out_dir``.

    ``init``: adapters merged into the base before training (a downstream SFT after DPO starts from both).

    Resumes from ``out_dir/checkpoint`` and returns at once when ``out_dir`` holds a finished adapter.
    """
    from accelerate import PartialState

    out = Path(out_dir)
    if (finished := claim_or_finished(out, model_name, config, dataset, init)) is not None:
        return SFTResult(**finished)
    state = PartialState()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with torch_threads(config.threads):
        tokenizer, model, encoded = lora_model_and_pairs(model_name, dataset, config, str(state.device), init)
        reply_tokens = np.array([len(p.chosen_ids) for p in encoded])
        pad_id = tokenizer.pad_token_id

        def micro_step(micro: np.ndarray, step: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
            pairs = [encoded[i] for i in micro]
            batch = collate_sequences([p.id for p in pairs], [(p.prompt_ids, p.chosen_ids) for p in pairs], pad_id)
            return -reply_logprobs(model, batch, bf16=config.bf16).sum() / reply_tokens[step].sum(), {}

        lengths = [len(p.prompt_ids) + len(p.chosen_ids) for p in encoded]
        log, start_step = train_lora(model, lengths, config, out, micro_step, progress=progress, desc="SFT")
        if state.is_main_process:
            save_adapter(model, out, log)
    tail = log[-max(1, len(log) // 10) :]
    result = SFTResult(
        adapter_dir=str(out),
        steps=len(log),
        final_loss=float(np.mean([r["loss"] for r in tail])),
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=start_step,
    )
    mark_done(out, result, state)
    return result
