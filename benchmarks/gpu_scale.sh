#!/usr/bin/env bash
# benchmarks/gpu_scale.py on a lent GPU machine (no network): install the carried wheels, run, results in $OUT.
#
# The machine has torch (CUDA), transformers, peft and accelerate but not pydantic or trl: carry them as wheels
# in .whl/ (the `pip download` line of benchmarks/gpu_check.sh; trl==1.16.0 serves the TRL row). Nothing else is
# needed: the 7B model is built from Llama-2-7B's config with random weights on the GPU, in bf16 (13.5 GB).
#
#   device call (carry [".whl"], timeout_s ~540):  bash benchmarks/gpu_scale.sh
#   a dry check on any CPU, in minutes:            bash benchmarks/gpu_scale.sh --tiny-shape
#
# Budget: ~1 min to start and install, engine rows ~1 min (4 builds of 7B + 5 steps each), the largest-batch
# search ~1-2 min, TRL ~1 min, generation <1 min, the SmolLM2 rows ~1-2 min with torch.compile. GPU_SCALE_SECONDS
# (default 500) stops it; the JSON keeps every finished stage. SKIP=trl,small leaves stages out.
set -uo pipefail
cd "$(dirname "$0")/.."
. benchmarks/gpu_env.sh
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1
export OUT="${OUT:-$PWD/gpu-scale-out}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
timeout "${GPU_SCALE_SECONDS:-500}" python3 benchmarks/gpu_scale.py --out "$OUT" --skip "${SKIP:-}" "$@" 2>&1 \
    | grep -v "warnings.warn\|it/s\]"
ls -la "$OUT"
