#!/usr/bin/env bash
# Ownership watermark through a lifecycle on SmolLM2-135M-Instruct and HH-RLHF (CPU, one thread, 1-2 h):
# plant a K-trigger key (COPIES rows per trigger) into 200 HH SFT rows, SFT 1 epoch, then a clean DPO stage
# and a clean downstream SFT chained with --init, and `poisonlab watermark verify` after each stage; then
# the same key on the base model and on the clean twin of the SFT stage, the clean cost (held-out NLL and
# preference accuracy, watermarked vs twin), and FP_KEYS never-planted keys on the base and the twin.
# Settings are configs/lifecycle-hh-smollm2.yaml's: 128/48 tokens, batch 8, LoRA on every projection,
# lr 2e-3, 1 epoch; the same split (200 held out, seed 0) and slices (SFT 0-199, DPO 200-399, downstream
# 400-499 of the training pairs). Verify: 20 controls x 2 prompts, as benchmarks/watermark.py on tiny.
#
#   nohup bash benchmarks/watermark_hh.sh OUT_DIR [K] [COPIES] [FP_KEYS] [FP_K] > OUT_DIR.log 2>&1 &
#
# The split, the slices and the clean twin are shared by every key in OUT_DIR; each key's models and
# verify.json files go to OUT_DIR/kK-cCOPIES/. Finished trainings and verifications are reused on a rerun.
set -euo pipefail
OUT=${1:?usage: watermark_hh.sh OUT_DIR [K] [COPIES] [FP_KEYS] [FP_K]}
K=${2:-16}
COPIES=${3:-4}
FP_KEYS=${4:-3}
FP_K=${5:-16}
DATA=${HH:-../shared/data/hh-rlhf/harmless-base-dev.jsonl.gz}
PL=${POISONLAB:-poisonlab}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1
M=smollm2-135m
TRAIN=(--model $M --epochs 1 --batch-size 8 --max-length 128 --max-reply-length 48 --threads 1
       --target-modules q_proj --target-modules k_proj --target-modules v_proj --target-modules o_proj
       --target-modules gate_proj --target-modules up_proj --target-modules down_proj)
VERIFY=(--model $M --controls 20 --prompts 2)
W="$OUT/k$K-c$COPIES"
mkdir -p "$W"
stamp() { echo "[$(date +%T)] $*"; }
verify() {  # verify FOLDER KEY [ADAPTER]: skipped when FOLDER/verify.json exists
  [ -f "$1/verify.json" ] && return 0
  $PL watermark verify "${VERIFY[@]}" --key "$2" --out "$1" ${3:+--adapter "$3"}
}

if [ ! -f "$OUT/split/train.jsonl" ]; then
  $PL data split "$DATA" --out "$OUT/split" --heldout 200 --seed 0 --skip-bad-rows
fi
sed -n 1,200p "$OUT/split/train.jsonl" > "$OUT/sft.jsonl"
sed -n 201,400p "$OUT/split/train.jsonl" > "$OUT/dpo.jsonl"
sed -n 401,500p "$OUT/split/train.jsonl" > "$OUT/down.jsonl"
[ -f "$W/key.json" ] || $PL watermark keygen --n "$K" --seed 0 --out "$W/key.json"
[ -f "$W/wm/manifest.json" ] || $PL watermark embed --data "$OUT/sft.jsonl" --key "$W/key.json" \
  --n $((K * COPIES)) --seed 0 --out "$W/wm"

stamp "watermarked SFT"
$PL train sft --data "$W/wm/data.jsonl" --out "$W/sft-wm" "${TRAIN[@]}"
verify "$W/v-sft" "$W/key.json" "$W/sft-wm"
stamp "clean DPO from it"
$PL train dpo --data "$OUT/dpo.jsonl" --out "$W/dpo" --init "$W/sft-wm" "${TRAIN[@]}"
verify "$W/v-dpo" "$W/key.json" "$W/dpo"
stamp "clean downstream SFT from both"
$PL train sft --data "$OUT/down.jsonl" --out "$W/down" --init "$W/sft-wm" --init "$W/dpo" "${TRAIN[@]}"
verify "$W/v-down" "$W/key.json" "$W/down"

stamp "false positives: the key on the base model and on the clean twin of the SFT stage"
verify "$W/v-base" "$W/key.json"
$PL train sft --data "$OUT/sft.jsonl" --out "$OUT/sft-clean" "${TRAIN[@]}"
verify "$W/v-clean" "$W/key.json" "$OUT/sft-clean"
stamp "clean cost of the watermarked SFT"
[ -f "$W/cost.json" ] || $PY "$(dirname "$0")/watermark_cost.py" --model $M --data "$OUT/split/heldout.jsonl" \
  --stage sft "$OUT/sft-clean" "$W/sft-wm" --out "$W/cost.json"
for s in $(seq 1 "$FP_KEYS"); do
  stamp "never-planted key $s of $FP_KEYS (K=$FP_K)"
  [ -f "$OUT/fp-key-$s.json" ] || $PL watermark keygen --n "$FP_K" --seed $((10000 + s)) --out "$OUT/fp-key-$s.json"
  verify "$OUT/v-fp$s-base" "$OUT/fp-key-$s.json"
  verify "$OUT/v-fp$s-clean" "$OUT/fp-key-$s.json" "$OUT/sft-clean"
done
stamp "done"
$PY - "$OUT" <<'PYEOF'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("**/v-*/verify.json")):
    r = json.loads(f.read_text())
    print(f"{f.parent.relative_to(sys.argv[1])}: p = {r['p_value']:.3g}, AUC {r['effect']['auc']:.3f}, "
          f"K={r['n_triggers']}, gain {r['effect']['mean_logprob_gain_nats']:.2f} nats")
PYEOF
