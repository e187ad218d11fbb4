"""Poison detectors: one base (``base.Detector``), one file per registered detector.

Importing this package registers every detector module beside ``base.py``, so a new detector is one new file;
``DETECTORS.get(name)().detect(ctx)`` runs one.
"""

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
from poisonlab.registry import register_package

register_package(__name__, __path__)

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
