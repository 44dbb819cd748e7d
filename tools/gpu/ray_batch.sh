#!/usr/bin/env bash
# On the GPU host: the local and the Ray batch engines over the same generated photos
# (tools/gpu/ray_batch.py). Ray's wheel (79 MB) does not fit in one call's carry with the rest:
# an earlier call leaves a stripped copy (no Java jar, RLlib or dashboard web client) in
# /tmp/stage; this one installs it with the other carried wheels.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl /tmp/stage/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/full}; DET=${DET:-/tmp/full_det}  # made here unless an earlier run left them
[ -f "$DET/config.json" ] || python3 -m sam3dbody_gui.cli make-synthetic "$DET" --detector --size full > "$OUT/make.log" 2>&1 &
[ -f "$MODEL/model.ckpt" ] || python3 -m sam3dbody_gui.cli make-synthetic "$MODEL" --size full --exports none >> "$OUT/make.log" 2>&1
wait; tail -2 "$OUT/make.log" 2>/dev/null
echo "setup took $(( $(date +%s) - START )) s"
timeout $(( ${BUDGET:-570} - ($(date +%s) - START) )) python3 tools/gpu/ray_batch.py --model "$MODEL" \
  --detector "$DET" --photos "${PHOTOS:-500}" --engines "${ENGINES:-local,ray}" --clip-frames "${CLIP_FRAMES:-0}" 2>&1 \
  | grep -v "W1201\|Warning\|warn(\|DeprecationWarning" | tail -60
