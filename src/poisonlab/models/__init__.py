"""Stage: models -- built-in names, local folders and Hub ids, tokenised the same way."""

from poisonlab.models.encoding import EncodedPair, encode_pairs
from poisonlab.models.loading import BUILTIN_MODELS, load_model, load_tokenizer, model_identity, resolve_model

__all__ = [
    "BUILTIN_MODELS",
    "EncodedPair",
    "encode_pairs",
    "load_model",
    "load_tokenizer",
    "model_identity",
    "resolve_model",
]
