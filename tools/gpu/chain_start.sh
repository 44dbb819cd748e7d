#!/usr/bin/env bash
# Starts the GPU runs of one lease as a chain that outlives the `run` call (setsid), so that
# runs longer than one call's 10 minutes go on while the next call waits for them
# (tools/gpu/chain_wait.sh). Each step: one line of this file's STEPS, its log in /tmp/chain/<n>.log,
# its $OUT in /tmp/chain/out-<n>; /tmp/chain/status gets "<n> rc <rc> <seconds>" per step.
#   bash tools/gpu/chain_start.sh            (then, in the same call or the next ones)
#   bash tools/gpu/chain_wait.sh 560
set -u
CHAIN=/tmp/chain
# A chain still running on this (warm) machine is left alone; a finished one's files are cleared,
# or chain_wait.sh would read its "done" as the new chain's.
if pgrep -f "$CHAIN/run.sh" > /dev/null; then echo "a chain is still running: bash tools/gpu/chain_wait.sh"; exit 1; fi
rm -rf "$CHAIN"
mkdir -p "$CHAIN"
cat > "$CHAIN/run.sh" <<'INNER'
set -u
cd "$1"
CHAIN=/tmp/chain
[ -n "${CHAIN_SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_lite/*.whl || { echo "done: the wheels did not install" >> "$CHAIN/status"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
n=0
while IFS= read -r step; do
  [ -z "$step" ] && continue
  n=$((n+1))
  mkdir -p "$CHAIN/out-$n"
  echo "$n start $(date +%s) $step" >> "$CHAIN/status"
  t0=$(date +%s)
  OUT="$CHAIN/out-$n" bash -c "$step" > "$CHAIN/$n.log" 2>&1
  rc=$?
  echo "$n rc $rc $(( $(date +%s) - t0 ))s" >> "$CHAIN/status"
done < "$CHAIN/steps"
echo "done" >> "$CHAIN/status"
INNER
cp "${STEPS_FILE:-tools/gpu/chain_steps.txt}" "$CHAIN/steps"
setsid bash "$CHAIN/run.sh" "$PWD" > "$CHAIN/chain.log" 2>&1 < /dev/null &
echo "chain started: $(wc -l < "$CHAIN/steps") steps"
