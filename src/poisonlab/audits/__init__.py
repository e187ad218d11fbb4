"""Stage: audits -- bias audits by optimised perturbation (arXiv 2502.14182, Sec. 4).

Probes that differ only in a protected attribute (``probes.py``), a likelihood bias score
(``score.py``), a first-order search for the preference pairs whose flip moves it most
(``perturb.py``), what those pairs share (``features.py``), the audit with its baselines
(``audit.py``), and a clearly synthetic demonstration set (``synthetic_careers.py``).
"""

from poisonlab.audits.audit import AUDIT_FILE, BiasAuditConfig, run_bias_audit
from poisonlab.audits.probes import BiasProbe, read_probes, split_probes
from poisonlab.audits.score import bias_summary, bias_values, model_bias
from poisonlab.audits.synthetic_careers import synthetic_careers_pairs

__all__ = [
    "AUDIT_FILE",
    "BiasAuditConfig",
    "BiasProbe",
    "bias_summary",
    "bias_values",
    "model_bias",
    "read_probes",
    "run_bias_audit",
    "split_probes",
    "synthetic_careers_pairs",
]
