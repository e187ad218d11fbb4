"""Poison detectors: one base (``base.Detector``), one file per registered detector.

Importing this package registers every detector module beside ``base.py``, so a new detector is one new file;
``DETECTORS.get(name)().detect(ctx)`` runs one.
"""

import importlib
import pkgutil

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

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

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
