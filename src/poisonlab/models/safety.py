"""Refuse model and adapter folders that could run code when loaded, before anything in them is read.

A pickle (PyTorch's ``.bin``/``.pt``/``.pth``/``.ckpt``, ``.pkl``) runs whatever its author put in it the
moment it is unpickled, and a config with ``auto_map`` asks transformers to import Python files shipped
in the folder. People point poisonlab at checkpoints they did not make, so a folder is checked by name
alone, before any tokenizer, config or weight is touched: only safetensors weights (and GGUF, which the
built-in conversion reads) are loaded, and code in a folder is never run.
"""

from __future__ import annotations

import json
from pathlib import Path

from poisonlab.errors import InputError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", ".gguf")


def check_weights_folder(folder: str | Path, kind: str = "model", recursive: bool = False) -> Path:
    """Return ``folder`` if it holds safetensors (or GGUF) weights and no pickle; else an InputError.

    The error names the first pickle file found. ``recursive`` also looks in sub-folders (a
    sentence-transformers folder keeps a module's weights in one).
    """
    folder = Path(folder)
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    for path in files:
        if path.name.lower().endswith(PICKLE_SUFFIXES):
            article = "an" if kind[0] in "aeiou" else "a"
            raise InputError(
                f"refusing a pickle file in {article} {kind} folder: poisonlab loads only safetensors weights, because "
                "unpickling runs any code the file's author put in it; convert it to safetensors "
                "(or remove it if it is not weights)",
                path=path,
            )
    if not any(p.name.lower().endswith(WEIGHT_SUFFIXES) for p in files):
        raise InputError(f"no safetensors weights in this {kind} folder", path=folder)
    config = folder / "config.json"
    if config.is_file():
        try:
            values = json.loads(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"config.json is not valid JSON: {exc}", path=config) from None
        if isinstance(values, dict) and values.get("auto_map"):
            raise InputError(
                "this model needs its own Python code (auto_map); poisonlab never runs code from a model folder",
                path=config,
                field="auto_map",
            )
    return folder


def check_adapter_folder(folder: str | Path) -> Path:
    """A PEFT adapter folder: ``adapter_config.json`` and safetensors weights, no pickle."""
    folder = Path(folder)
    if (folder / "training_config.json").is_file() and not (folder / "training_done.json").is_file():
        raise InputError(  # poisonlab's own folder, its training stopped before the end: never taken as done
            "this adapter's training has not finished (no training_done.json): run the same train command again",
            path=folder,
        )
    if not folder.is_dir() or not (folder / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=folder)
    check_weights_folder(folder, kind="adapter")
    if not (folder / "adapter_model.safetensors").is_file():
        raise InputError("no adapter_model.safetensors in this adapter folder", path=folder)
    return folder


def load_adapter(model: object, adapter: str | Path, trainable: bool = False) -> object:
    """``model`` with the LoRA adapter in ``adapter`` on it: the one place poisonlab loads an adapter.

    The folder is checked first (:func:`check_adapter_folder`): with ``adapter_model.safetensors`` present and
    no pickle beside it, peft has nothing to fall back to.
    """
    from peft import PeftModel

    folder = check_adapter_folder(adapter)
    return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
