"""The LoRA training loop shared by DPO and SFT: seeded, length-grouped, resumable.

It runs on one CPU, one GPU, or several processes started by ``accelerate
launch``: each process takes a share of every step's micro-batches and the
(small) LoRA gradients are summed across processes before the optimizer step,
so every process holds the same adapter.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.interrupts import raise_if_interrupted
from poisonlab.io import atomic_write_json, honour_umask, snapshot
from poisonlab.progress import progress_bar
from poisonlab.training.config import LoRATrainingConfig

DONE_MARKER = "training_done.json"
SETTINGS_FILE = "training_config.json"
# Fields that change speed or checkpoint cadence, never the adapter: free to differ on resume.
NOT_COMPARED = frozenset({"threads", "save_steps"})

# (micro-batch indices, the whole step's indices) -> (loss to backpropagate, metrics summed over the step)
MicroStep = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, dict[str, float]]]


def decoder_layer_count(model: torch.nn.Module) -> int:
    """How many decoder layers ``model`` has (its config's ``num_hidden_layers``)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return int(base.config.num_hidden_layers)


def trainable_layer_indices(config: LoRATrainingConfig, n_layers: int) -> list[int] | None:
    """The decoder layers that get adapters: the top ``config.trainable_layers`` ones (None: every layer)."""
    if config.trainable_layers is None:
        return None
    if config.trainable_layers > n_layers:
        raise InputError(
            f"{config.trainable_layers} trainable layers asked of a model with {n_layers} decoder layers: use "
            f"1 to {n_layers}, or leave it unset for every layer",
            field="trainable_layers",
        )
    return list(range(n_layers - config.trainable_layers, n_layers))


def lora_config(config: LoRATrainingConfig, model: torch.nn.Module, task_type: str = "CAUSAL_LM") -> Any:
    """The PEFT LoraConfig of a training config for ``model`` (both engines use this one; the reward model:
    ``SEQ_CLS``). With ``trainable_layers``, PEFT's ``layers_to_transform`` names the top layers, so the
    adapter folder says where its weights go and loads like any other."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        layers_to_transform=trainable_layer_indices(config, decoder_layer_count(model)),
        task_type=task_type,
    )


def add_lora(model: torch.nn.Module, config: LoRATrainingConfig, task_type: str = "CAUSAL_LM") -> torch.nn.Module:
    from peft import get_peft_model

    lora = lora_config(config, model, task_type)
    torch.manual_seed(config.seed)  # the adapter's init depends on the seed alone, whatever ran before
    return get_peft_model(model, lora)


def lora_model_and_pairs(
    model_name: str, dataset: Any, config: LoRATrainingConfig, device: str, init: Sequence[str | Path] = ()
) -> tuple[Any, Any, list]:
    """What every trainer starts from: the tokenizer, the model (base with ``init`` merged in) with a fresh
    seeded adapter, the encoded pairs. With the new adapter switched off, the model is the init model:
    DPO's reference."""
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_name)
    model = add_lora(load_with_adapters(model_name, init, device=device, bf16=config.bf16), config)
    if getattr(config, "compile", False):
        compile_decoder_layers(model)
    return tokenizer, model, encode_pairs(tokenizer, dataset.pairs, config.max_length, config.max_reply_length)


