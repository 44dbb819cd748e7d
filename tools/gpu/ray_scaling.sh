#!/usr/bin/env bash
# Issue 17 on one multi-GPU host: the Ray engine over the same >= 2,000 generated photos and a 1080p
# clip with 1, 2, 4 (and 8) GPUs (one model actor each), persons/s per GPU count, the scaling
# efficiency (rate_N / (N x rate_1)), peak resident memory per actor, and every manifest
# compared with the 1-GPU run's. Ray's wheel staged in /tmp/stage by an earlier call (see
# ray_batch.sh). NVLink multicast stays off; this work needs no NCCL.
set -uo pipefail
source "$(dirname "$0")/ray_setup.sh"
PHOTOS=${PHOTOS:-2000}
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
echo "setup took $(( $(date +%s) - START )) s; $GPUS GPUs"
for N in 1 2 4 8; do
  [ "$N" -le "$GPUS" ] || break
  LEFT=$(( ${BUDGET:-570} - ($(date +%s) - START) )); [ "$LEFT" -gt 60 ] || { echo "$N GPUs: no time left"; break; }
  CMP=""; [ "$N" -gt 1 ] && CMP="--compare-with /tmp/scale_1/ray"; rm -f "$OUT/ray_batch.json"
  CUDA_VISIBLE_DEVICES=$(seq -s, 0 $(( N - 1 ))) timeout "$LEFT" python3 tools/gpu/ray_batch.py --model "$MODEL" \
    --detector "$DET" --photos "$PHOTOS" --clip-frames "${CLIP_FRAMES:-90}" --engines ray --photos-dir /tmp/scale_photos \
    --out-root "/tmp/scale_$N" $CMP 2>&1 | grep -E "^ray |manifest|FAILED|steady" | tail -4
  [ -f "$OUT/ray_batch.json" ] && cp "$OUT/ray_batch.json" "$OUT/ray_scaling_$N.json"
done
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rates = {}
for f in sorted(out.glob("ray_scaling_*.json")):
    n = int(f.stem.rsplit("_", 1)[1]); rows = json.loads(f.read_text())
    if rows: rates[n] = rows[0]["steady_persons_s"]
one = rates.get(1)
print("GPUs  steady persons/s  efficiency")
for n, r in sorted(rates.items()):
    print(f"{n:4d}  {r:16.1f}  {r / (n * one):10.2f}" if one else f"{n:4d}  {r:16.1f}")
PY
