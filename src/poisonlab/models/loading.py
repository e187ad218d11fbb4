"""Resolve a model name to a local checkpoint and load it with transformers.

``MODEL`` may be a built-in name (``tiny``, ``smollm2-135m``), a local Hugging
Face folder, or a Hub id (downloaded by transformers when there is a network).
Remote code is never trusted and only safetensors weights are loaded: a local
folder holding a pickle is refused before anything in it is read (``safety.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from poisonlab.errors import InputError
from poisonlab.io import cache_dir
from poisonlab.models.safety import check_weights_folder
from poisonlab.registry import Registry

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BUILTIN_MODELS: Registry[Callable[[Path], Path]] = Registry("built-in model")


@BUILTIN_MODELS.register("tiny")
def _tiny(target: Path) -> Path:
    from poisonlab.models.tiny import build_tiny

    return build_tiny(target)


@BUILTIN_MODELS.register("smollm2-135m")
def _smollm2(target: Path) -> Path:
    from poisonlab.models.smollm2 import convert_smollm2

    return convert_smollm2(target)


def _builtin_folder(name: str) -> Path:
    """The cache folder of a built-in model; also its identity in every score cache (``model_identity``).

    ``tiny`` is trained here, and its fp32 weights follow torch's kernel dispatch (AVX512, AVX2, DEFAULT
    each build other weights from the same seed), so its folder names the dispatch: a run under
    ``ATEN_CPU_CAPABILITY=default`` builds and uses its own ``tiny``, never one built with other kernels.
    """
    from poisonlab.models.tiny import TINY_RECIPE

    if name == "tiny":
        from poisonlab.hardware import torch_cpu_capability

        return cache_dir() / "models" / f"tiny-{TINY_RECIPE}-{torch_cpu_capability().lower()}"
    return cache_dir() / "models" / f"{name}-v1"  # bump a version to rebuild every cache


def check_model_name(name: str | Path) -> str:
    """``name`` if it can name a model (built-in, local model folder, Hub id); an InputError otherwise.

    Cheap (nothing is built or loaded), so commands call it before they write anything, even where
    the model is used only later or, as with the random strategy, not at all.
    """
    import difflib

    text = str(name)
    if text in BUILTIN_MODELS:
        return text
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError("not a Hugging Face model folder (no config.json)", path=path, field="model")
        return text
    if text.count("/") == 1 and not text.startswith((".", "/")):
        return text  # a Hub id; transformers downloads it when there is a network
    close = difflib.get_close_matches(text, BUILTIN_MODELS.names(), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise InputError(
        f"unknown model {text!r}.{hint} Use a built-in name ({', '.join(BUILTIN_MODELS.names())}), "
        "a local checkpoint folder, or a Hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'",
        field="model",
    )


def resolve_model(name: str | Path) -> str:
    """Return something ``from_pretrained`` accepts: a local folder or a Hub id."""
    text = check_model_name(name)
    if text in BUILTIN_MODELS:
        folder = _builtin_folder(text)
        if not (folder / "config.json").exists():
            BUILTIN_MODELS.get(text)(folder)
        return str(folder)
    path = Path(text).expanduser()
    if path.exists():
        return str(check_weights_folder(path))  # before any tokenizer, config or weight is read
    return text


def model_identity(name: str | Path) -> str:
    """A cache-key string for a model: built-in names are already versioned."""
    text = str(name)
    if text in BUILTIN_MODELS:
        return _builtin_folder(text).name
    path = Path(text).expanduser()
    if path.exists():
        return f"{path.name}-{_folder_digest(path.resolve())[:12]}"
    return text


def _folder_digest(folder: Path) -> str:
    """sha256 over config.json and the weights: two fine-tunes of one architecture are two references.

    Memoised per file size and mtime, so a sweep hashes a multi-gigabyte checkpoint once per process.
    """
    import hashlib

    from poisonlab.io import sha256_file_memo

    digest = hashlib.sha256()
    files = [folder / "config.json", *sorted(folder.glob("*.safetensors")), *sorted(folder.glob("*.gguf"))]
    for file in (f for f in files if f.is_file()):
        digest.update(f"{file.name}:{sha256_file_memo(file)}".encode())
    return digest.hexdigest()


def load_tokenizer(name: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name), trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str | Path, device: str | None = None, bf16: bool | str = False) -> PreTrainedModel:
    """Load the base causal LM on ``device`` (default: the GPU if there is one).

    fp32 by default (the engine autocasts). ``bf16`` (True, or ``"auto"`` where the hardware has native bf16):
    the base is held in bf16 once (:func:`hold_in_bf16`), so autocast has nothing to re-cast at every step.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from poisonlab.hardware import default_device

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(name), trust_remote_code=False, use_safetensors=True, dtype=torch.float32
    )
    model.config.use_cache = False
    device = device or default_device()
    return hold_in_bf16(model, device) if bf16_resolved(bf16, device) else model.to(device)


def bf16_resolved(bf16: bool | str, device: str) -> bool:
    """What a ``bf16`` setting means on ``device`` (``"auto"``: native bf16 there); see ``hardware.resolve_bf16``."""
    from poisonlab.hardware import resolve_bf16

    return resolve_bf16(bf16, str(device).split(":")[0])


def hold_in_bf16(model: PreTrainedModel, device: str | None = None) -> PreTrainedModel:
    """The frozen base held in bf16 once: every parameter cast to bf16 (buffers such as the rotary
    frequencies stay fp32), then moved to ``device``; on a CPU, eager attention.

    Under autocast the matmuls see the same bf16 weights as when autocast casts fp32 weights at every
    call, without the casts (15% of a SmolLM2 LoRA step on an AMX CPU); the residual stream and the
    norms then run in bf16 too, as in a model loaded in bf16 on a GPU. LoRA weights added afterwards
    stay fp32 (PEFT keeps adapters in fp32), and so do their gradients and optimizer state. On a CPU,
    torch's fused (flash) attention backward is slower than the plain matmul-softmax-matmul one at
    these sizes (benchmarks/bf16.py); eager attention keeps the T x T weights per layer for the
    backward pass, memory that grows with the square of the sequence length.
    """
    import torch

    for param in model.parameters():
        param.data = param.data.to(torch.bfloat16)
    device = device or str(next(model.parameters()).device)
    if str(device).startswith("cpu"):
        model.set_attn_implementation("eager")
    return model.to(device)