def compile_decoder_layers(model: torch.nn.Module) -> None:
    """``torch.compile`` every decoder layer in place (LoRA layers included): elementwise work fused by inductor.

    Compiled per layer, not as one graph, so one compiled program serves every layer; automatic dynamic shapes
    recompile once when a second sequence length appears, then no more.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for layer in base.get_decoder().layers:
        layer.compile()


def _optimizer(params: list[torch.nn.Parameter], config: LoRATrainingConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.learning_rate)
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)


def lr_schedule(optimizer: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:  # linear warm-up, then linear decay to zero (TRL's default)
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _step_batches(lengths: Sequence[int], config: LoRATrainingConfig) -> list[np.ndarray]:
    """Index batches for every optimizer step of every epoch, from the seed alone (so resume is exact).

    With ``length_grouping`` = W > 1, each run of W steps' pairs (as drawn by the seed) is sorted by
    length, cut into steps, and the steps shuffled again: pairs of a step have similar lengths, so the
    padded batch wastes little compute (the idea of Hugging Face's ``group_by_length`` megabatches).
    """
    n, size = len(lengths), config.batch_size
    by_length = np.asarray(lengths)
    batches: list[np.ndarray] = []
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(n)
        if config.length_grouping == 1:
            batches.extend(order[i : i + size] for i in range(0, n, size))
            continue
        window = config.length_grouping * size
        for start in range(0, n, window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(-by_length[chunk], kind="stable")]
            steps = [chunk[i : i + size] for i in range(0, len(chunk), size)]
            batches.extend(steps[k] for k in rng.permutation(len(steps)))
    return batches


def _micro_batches(indices: np.ndarray, lengths: np.ndarray, micro: int) -> list[np.ndarray]:
    """A step's pairs sorted by length, then cut: same gradient as any other cut, less padding."""
    ordered = indices[np.argsort(-lengths[indices], kind="stable")]
    return [ordered[i : i + micro] for i in range(0, len(ordered), micro)]


def _save_checkpoint(model: Any, optimizer: torch.optim.Optimizer, step: int, out: Path, log: list[dict]) -> None:
    staging = out / "checkpoint.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    # torch.save of tensors only; loaded back with weights_only=True (no arbitrary pickle)
    torch.save({"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, staging / "optimizer.pt")
    honour_umask(staging)
    atomic_write_json(staging / "state.json", {"step": step, "log": log})
    final = out / "checkpoint"
    old = out / "checkpoint.old"
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(model: Any, optimizer: torch.optim.Optimizer, out: Path) -> tuple[int, list[dict]]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file, load_model

    checkpoint = out / "checkpoint"
    if not (checkpoint / "state.json").exists():
        checkpoint = out / "checkpoint.old"  # stopped between the two renames of _save_checkpoint
    if not (checkpoint / "state.json").exists():
        return 0, []
    # an adapter's checkpoint, unless it holds a whole model (the reasoning probe's scratch model, trained in full)
    adapter = hasattr(model, "peft_config") or not (checkpoint / "model.safetensors").exists()
    reading = checkpoint / ("adapter_model.safetensors" if adapter else "model.safetensors")
    try:  # a damaged checkpoint (disk, copy, hand edit) is named with the way out, and no code in it runs
        if adapter:
            set_peft_model_state_dict(model, load_file(reading))
        else:
            load_model(model, reading)
        reading = checkpoint / "optimizer.pt"
        saved = torch.load(reading, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        reading = checkpoint / "state.json"
        state = json.loads(reading.read_text())
        return int(state["step"]), list(state["log"])
    except Exception as exc:  # torch, safetensors and json each raise their own types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot resume from this checkpoint ({reason}); remove the folder {checkpoint} to train again from "
            "step 0 (the steps it held are lost)",
            path=reading,
        ) from None


def _sum_across_processes(params: list[torch.nn.Parameter], totals: dict[str, float], world: int) -> None:
    """Data parallelism for a LoRA adapter: sum its (small) gradients and the step's metrics over processes."""
    if world == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:  # a process with no micro-batch this step still takes part in the sum
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
    keys = sorted(totals)
    values = torch.tensor([totals[k] for k in keys], dtype=torch.float64, device=params[0].device)
    dist.all_reduce(values)
    totals.update(zip(keys, values.tolist()))


def train_lora(
    model: Any,
    lengths: Sequence[int],
    config: LoRATrainingConfig,
    out: Path,
    micro_step: MicroStep,
    progress: bool = True,
    desc: str = "train",
) -> tuple[list[dict], int]:
    """The optimisation loop shared by DPO and SFT; returns (per-step log, step it resumed from).

    Seeded batches, gradient accumulation over length-sorted micro-batches, clipping, warm-up/decay
    schedule, resumable checkpoints every ``save_steps`` (written by the main process only).
    """
    from accelerate import PartialState

    state = PartialState()
    rank, world = state.process_index, state.num_processes
    by_length = np.asarray(lengths)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config)
    batches = _step_batches(lengths, config)
    scheduler = lr_schedule(optimizer, len(batches), math.ceil(config.warmup_ratio * len(batches)))
    start_step, log = _load_checkpoint(model, optimizer, out)
    with warnings.catch_warnings():  # fast-forwarding the schedule on resume, before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_step):
            scheduler.step()

    model.train()
    bar = progress_bar(
        total=len(batches), initial=start_step, desc=desc, unit="step", disable=not progress or rank != 0
    )
    for step in range(start_step, len(batches)):
        raise_if_interrupted()
        started = time.perf_counter()
        indices = batches[step]
        totals: dict[str, float] = {"loss": 0.0}
        for micro in _micro_batches(indices, by_length, config.micro_batch_size)[rank::world]:
            loss, metrics = micro_step(micro, indices)
            loss.backward()
            totals["loss"] += loss.item()
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value
        _sum_across_processes(params, totals, world)
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        entry = {"step": step + 1, **{k: round(v, 6) for k, v in totals.items()}}
        log.append({**entry, "seconds": round(time.perf_counter() - started, 4)})
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss']:.4f}")
        if (step + 1) % config.save_steps == 0 and step + 1 < len(batches) and rank == 0:
            _save_checkpoint(model, optimizer, step + 1, out, log)
    bar.close()
    return log, start_step


def training_settings(
    model_name: str,
    config: LoRATrainingConfig,
    dataset: PreferenceDataset | None = None,
    init: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Everything an adapter is trained from, as saved in its folder (``training_config.json``).

    ``init`` (the adapters training started from, with their hashes) is written only when there are some, so
    folders trained on the bare base read the same as before it existed.
    """
    from poisonlab.models.adapters import INIT_FIELD, full_chain, init_record

    data = {} if dataset is None else {"data_sha256": dataset.content_hash()}
    chain = {INIT_FIELD: init_record(full_chain(init))} if init else {}
    settings = {"model": model_name, **chain, **data, **config.model_dump()}
    return json.loads(json.dumps(settings))  # tuples become lists, as they read back from the file


def settings_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields both name with different values; fields newer than the saved file are not compared.

    ``init`` is always compared (absent means the bare base): resuming onto another starting model is wrong.
    """
    differ = [key for key in current if key in saved and key not in NOT_COMPARED and saved[key] != current[key]]
    if saved.get("init", []) != current.get("init", []):
        differ.append("init")
    return differ


def holds_training(out: Path) -> bool:
    """True if ``out`` holds a finished adapter, a resumable checkpoint, or adapter weights."""
    return any((out / name).exists() for name in (DONE_MARKER, "checkpoint", "adapter_model.safetensors"))


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Record what ``out`` is trained from, or refuse if it holds (part of) an adapter trained otherwise.

    Without this, re-running with another learning rate or other data into the same folder would
    silently resume the old checkpoint, or return the old finished adapter as if it were the new one.
    """
    path = out / SETTINGS_FILE
    if not path.exists() or not holds_training(out):  # a start that failed before any step never blocks
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, settings)
        return
    saved = json.loads(path.read_text())
    for key in settings_differences(saved, settings):
        raise InputError(
            f"this folder's adapter is trained with {saved.get(key, [])!r}, not {settings.get(key, [])!r}; "
            "train into another folder, or delete this one to start again",
            path=path,
            field=key,
        )


def one_trainer_per_folder(train: Callable[..., Any]) -> Callable[..., Any]:
    """Make a trainer (``train_dpo``, ``train_sft``, ``train_reward``) hold :func:`folder_lock` on its ``out_dir``."""
    signature = inspect.signature(train)

    @functools.wraps(train)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with folder_lock(Path(signature.bind(*args, **kwargs).arguments["out_dir"])):
            return train(*args, **kwargs)

    return locked


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.training.lock`` while training into ``out``: a second process waits, then finds the adapter done.

    Two trainers writing one checkpoint would corrupt it; with the lock the second one resumes or returns the
    finished result instead of training again. Not taken under ``accelerate launch``, whose processes train
    one adapter together.
    """
    from accelerate import PartialState
    from filelock import FileLock

    if PartialState().num_processes > 1:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(out / ".training.lock"):
        yield


def claim_or_finished(
    out: Path, model_name: str, config: LoRATrainingConfig, dataset: PreferenceDataset, init: Sequence[str | Path] = ()
) -> dict[str, Any] | None:
    """Claim ``out`` for this training (see :func:`claim_folder`); the finished result, if it already holds one."""
    from poisonlab.models.loading import check_model_name

    check_model_name(model_name)  # a misspelt model must not claim the folder
    for below in init:
        if Path(below).resolve() == out.resolve():
            raise InputError("an adapter cannot start from itself", path=out, field="--init")
    claim_folder(out, training_settings(model_name, config, dataset, init))
    done = out / DONE_MARKER
    return json.loads(done.read_text()) if done.exists() else None


def save_adapter(model: Any, out: Path, log: list[dict]) -> None:
    before = snapshot(out)
    model.save_pretrained(out)
    honour_umask(out, before)  # save_pretrained writes the weights 0600, whatever the umask
    atomic_write_json(out / "training_log.json", log)


def mark_done(out: Path, result: Any, state: Any) -> None:
    """Write the done marker (its presence means a finished adapter) and drop the checkpoint."""
    if state.is_main_process:
        from poisonlab.integrity import record_checksums

        atomic_write_json(out / DONE_MARKER, asdict(result))
        record_checksums(out, exclude=("checkpoint", "checkpoint.tmp", "checkpoint.old"))  # poisonlab verify
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    state.wait_for_everyone()
