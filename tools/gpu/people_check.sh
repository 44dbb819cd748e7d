#!/usr/bin/env bash
# On the GPU host: the people/batching tests on CUDA, then `bench --people` on the full-size
# synthetic model (fast path: compiled fp8 backbone + compiled bf16 decoder).
set -uo pipefail
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; fi
python3 -m pytest -q -p no:cacheprovider tests/test_decoder_buckets.py tests/test_people_batch.py tests/test_full_mode.py \
  tests/test_runtime.py tests/test_model.py tests/test_backbone.py tests/test_synthetic_determinism.py 2>&1 | tail -15
python3 -m sam3dbody_gui.cli make-synthetic /tmp/full --size full --exports none > /dev/null 2>&1 || echo "make-synthetic failed"
python3 -m sam3dbody_gui.cli bench --model /tmp/full --device cuda --configs none \
  --e2e "compiled:${PRECISION:-fp8}+dec-compiled+dec-bf16" --people 1,2,4,8,16 --json "${OUT:-/tmp}/bench_people.json" 2>&1 \
  | grep -v "^benchmarking\|^loading\|^compil\|^capturing\|^calibrat\|^backbone\|W1201\|warn" | tail -25
