#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on a machine without network: install the carried wheels, run it.
#
# The GPU machine has torch (CUDA), transformers, peft, accelerate, numpy, scipy, scikit-learn, pyarrow,
# typer, rich, tqdm, matplotlib, pyyaml, safetensors and tokenizers, but not pydantic, trl, datasets or gguf.
# Fetch those (and what they need that is not there) as wheels into .whl/ first, on a machine with PyPI
# (the repository and .whl/ together must stay under 64 MiB), pinned to the versions tested here:
#
#   pip download -d .whl --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
#     --abi cp312 --abi abi3 --abi none \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#     pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#     trl==1.16.0 datasets==5.2.0 gguf==0.19.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 \
#     fsspec==2026.9.0 pandas==3.1.1 typing_extensions==4.16.0
#
# (17 MB: pydantic, with a typing_extensions new enough for pydantic_core, is all poisonlab itself needs;
# trl, datasets and what they import serve the TRL rows of the engine benchmark, left out if trl does not
# import. Checked: these wheels install with the command below and pydantic imports on CPython 3.12.)
# Then run, with the wheels carried along (e.g. the device tool's carry: [".whl"]):
#
#   bash benchmarks/gpu_check.sh              # ~6 min on an H200; results in $OUT (or gpu-check-out/)
#   bash benchmarks/gpu_check.sh --cpu        # the dry check on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
. benchmarks/gpu_env.sh
export OUT="${OUT:-$PWD/gpu-check-out}"
python3 benchmarks/gpu_check.py --out "$OUT" "$@"
