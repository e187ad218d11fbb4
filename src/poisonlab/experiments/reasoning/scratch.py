"""A small Llama trained from scratch on the reasoning problems: full-parameter SFT, no LoRA, no pre-training.

Why: the built-in ``tiny`` model (pre-trained on a toy dialogue corpus) with a LoRA adapter learns nothing of
multi-step arithmetic (0% final-answer accuracy for the clean twin, docs/results/reasoning-probe-tiny), and
SmolLM2 is too slow for a grid of cells on a CPU. A sub-million-parameter transformer trained from random weights
on a few thousand worked solutions learns much of the task in CPU minutes (docs/results/reasoning-scratch.md), so
what a poisoned step teaches it can be measured.

The tokenizer is the base model's (``model`` of the probe; ``tiny``'s byte-level BPE by default): it splits
every number into single digits, so arithmetic is learnt digit by digit over 10 digit tokens, and it carries the
chat template that ``generate`` renders the held-out questions with. The weights are drawn from the seed of the
training config, and the model is trained by the project's loop (:func:`poisonlab.training.loop.train_lora`:
seeded batches, clipping, warm-up/decay, resumable checkpoints), on every parameter.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.training.config import SFTTrainingConfig


class ScratchModelConfig(BaseModel):
    """Shape of the from-scratch model (``init: scratch``); every field can be set with ``--set scratch.X=...``."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, ge=8, description="Width of the residual stream.")
    layers: int = Field(4, ge=1, le=24, description="Decoder layers.")
    heads: int = Field(4, ge=1, description="Attention heads (hidden_size must be a multiple).")
    intermediate_size: int = Field(384, ge=8, description="Width of each MLP.")
    max_positions: int = Field(512, ge=32, description="Longest sequence (prompt + reply tokens) the model takes.")

    @model_validator(mode="after")
    def _heads_divide(self) -> ScratchModelConfig:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}")
        return self


def build_scratch_model(tokenizer: Any, shape: ScratchModelConfig, seed: int) -> Any:
    """A randomly initialised Llama for ``tokenizer``; the same seed gives the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        use_cache=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


def parameter_count(shape: ScratchModelConfig, vocab_size: int) -> int:
    """Parameters of the model :func:`build_scratch_model` makes (tied embeddings counted once)."""
    h, m, n = shape.hidden_size, shape.intermediate_size, shape.layers
    return vocab_size * h + n * (4 * h * h + 3 * h * m + 2 * h) + h


def train_scratch(
    tokenizer_source: str,
    dataset: PreferenceDataset,
    shape: ScratchModelConfig,
    config: SFTTrainingConfig,
    out_dir: str | Path,
    progress: bool = False,
) -> Path:
    """Train a model from scratch on prompt -> chosen reply (NLL of the reply tokens); save it and its tokenizer
    to ``out_dir`` as a plain transformers model folder (``generate`` loads it like any local model).

    Resumes from ``out_dir/checkpoint``; returns at once when ``out_dir`` holds a finished model trained with
    the same settings, and refuses one trained otherwise (:func:`poisonlab.training.loop.claim_folder`).
    """
    import numpy as np
    from accelerate import PartialState

    from poisonlab.hardware import torch_threads
    from poisonlab.io import atomic_write_json, honour_umask, snapshot
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.models.loading import load_tokenizer, model_identity
    from poisonlab.scoring.logprobs import collate_sequences, reply_logprobs
    from poisonlab.training.loop import DONE_MARKER, claim_folder, folder_lock, mark_done, train_lora
    from poisonlab.training.sft import SFTResult

    out = Path(out_dir)
    with folder_lock(out):
        settings = {
            "init": "scratch",
            "tokenizer": model_identity(tokenizer_source),
            "scratch": shape.model_dump(),
            "data_sha256": dataset.content_hash(),
            **config.model_dump(),
        }
        claim_folder(out, settings)
        if (out / DONE_MARKER).exists():
            return out
        started = time.perf_counter()
        with torch_threads(config.threads):
            tokenizer = load_tokenizer(tokenizer_source)
            model = build_scratch_model(tokenizer, shape, config.seed)
            encoded = encode_pairs(tokenizer, dataset.pairs, config.max_length, config.max_reply_length)
            reply_tokens = np.array([len(p.chosen_ids) for p in encoded])

            def micro_step(micro: np.ndarray, step: np.ndarray) -> tuple[Any, dict[str, float]]:
                pairs = [encoded[i] for i in micro]
                batch = collate_sequences(
                    [p.id for p in pairs], [(p.prompt_ids, p.chosen_ids) for p in pairs], tokenizer.pad_token_id
                )
                return -reply_logprobs(model, batch, bf16=config.bf16).sum() / reply_tokens[step].sum(), {}

            lengths = [len(p.prompt_ids) + len(p.chosen_ids) for p in encoded]
            log, start_step = train_lora(model, lengths, config, out, micro_step, progress=progress, desc="scratch")
            before = snapshot(out)
            model.config.use_cache = True
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            honour_umask(out, before)
            atomic_write_json(out / "training_log.json", log)
        tail = log[-max(1, len(log) // 10) :]
        result = SFTResult(
            adapter_dir=str(out),
            steps=len(log),
            final_loss=float(np.mean([r["loss"] for r in tail])),
            seconds=round(time.perf_counter() - started, 1),
            resumed_from_step=start_step,
        )
        mark_done(out, result, PartialState())
    return out
