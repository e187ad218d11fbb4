"""What the machine can do fast; decides defaults such as bf16 autocast."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORCE_BF16 = "POISONLAB_FORCE_BF16"  # 1: act as if the CPU had native bf16; 0: as if it had not


@functools.cache
def cpu_features() -> dict[str, bool]:
    """The CPU features that change what poisonlab computes or how fast: recorded with every result."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    return {name: name in flags for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}


KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")  # pick the SIMD kernels


def torch_cpu_capability() -> str:
    """The SIMD kernels torch dispatches to (``AVX512``, ``AVX2``, ``DEFAULT``; ``ATEN_CPU_CAPABILITY`` lowers it).

    fp32 results depend on it: the kernels sum in different orders, and training amplifies the last-bit
    differences (the ``tiny`` build's weights differ between AVX512, AVX2 and DEFAULT; the quickstart's
    backdoor success moves by up to 2.5 points between dispatches on one CPU).
    """
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name: BLAS libraries (MKL) choose kernels by vendor and model, not only by ISA."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def kernel_facts() -> dict[str, Any]:
    """What picks the fp32 kernels here: torch's dispatch, the CPU, and the variables that override them."""
    return {
        "torch_cpu_capability": torch_cpu_capability(),
        "cpu_model": cpu_model(),
        **{name: os.environ.get(name) for name in KERNEL_ENV},
    }


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX512_BF16 or AMX): ``bf16: auto`` then turns autocast on.

    Without them PyTorch emulates bf16 and autocast is *slower* than fp32: on an
    AVX2-only EPYC here a SmolLM2-135M LoRA step took 216 s under bf16 vs 7 s in fp32.
    So the same command computes in bf16 on one machine and fp32 on another, and results
    can differ: ``POISONLAB_FORCE_BF16=1`` (or ``0``) pins the choice, for tests and comparisons.
    """
    forced = os.environ.get(FORCE_BF16)
    if forced in ("0", "1"):
        return forced == "1"
    features = cpu_features()
    # torch reaches those instructions only from its AVX512 kernels: under ATEN_CPU_CAPABILITY=avx2 or
    # default it emulates bf16 (slow), and on an AMX CPU its bf16 attention then fails ("pack_vnni2 is only
    # supported when avx512 is supported", torch 2.13). So `auto` is fp32 there.
    return (features["avx512_bf16"] or features["amx_bf16"]) and torch_cpu_capability().startswith("AVX512")


def compute_facts(bf16: bool | str, device: str | None = None) -> dict[str, Any]:
    """How a result was computed: the precision ``bf16`` resolves to here, the device, the CPU features,
    torch's kernel dispatch and the CPU model (see ``kernel_facts``).

    Recorded in poison manifests and run folders, because a bf16 and an fp32 run of the same
    command can differ (a dpo-score selection in bf16 can pick other pairs than in fp32).
    """
    device = device or default_device()
    return {
        "precision": "bf16 autocast" if resolve_bf16(bf16, device) else "fp32",
        "bf16_setting": bf16,
        "device": device,
        "cpu_features": cpu_features(),
        FORCE_BF16: os.environ.get(FORCE_BF16),
        **kernel_facts(),
    }


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_bf16(setting: bool | str, device: str) -> bool:
    """``"auto"`` -> bf16 where the hardware runs it natively."""
    if setting != "auto":
        return bool(setting)
    if device == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


@functools.cache
def default_threads() -> int:
    """CPU threads when a config leaves ``threads`` unset: ``OMP_NUM_THREADS`` if set, else the free cores.

    Free cores: the CPUs this process may use (``os.sched_getaffinity``) less the 1-minute load average,
    at least 1. torch's own default (every core) oversubscribes a busy machine, and threads then spin-wait
    on each other: a study took 61 min under load instead of ~2. Decided once per process, at its first
    call (the CLI makes it at start-up, before its own work adds to the load), so a whole study uses one
    count.
    """
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def resolved_threads(threads: int | None) -> int:
    """The thread count a ``threads`` setting means: itself, or ``default_threads()`` when None."""
    return threads if threads is not None else default_threads()


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` torch CPU threads (None: ``default_threads()``), restoring it after.

    On a CPU, more threads than free physical cores is the commonest 10x slow-down (threads spin-wait
    on each other), so the count is a setting, and its default looks at what is free.
    """
    import torch

    threads = resolved_threads(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
