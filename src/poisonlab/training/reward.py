"""A clean Bradley-Terry reward model: the judge of arXiv 2406.12091's generation-based evaluation.

The model is the base LM with a scalar head (transformers' ``AutoModelForSequenceClassification``
with one label) and a LoRA adapter; the head is trained in full (PEFT ``SEQ_CLS`` keeps it in
``modules_to_save``), so the folder is a plain PEFT adapter in safetensors that TRL or transformers
code loads as it is. The reward is the head's output at the last token that is not padding: the
closing end-of-turn token where the tokenizer pads with another token, the reply's last token where
it pads with end-of-turn (SmolLM2). The loss is ``-log sigmoid(r(chosen) - r(rejected))``.

Training is the shared LoRA loop (seeded batches, resumable checkpoints); afterwards the model is
scored in fp32 on held-out pairs and ``metrics.json`` records its pairwise accuracy with a Wilson
95% interval, so every score the ``reward`` judge gives can be shown beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.hardware import resolve_bf16, torch_threads
from poisonlab.io import atomic_write_json
from poisonlab.progress import progress_bar
from poisonlab.training.config import RewardTrainingConfig
from poisonlab.training.loop import (
    DONE_MARKER,
    SETTINGS_FILE,
    add_lora,
    claim_folder,
    mark_done,
    one_trainer_per_folder,
    save_adapter,
    train_lora,
    training_settings,
)

METRICS_FILE = "metrics.json"
KIND = "poisonlab reward model"


@dataclass
class RewardResult:
    model_dir: str
    steps: int
    final_loss: float  # mean Bradley-Terry loss per pair over the last 10% of steps
    train_accuracy: float  # share of pairs ranked right over the last 10% of steps (during training)
    heldout_accuracy: float
    heldout_ci: list[float]
    n_heldout: int
    seconds: float
    resumed_from_step: int


def load_reward_base(model_name: str, device: str | None = None, init: Sequence[str | Path] = ()) -> tuple[Any, Any]:
    """(tokenizer, base LM with a fresh one-output head) in fp32; seed torch first for a reproducible head.

    ``init``: causal-LM adapters (an SFT stage) merged into the backbone first, as a reward model is
    usually initialised from the SFT model.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification

    from poisonlab.hardware import default_device
    from poisonlab.models.loading import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(model_name)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "score.weight newly initialized" is the point, not a warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_model(model_name),
            num_labels=1,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=torch.float32,
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    if init:  # the backbone of base + init, merged as a causal LM (peft cannot load a causal-LM adapter here)
        from poisonlab.models.adapters import load_with_adapters

        merged = load_with_adapters(model_name, init, device="cpu")
        backbone = getattr(model, model.base_model_prefix)
        backbone.load_state_dict(getattr(merged, merged.base_model_prefix).state_dict())
        del merged
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last token that is not padding
    model.config.use_cache = False
    return tokenizer, model.to(device or default_device())


def rewards(
    model: Any,
    sequences: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    batch_size: int,
    progress: str | None = None,
) -> np.ndarray:
    """Reward of each (prompt ids, reply ids) in fp32, without gradients; batches of similar length."""
    from poisonlab.scoring.logprobs import collate_sequences

    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]), reverse=True)
    out = np.zeros(len(sequences), dtype=np.float64)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        starts = range(0, len(order), batch_size)
        for start in progress_bar(starts, desc=progress, disable=progress is None, unit="batch"):
            rows = order[start : start + batch_size]
            batch = collate_sequences([str(i) for i in rows], [sequences[i] for i in rows], pad_id)
            logits = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)).logits
            out[rows] = logits[:, 0].float().cpu().numpy()
    return out


