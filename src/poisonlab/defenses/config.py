"""Typed, documented options of the poison detectors.

Defaults follow the papers the detectors come from (spectral signatures: Tran et al.
2018; activation clustering: Chen et al. 2018, as IBM ART implements them) with the
flagging budget of arXiv 2406.12091's defense section: remove 1.5 x the expected
poison share -- when the defender states one. A data team vetting a set usually
cannot, so without ``expected_share`` the budget is adaptive: only what is
significant (trigger mining's test) or a robust outlier (the score detectors) is
flagged. Every field is a ``poisonlab scan`` flag.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poisonlab.defenses.features import FEATURES
from poisonlab.scoring.encoders import EncoderName


class DefenseConfig(BaseModel):
    """Options shared by the detectors; each detector reads the fields it needs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    expected_share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Upper bound on the poisoned share the defender assumes (epsilon). Score-ranking detectors "
        "flag the top eps_multiplier x expected_share of the pairs. Unset: flag only robust outliers "
        "(see outlier_mads); trigger mining flags by its test either way.",
    )
    outlier_mads: float = Field(
        5.0,
        gt=0,
        description="Without expected_share: loss and spectral-signature flag scores above median + this many "
        "MADs (scaled to a normal's sigma).",
    )
    mining_shares: list[float] = Field(
        [0.01, 0.02, 0.05, 0.1, 0.2],
        min_length=1,
        description="trigger mining: shares of the pairs, most suspicious first, whose prompts are tested for "
        "over-represented n-grams (the best share per n-gram counts, Bonferroni-corrected).",
    )
    mining_fdr: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="trigger mining: false discovery rate (Benjamini-Hochberg) at which an n-gram is a suspected "
        "trigger.",
    )
    mining_neighbours: int = Field(
        10,
        ge=1,
        description="trigger-mining-reply: a pair's replies are compared with those of this many pairs with the "
        "most similar prompts.",
    )
    mining_min_count: int = Field(
        3, ge=2, description="trigger mining: an n-gram is tested only if at least this many prompts contain it."
    )
    eps_multiplier: float = Field(
        1.5, gt=0, description="Flag this many times the expected share (spectral signatures' paper: 1.5)."
    )
    features: str = Field(
        "gradients",
        description="What spectral-signature and clustering look at (a registered detector feature, `poisonlab "
        "ls`): gradients (each pair's projected DPO-loss "
        "gradient at the model trained on the data, as in gradient clustering), prompt-embeddings (the "
        "encoder's embedding of the prompt: sees inserted triggers, not flips) or reply-embeddings "
        "(embedding of chosen minus embedding of rejected: points the other way for a flipped pair).",
    )
    encoder: EncoderName = Field(
        "all-minilm-l6-v2",
        description="Text encoder for the embedding features: all-minilm-l6-v2, hidden-states (the model), or "
        "a sentence-transformers or Hugging Face model folder.",
    )
    projection_dim: int = Field(1024, ge=1, description="Dimension the gradients are randomly projected to.")
    n_dims: int = Field(10, ge=1, description="clustering: dimensions kept before k-means (ART's default: 10).")
    reduce: Literal["pca", "ica"] = Field(
        "pca", description="clustering: dimension reduction, PCA (ART's default) or FastICA (the paper's)."
    )
    size_threshold: float = Field(
        0.35,
        gt=0,
        lt=1,
        description="clustering: a cluster holding less than this share of the pairs is flagged as poison "
        "(ART's relative-size rule); if neither is that small, nothing is flagged.",
    )

    @field_validator("features")
    @classmethod
    def _registered_feature(cls, name: str) -> str:
        FEATURES.get(name)  # an unknown name: "did you mean ...? available: ..."
        return name

    def budget(self, n: int) -> int | None:
        """How many pairs a score-ranking detector flags among ``n``; None: adaptive (outliers only)."""
        if self.expected_share is None:
            return None
        return min(n, max(1, round(self.eps_multiplier * self.expected_share * n)))
