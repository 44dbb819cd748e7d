#!/usr/bin/env bash
# Waits up to $1 seconds for the chain of tools/gpu/chain_start.sh: returns at once when it has
# finished or a step failed; copies each step's log and $OUT files into $OUT as one tarball and
# the newest logs as plain files (the device returns at most 8 files).
set -u
CHAIN=/tmp/chain
limit=${1:-560}
t0=$(date +%s)
seen_fail=$(grep -c ' rc [1-9]' "$CHAIN/status" 2>/dev/null)
while :; do
  if grep -q '^done' "$CHAIN/status" 2>/dev/null; then break; fi
  now_fail=$(grep -c ' rc [1-9]' "$CHAIN/status" 2>/dev/null)
  if [ "${now_fail:-0}" -gt "${seen_fail:-0}" ]; then echo "a step failed"; break; fi
  if [ $(( $(date +%s) - t0 )) -ge "$limit" ]; then echo "still running"; break; fi
  sleep 5
done
cat "$CHAIN/status" "$CHAIN/chain.log" 2>/dev/null
tar czf "$OUT/chain.tgz" -C /tmp chain --exclude='*.pt2' --exclude='*.safetensors' 2>/dev/null
for f in $(ls -t "$CHAIN"/*.log 2>/dev/null | head -4); do cp "$f" "$OUT/step-$(basename "$f")"; done
for f in $(ls -t "$CHAIN"/*.log 2>/dev/null | head -2); do echo "=== $f"; tail -c 4000 "$f"; done
