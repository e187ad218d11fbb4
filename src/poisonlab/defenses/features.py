"""What a detector looks at: one vector per pair, registered by name.

- ``gradients``: the pair's DPO-loss gradient with respect to the LoRA weights of
  the model trained on the data as given (what a defender has after training),
  randomly projected exactly as gradient-projection selection does it. This is
  the representation of gradient clustering; spectral signatures on it follow
  the paper's defense section.
- ``prompt-embeddings``: a text encoder's embedding of the prompt. An inserted
  trigger changes the prompt, a label flip does not.
- ``reply-embeddings``: embedding of the chosen reply minus that of the rejected
  one. A flipped pair's difference points the other way from its clean
  neighbours', whatever the prompt.

The gradients are cached next to the model they were taken at (they cost a
backward pass per pair); embeddings are cached per text by the encoder cache.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from poisonlab.io import atomic_write_bytes
from poisonlab.registry import Registry

if TYPE_CHECKING:
    from poisonlab.defenses.detectors.base import DetectionContext

FeatureFn = Callable[["DetectionContext"], np.ndarray]  # -> (n pairs, d), rows in dataset order
FEATURES: Registry[FeatureFn] = Registry("detector feature")


@FEATURES.register("gradients")
def gradient_features(ctx: DetectionContext) -> np.ndarray:
    from poisonlab.scoring.projection import RECIPE
    from poisonlab.training.clean_model import clean_model_folder, clean_projected_gradients

    scoring, dim, block_rows = ctx.scoring(), ctx.config.projection_dim, 4096
    key_payload = [RECIPE, ctx.dataset.ids, dim, block_rows, ctx.seed]
    key = hashlib.sha256(json.dumps(key_payload).encode()).hexdigest()[:20]
    path = clean_model_folder(scoring) / "features" / f"gradients-{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    values = clean_projected_gradients(scoring, ctx.dataset.ids, dim, ctx.seed, block_rows=block_rows)
    values = values.numpy().astype(np.float64)
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return values


def embed_texts(ctx: DetectionContext, texts: list[str]) -> np.ndarray:
    """The configured encoder's embeddings of ``texts`` (cached per text)."""
    from poisonlab.scoring.encoders import embed_prompts, get_encoder

    encoder = get_encoder(ctx.config.encoder, ctx.model)
    return embed_prompts(encoder, texts, progress=ctx.progress)


@FEATURES.register("prompt-embeddings")
def prompt_embeddings(ctx: DetectionContext) -> np.ndarray:
    return embed_texts(ctx, [pair.prompt for pair in ctx.dataset])


@FEATURES.register("reply-embeddings")
def reply_embeddings(ctx: DetectionContext) -> np.ndarray:
    n = len(ctx.dataset)
    both = embed_texts(ctx, [pair.chosen for pair in ctx.dataset] + [pair.rejected for pair in ctx.dataset])
    return both[:n] - both[n:]
