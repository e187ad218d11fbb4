"""Stage: models -- built-in names, local folders and Hub ids, tokenised the same way."""

from poisonlab.models.encoding import EncodedPair, encode_pairs
from poisonlab.models.loading import BUILTIN_MODELS, load_model, load_tokenizer, model_identity, resolve_model
from poisonlab.models.safety import check_adapter_folder, check_weights_folder, load_adapter

__all__ = [
    "BUILTIN_MODELS",
    "EncodedPair",
    "check_adapter_folder",
    "check_weights_folder",
    "encode_pairs",
    "load_adapter",
    "load_model",
    "load_tokenizer",
    "model_identity",
    "resolve_model",
]
