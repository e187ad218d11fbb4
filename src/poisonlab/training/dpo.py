"""poisonlab's LoRA DPO engine: a plain, resumable training loop (the default; ``engine="trl"`` picks TRL's).

Why not TRL's DPOTrainer by default: with a LoRA adapter it runs the frozen
reference again at every step (the adapter switched off), and checkpoints
activations to recompute them. Here the reference log-probs are computed once
(the reference never changes) and kept on disk per pair, the LM head runs only
on reply tokens, micro-batches are grouped by length so they carry little
padding, and bf16 autocast is used where the hardware has it. The loss itself
is the textbook one (see ``losses.py``). ``benchmarks/engine.py`` measures each
of these against TRL.

The optimisation loop itself (``loop.train_lora``) is shared with SFT.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.hardware import torch_threads
from poisonlab.models.adapters import chain_identity
from poisonlab.scoring.dpo_score import PairLogprobs
from poisonlab.scoring.logprobs import collate, reply_logprobs
from poisonlab.scoring.reference_cache import reference_logprobs
from poisonlab.training.config import DPOTrainingConfig
from poisonlab.training.loop import (
    SETTINGS_FILE,
    claim_or_finished,
    decoder_layer_count,
    lora_model_and_pairs,
    mark_done,
    one_trainer_per_folder,
    save_adapter,
    train_lora,
)
from poisonlab.training.losses import LOSSES
from poisonlab.training.result import TrainResult


@one_trainer_per_folder
def train_dpo(
    model_name: str,
    dataset: PreferenceDataset,
    config: DPOTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    reference: PairLogprobs | None = None,
    init: Sequence[str | Path] = (),
) -> TrainResult:
    """Train a LoRA adapter with DPO on ``dataset``; write it (PEFT format) to ``out_dir``.

    ``init``: adapters (an SFT stage, ...) merged into the base before training. The model they make is the
    policy's start and DPO's reference, as in TRL with ``ref_model=None``; the adapter folder records them.

    Resumes from ``out_dir/checkpoint`` when a previous run was interrupted, and
    returns at once when ``out_dir`` already holds a finished adapter. ``config.engine``
    picks poisonlab's loop (below) or TRL's ``DPOTrainer`` (``trl_engine.py``); both
    write the same files.
    """
    out = Path(out_dir)
    if (finished := claim_or_finished(out, model_name, config, dataset, init)) is not None:
        return TrainResult(**finished)
    if config.engine == "trl":
        from poisonlab.training.trl_engine import train_dpo_trl

        return train_dpo_trl(model_name, dataset, config, out, progress=progress, init=init)
    from accelerate import PartialState

    state = PartialState()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with torch_threads(config.threads):
        tokenizer, model, encoded = lora_model_and_pairs(model_name, dataset, config, str(state.device), init)
        pad_id = tokenizer.pad_token_id
        trunk = None
        if config.trunk_cache:  # the frozen layers' output, once per distinct sequence (shared by every run)
            from poisonlab.scoring.trunk_cache import trunk_states

            trunk = trunk_states(
                model,
                encoded,
                pad_id,
                decoder_layer_count(model) - (config.trainable_layers or 0),
                chain_identity(model_name, init),
                config.micro_batch_size,
                config.bf16,
                desc="frozen trunk" if progress and state.is_main_process else None,
            )

        # The reference never changes: one forward pass per pair, before training.
        if reference is None:
            reference = reference_logprobs(  # cached on disk per pair: poisoned runs share the clean rows' values
                model,
                encoded,
                pad_id,
                config.micro_batch_size,
                config.bf16,
                chain_identity(model_name, init),  # the reference is the init model, not the bare base
                desc="reference log-probs" if progress and state.is_main_process else None,
                trunk=trunk,
            )
        ref = reference.reorder([p.id for p in encoded])
        loss_fn = LOSSES.get(config.loss)

        def micro_step(micro: np.ndarray, step: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
            batch = collate([encoded[i] for i in micro], pad_id)
            logps = reply_logprobs(model, batch, bf16=config.bf16, trunk=trunk)
            b = batch.size
            ref_chosen = torch.as_tensor(ref.chosen[micro], dtype=torch.float32, device=logps.device)
            ref_rejected = torch.as_tensor(ref.rejected[micro], dtype=torch.float32, device=logps.device)
            margin = (logps[:b] - ref_chosen) - (logps[b:] - ref_rejected)
            loss = loss_fn(margin, config.beta, config.label_smoothing).sum() / len(step)
            return loss, {"reward_accuracy": int((margin > 0).sum()) / len(step)}

        log, start_step = train_lora(
            model, [p.length for p in encoded], config, out, micro_step, progress=progress, desc="DPO"
        )
        if state.is_main_process:
            save_adapter(model, out, log)
    tail = log[-max(1, len(log) // 10) :]
    result = TrainResult(
        adapter_dir=str(out),
        steps=len(log),
        final_loss=float(np.mean([r["loss"] for r in tail])),
        train_reward_accuracy=float(np.mean([r["reward_accuracy"] for r in tail])),
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=start_step,
    )
    mark_done(out, result, state)
    return result


def saved_dpo_config(adapter: str | Path) -> tuple[str | None, DPOTrainingConfig | None]:
    """(model, DPO settings) an adapter folder says it was trained with; (None, None) if it does not say.

    Evaluating or scanning with an adapter must use its own sequence lengths and beta, not the defaults.
    """
    path = Path(adapter) / SETTINGS_FILE
    if not path.exists():
        return None, None
    values = json.loads(path.read_text())
    model = values.pop("model", None)
    values.pop("data_sha256", None)  # what it was trained on, not how
    values.pop("init", None)  # the model it started from: models.adapters.full_chain reads it
    return model, DPOTrainingConfig(**values)
