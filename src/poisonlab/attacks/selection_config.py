"""Typed, documented options of the model-based selection strategies.

The defaults are the paper's code (arXiv 2406.12091): candidates are the top 5%
of pairs by DPO score, gradients are projected to 4,096 dimensions with a
Rademacher matrix, prompts are clustered into 10 groups. Every field is a
``poisonlab poison`` flag and a ``selection:`` key of an experiment config, and
the values a run used are written to its manifest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from poisonlab.scoring.encoders import EncoderName


class SelectionConfig(BaseModel):
    """Options of the gradient-projection and semantic-diversity strategies (random and dpo-score ignore them)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    candidate_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Share of pairs, highest DPO score first, that gradient-projection and semantic-diversity "
        "choose from (paper: 0.05). The pool is enlarged to the poison budget if that is bigger.",
    )
    projection_dim: int = Field(4096, ge=1, description="Dimension of the random gradient projection (paper: 4096).")
    projection: Literal["rademacher"] = Field(
        "rademacher", description="Random projection: rademacher (+-1 entries, as the paper's TRAK projector)."
    )
    projection_block_rows: int = Field(
        4096,
        ge=1,
        description="Gradient coordinates per generated block of the projection matrix: memory is "
        "block_rows x projection_dim x 4 bytes. Part of the matrix's definition, like its seed.",
    )
    grad_batch_size: int = Field(
        64,
        ge=1,
        description="Per-example gradients projected together; the matrix is regenerated once per batch, so "
        "larger is faster, at batch x (LoRA parameters) x 4 bytes of memory.",
    )
    n_clusters: int = Field(10, ge=1, description="k-means clusters of candidate prompts (paper: 3 and 10).")
    encoder: EncoderName = Field(
        "all-minilm-l6-v2",
        description="Prompt encoder for semantic-diversity: all-minilm-l6-v2, hidden-states (the run's model), "
        "or the path of a sentence-transformers or Hugging Face model folder.",
    )
    embed_batch_size: int = Field(32, ge=1, description="Prompts per forward pass of the encoder.")
