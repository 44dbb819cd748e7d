#!/usr/bin/env bash
# On the GPU host: the local and the Ray batch engines over the same generated photos
# (tools/gpu/ray_batch.py). Ray's wheel (79 MB) does not fit in one call's carry with the rest:
# an earlier call leaves a stripped copy (no Java jar, RLlib or dashboard web client) in
# /tmp/stage; this one installs it with the other carried wheels.
set -uo pipefail
source "$(dirname "$0")/ray_setup.sh"; tail -2 "$OUT/make.log" 2>/dev/null
echo "setup took $(( $(date +%s) - START )) s"
timeout $(( ${BUDGET:-570} - ($(date +%s) - START) )) python3 tools/gpu/ray_batch.py --model "$MODEL" \
  --detector "$DET" --photos "${PHOTOS:-500}" --engines "${ENGINES:-local,ray}" --clip-frames "${CLIP_FRAMES:-0}" 2>&1 \
  | grep -v "W1201\|Warning\|warn(\|DeprecationWarning" | tail -60
