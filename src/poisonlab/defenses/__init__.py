"""Stage: defenses -- score every pair for suspicion, flag some, judge the flags, keep the rest."""

from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.detectors import (  # importing it registers every detector
    DETECTORS,
    Detection,
    DetectionContext,
    Detector,
    DetectorFacts,
    spectral_signature_scores,
)
from poisonlab.defenses.features import FEATURES
from poisonlab.defenses.scan import (
    DetectionMetrics,
    ScanResult,
    detection_metrics,
    poisoned_ids_from_manifest,
    scan,
    write_scan,
)

__all__ = [
    "DETECTORS",
    "FEATURES",
    "DefenseConfig",
    "Detection",
    "DetectionContext",
    "DetectionMetrics",
    "Detector",
    "DetectorFacts",
    "ScanResult",
    "detection_metrics",
    "poisoned_ids_from_manifest",
    "scan",
    "spectral_signature_scores",
    "write_scan",
]
