"""What a study's folder records about where it ran (``environment.json``): results differ between machines."""

from __future__ import annotations

import platform
import sys
from typing import Any

from poisonlab import __version__
from poisonlab.hardware import compute_facts, default_device, resolve_bf16, resolved_threads


def environment(bf16: bool | str, threads: int | None, precision: str | None = None) -> dict[str, Any]:
    """Versions, the command line, and ``compute``: the precision ``bf16`` resolves to here, the device, the CPU
    features, torch's kernel dispatch and the CPU model (``hardware.compute_facts``)."""
    import peft
    import torch
    import transformers

    return {
        "compute": compute_facts(bf16),
        "poisonlab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "platform": platform.platform(),
        "precision": precision or ("bf16" if resolve_bf16(bf16, default_device()) else "fp32"),
        "threads": resolved_threads(threads),
        "argv": sys.argv,
    }
