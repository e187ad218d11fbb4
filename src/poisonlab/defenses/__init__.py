"""Stage: defenses -- score every pair for suspicion, flag some, judge the flags, keep the rest."""

from poisonlab.defenses import trigger_mining, trigger_mining_demo  # noqa: F401 (register their detectors)
from poisonlab.defenses.config import DefenseConfig
from poisonlab.defenses.detectors import (
    DETECTORS,
    Detection,
    DetectionContext,
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
    "DetectorFacts",
    "ScanResult",
    "detection_metrics",
    "poisoned_ids_from_manifest",
    "scan",
    "spectral_signature_scores",
    "write_scan",
]
