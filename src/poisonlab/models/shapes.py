"""A model's shape (layers, widths, vocabulary) without its weights: what cost estimates need.

Read from the model's ``config.json`` where there is one on this machine (a built-in model already built, a local
folder), else from a table of the shapes the papers use (their published ``config.json`` values), so a dry run
of a 7B study needs neither the weights nor a network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from poisonlab.errors import InputError


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer with gated (SwiGLU) MLPs, as Llama, Mistral, Gemma and SmolLM2 are."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False  # the LM head shares the input embedding's weights
    head_dim: int | None = None  # default hidden // heads (Gemma-7B: 256, not 3072 // 16)

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        """Weights of one decoder layer's linear maps: q, k, v, o and the three MLP maps (norms left out)."""
        attention = self.hidden * self.dim * (2 * self.heads + 2 * self.kv_heads)
        return attention + 3 * self.hidden * self.intermediate

    @property
    def body_params(self) -> int:
        """Weights every token passes through (all decoder layers); the LM head is counted apart."""
        return self.layers * self.layer_params

    @property
    def head_params(self) -> int:
        return self.hidden * self.vocab

    @property
    def params(self) -> int:
        """All weights: layers, input embedding and, unless tied, the LM head."""
        return self.body_params + self.head_params * (1 if self.tied else 2)

    def lora_params(self, rank: int, modules: list[str]) -> int:
        """Weights of a LoRA adapter of ``rank`` on ``modules`` of every layer (A: in x r, B: r x out)."""
        h, q, kv, i = self.hidden, self.heads * self.dim, self.kv_heads * self.dim, self.intermediate
        sizes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}
        sizes |= {"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
        return self.layers * sum(rank * (a + b) for name, (a, b) in sizes.items() if name in modules)


# Published config.json values (Hugging Face Hub), for dry runs without the weights.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "meta-llama/Llama-2-7b-hf": ModelShape(4096, 32, 32, 32, 11008, 32000),
    "meta-llama/Llama-2-7b-chat-hf": ModelShape(4096, 32, 32, 32, 11008, 32000),
    "mistralai/Mistral-7B-v0.1": ModelShape(4096, 32, 32, 8, 14336, 32000),
    "google/gemma-7b": ModelShape(3072, 28, 16, 16, 24576, 256000, tied=True, head_dim=256),
    "smollm2-135m": ModelShape(576, 30, 9, 3, 1536, 49152, tied=True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ModelShape(576, 30, 9, 3, 1536, 49152, tied=True),
}


def shape_from_config(config: dict) -> ModelShape:
    """The shape in a Hugging Face ``config.json`` (Llama-style keys)."""
    try:
        heads = int(config["num_attention_heads"])
        return ModelShape(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            head_dim=config.get("head_dim"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"config.json lacks a decoder shape field ({exc})", field="model") from None


def model_shape(name: str | Path) -> ModelShape:
    """The shape of a model by any name poisonlab accepts, without loading weights or reaching a network.

    A local folder's or an already-built built-in model's ``config.json`` wins; else the table of known shapes;
    else an InputError naming what to do (give a local folder, or a known Hub id).
    """
    from poisonlab.models.loading import BUILTIN_MODELS, _builtin_folder

    text = str(name)
    folder = _builtin_folder(text) if text in BUILTIN_MODELS else Path(text).expanduser()
    if (folder / "config.json").is_file():
        return shape_from_config(json.loads((folder / "config.json").read_text()))
    if text in KNOWN_SHAPES:
        return KNOWN_SHAPES[text]
    known = ", ".join(sorted(KNOWN_SHAPES))
    raise InputError(
        f"no shape known for {text!r} on this machine: give a local model folder (its config.json is read) or "
        f"one of {known}",
        field="model",
    )
