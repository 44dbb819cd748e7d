#!/usr/bin/env bash
# On the GPU host: the CUDA tests of the batched paths, then tools/gpu/people_speed.py (one process:
# the people table, before/after, stage breakdown, decoder and backbone profiles, the batch engine,
# video fps) on the full-size synthetic model and detector. STEPS / DEADLINE pass through.
set -uo pipefail
export PYTHONUNBUFFERED=1
START=$(date +%s)
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.; fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DET=$(python3 -c "from sam3dbody_gui.hub_detector import detector_app_folder; print(detector_app_folder())")
( python3 -m sam3dbody_gui.cli make-synthetic "$DET" --detector --size full > "$OUT/make.log" 2>&1
  python3 -m sam3dbody_gui.cli make-synthetic /tmp/full --size full --exports none >> "$OUT/make.log" 2>&1 ) &
MAKE=$!
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_batched_speed_paths.py tests/test_decoder_buckets.py \
    tests/test_people_batch.py "tests/test_runtime.py::test_compiled_decoder_matches_eager_and_loads_from_its_cache" \
    > "$OUT/tests.log" 2>&1
  tail -4 "$OUT/tests.log"
fi
wait $MAKE; tail -2 "$OUT/make.log"
echo "setup took $(( $(date +%s) - START )) s"
LEFT=$(( ${BUDGET:-585} - ($(date +%s) - START) ))
timeout $LEFT python3 tools/gpu/people_speed.py --model /tmp/full --deadline $(( LEFT - ${TAIL:-45} )) ${STEPS:+--steps $STEPS} 2>&1 \
  | grep -v "W1201\|Warning\|warn(" | tail -150
