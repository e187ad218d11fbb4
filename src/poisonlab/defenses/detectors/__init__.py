"""Poison detectors: one base (``base.Detector``), one file per registered detector.

Importing this package registers every detector; ``DETECTORS.get(name)().detect(ctx)`` runs one.
"""

from poisonlab.defenses.detectors import (  # noqa: F401 (each registers its detector)
    clustering,
    loss,
    spectral_signature,
    trigger_mining,
    trigger_mining_demo,
    trigger_mining_reply,
)
from poisonlab.defenses.detectors.base import (
    DETECTORS,
    Detection,
    DetectionContext,
    Detector,
    DetectorFacts,
    flag_top,
    outliers,
)
from poisonlab.defenses.detectors.spectral_signature import spectral_signature_scores

__all__ = [
    "DETECTORS",
    "Detection",
    "DetectionContext",
    "Detector",
    "DetectorFacts",
    "flag_top",
    "outliers",
    "spectral_signature_scores",
]