def encode_scored(
    tokenizer: Any, prompts: Sequence[str], replies: Sequence[str], max_length: int, max_reply_length: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, reply ids) cut exactly as training cut its pairs (reply kept, prompt cut from the left)."""
    from poisonlab.models.encoding import encode_prompt, encode_reply

    sequences = []
    for prompt, reply in zip(prompts, replies, strict=True):
        reply_ids = encode_reply(tokenizer, reply)[:max_reply_length]
        room = max(1, max_length - len(reply_ids))
        sequences.append((encode_prompt(tokenizer, prompt)[-room:], reply_ids))
    return sequences


def pairwise_accuracy(
    model: Any, tokenizer: Any, dataset: PreferenceDataset, config: RewardTrainingConfig, progress: bool = False
) -> dict[str, Any]:
    """Share of pairs whose chosen reply gets the higher reward (ties count as wrong), with a Wilson 95% CI."""
    from scipy.stats import binomtest

    from poisonlab.models.encoding import encode_pairs

    encoded = encode_pairs(tokenizer, dataset.pairs, config.max_length, config.max_reply_length)
    sequences = [(p.prompt_ids, p.chosen_ids) for p in encoded] + [(p.prompt_ids, p.rejected_ids) for p in encoded]
    scores = rewards(
        model, sequences, tokenizer.pad_token_id, config.micro_batch_size, "held-out pairs" if progress else None
    )
    n = len(encoded)
    margin = scores[:n] - scores[n:]
    k = int((margin > 0).sum())
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {
        "heldout_accuracy": k / n,
        "heldout_ci": [float(ci.low), float(ci.high)],
        "n_heldout": n,
        "n_correct": k,
        "heldout_mean_margin": float(margin.mean()),
        "heldout_reward_mean": float(scores.mean()),
        "heldout_reward_std": float(scores.std()),
    }


@one_trainer_per_folder
def train_reward(
    model_name: str,
    train: PreferenceDataset,
    heldout: PreferenceDataset,
    config: RewardTrainingConfig,
    out_dir: str | Path,
    progress: bool = True,
    heldout_source: str | None = None,
    init: Sequence[str | Path] = (),
) -> RewardResult:
    """Train a Bradley-Terry reward model on ``train``, measure it on ``heldout``, write both to ``out_dir``.

    ``init``: adapters merged into the backbone before the head and LoRA are added (the SFT model).

    Writes the PEFT adapter (LoRA + the scalar head, safetensors), ``training_config.json`` (base model,
    data hashes, settings) and ``metrics.json``. Resumes from ``out_dir/checkpoint`` when interrupted;
    returns at once when ``out_dir`` already holds a finished reward model of the same settings and data.
    """
    from accelerate import PartialState

    from poisonlab.models.encoding import encode_pairs

    if len(heldout) == 0:
        raise InputError("no held-out pairs: a reward model without a measured accuracy is no judge")
    out = Path(out_dir)
    settings = training_settings(model_name, config, train, init)
    settings["heldout_sha256"] = heldout.content_hash()  # other held-out data into this folder is refused
    claim_folder(out, settings)
    if (out / DONE_MARKER).exists():
        return RewardResult(**json.loads((out / DONE_MARKER).read_text()))
    state = PartialState()
    started = time.perf_counter()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)  # the head's init (add_lora re-seeds for the adapter)
        tokenizer, model = load_reward_base(model_name, str(state.device), init)
        model = add_lora(model, config, task_type="SEQ_CLS")
        encoded = encode_pairs(tokenizer, train.pairs, config.max_length, config.max_reply_length)
        pad_id = tokenizer.pad_token_id
        bf16 = resolve_bf16(config.bf16, state.device.type)

        def micro_step(micro: np.ndarray, step: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
            from poisonlab.scoring.logprobs import collate

            batch = collate([encoded[i] for i in micro], pad_id)  # the B chosen, then the B rejected
            device = next(model.parameters()).device
            with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                scores = model(
                    input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)
                ).logits[:, 0]
            margin = scores[: batch.size].float() - scores[batch.size :].float()
            loss = -torch.nn.functional.logsigmoid(margin).sum() / len(step)
            return loss, {"accuracy": int((margin > 0).sum()) / len(step)}

        log, start_step = train_lora(
            model, [p.length for p in encoded], config, out, micro_step, progress=progress, desc="reward model"
        )
        heldout_metrics = pairwise_accuracy(model, tokenizer, heldout, config, progress=progress)
    tail = log[-max(1, len(log) // 10) :]
    result = RewardResult(
        model_dir=str(out),
        steps=len(log),
        final_loss=float(np.mean([r["loss"] for r in tail])),
        train_accuracy=float(np.mean([r["accuracy"] for r in tail])),
        heldout_accuracy=heldout_metrics["heldout_accuracy"],
        heldout_ci=heldout_metrics["heldout_ci"],
        n_heldout=heldout_metrics["n_heldout"],
        seconds=round(time.perf_counter() - started, 1),
        resumed_from_step=start_step,
    )
    if state.is_main_process:
        save_adapter(model, out, log)
        atomic_write_json(
            out / METRICS_FILE,
            {
                "kind": KIND,
                "model": model_name,
                **heldout_metrics,
                "heldout_source": heldout_source or heldout.source,
                "heldout_also_in_train": _overlap(train, heldout),
                "precision": "fp32",
                "n_train": len(train),
                "steps": result.steps,
                "final_loss": result.final_loss,
                "train_accuracy": result.train_accuracy,
                "seconds": result.seconds,
                "settings": config.model_dump(mode="json"),
            },
        )
    mark_done(out, result, state)
    return result


def _overlap(train: PreferenceDataset, heldout: PreferenceDataset) -> int:
    """Held-out pairs whose (prompt, chosen, rejected) also trains: each inflates the measured accuracy."""
    seen = {(p.prompt, p.chosen, p.rejected) for p in train.pairs}
    return sum((p.prompt, p.chosen, p.rejected) in seen for p in heldout.pairs)


def reward_model_facts(folder: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a finished reward model folder; an InputError naming the folder otherwise."""
    path = Path(folder)
    metrics = path / METRICS_FILE
    if not (path / DONE_MARKER).exists() or not (path / "adapter_config.json").exists() or not metrics.exists():
        raise InputError(
            "not a finished reward model (train one with: poisonlab train reward --data PAIRS --out DIR)", path=path
        )
    facts = json.loads(metrics.read_text())
    if facts.get("kind") != KIND:
        raise InputError(f"{METRICS_FILE} here is not a reward model's (kind {facts.get('kind')!r})", path=path)
    return facts


def load_reward_model(folder: str | Path, device: str | None = None) -> tuple[Any, Any, RewardTrainingConfig]:
    """(tokenizer, reward model in eval mode, fp32, its training settings) from a finished folder."""
    from peft import PeftModel

    path = Path(folder)
    reward_model_facts(path)
    settings = json.loads((path / SETTINGS_FILE).read_text())
    model_name = settings.pop("model")
    config = RewardTrainingConfig(**{k: v for k, v in settings.items() if k in RewardTrainingConfig.model_fields})
    from poisonlab.models.adapters import recorded_init

    tokenizer, base = load_reward_base(model_name, device, recorded_init(path))
    model = PeftModel.from_pretrained(base, path, is_trainable=False)
    model.eval()
    return tokenizer, model, config
