"""What picks the kernels: recorded with every result, and naming the cache of the model poisonlab builds."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from poisonlab import hardware


def test_compute_facts_record_the_kernel_dispatch_and_the_variables_that_change_it(monkeypatch):
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    facts = hardware.compute_facts(False)
    assert facts["precision"] == "fp32"
    assert facts["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and facts["ONEDNN_MAX_CPU_ISA"] is None
    assert facts["ATEN_CPU_CAPABILITY"] == os.environ.get("ATEN_CPU_CAPABILITY")
    assert isinstance(facts["cpu_model"], str) and facts["cpu_model"]


def test_tiny_is_cached_per_kernel_dispatch(tmp_path):
    """fp32 training on other kernels builds other weights: a run under ATEN_CPU_CAPABILITY=default never
    reuses a ``tiny`` built with AVX512 or AVX2 kernels (nor the scores cached for it)."""
    script = (
        "from poisonlab.models.loading import _builtin_folder, model_identity; "
        "print(_builtin_folder('tiny').name, model_identity('tiny'))"
    )
    env = {**os.environ, "POISONLAB_CACHE": str(tmp_path)}
    native = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    env["ATEN_CPU_CAPABILITY"] = "default"
    portable = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    if "ATEN_CPU_CAPABILITY" not in os.environ:
        capability = torch.backends.cpu.get_cpu_capability().lower()
        assert native.stdout.split() == [f"tiny-v1-{capability}"] * 2
    assert portable.stdout.split() == ["tiny-v1-default"] * 2


def test_auto_bf16_needs_the_avx512_kernels_as_well_as_the_instructions(monkeypatch):
    """torch reaches AVX512_BF16/AMX only from its AVX512 kernels; under a lowered dispatch `auto` is fp32."""
    monkeypatch.delenv(hardware.FORCE_BF16, raising=False)
    flags = {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": True}
    monkeypatch.setattr(hardware, "cpu_features", lambda: flags)
    for capability, expected in (("AVX512", True), ("AVX2", False), ("DEFAULT", False)):
        monkeypatch.setattr(hardware, "torch_cpu_capability", lambda capability=capability: capability)
        assert hardware.cpu_has_fast_bf16() is expected
        assert hardware.resolve_bf16("auto", "cpu") is expected and hardware.resolve_bf16(False, "cpu") is False
    monkeypatch.setattr(hardware, "cpu_features", lambda: {**flags, "avx512_bf16": False, "amx_bf16": False})
    monkeypatch.setattr(hardware, "torch_cpu_capability", lambda: "AVX512")
    assert hardware.cpu_has_fast_bf16() is False
