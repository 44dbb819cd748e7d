#!/usr/bin/env bash
# On the GPU host: `bench --video 1,4` (1080p synthetic clips, frames/s with decoding, jitter before and
# after smoothing) on the fast path, and the window's load with full mode's hand decoder captured at load
# (the first full-mode run after it, timed), on the full-size synthetic model.
set -uo pipefail
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.; fi
[ -d /tmp/full ] || python3 -m sam3dbody_gui.cli make-synthetic /tmp/full --size full --exports none > /dev/null 2>&1
FAST="compiled:fp8+dec-compiled+dec-bf16"
timeout 290 python3 -m sam3dbody_gui.cli bench --model /tmp/full --device cuda --configs none --e2e "$FAST" \
  --video 1,4 --video-frames 90 --iterations 3 2>&1 | grep -v "W1201\|Warning\|warn(" | tail -14
timeout 100 python3 - <<'PY' 2>&1 | grep -v "W1201\|Warning\|warn("
import time, numpy as np, torch
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
item = benchmark_images()[0]
pipe = build_pipeline("/tmp/full", "cuda", "auto", backend="compiled")
t0 = time.perf_counter(); ok = pipe.hand_decoder.prepare(); t1 = time.perf_counter()
torch.cuda.reset_peak_memory_stats()
pipe.run(item.image, item.box)  # body
body_peak = torch.cuda.max_memory_allocated() / 2**30
t2 = time.perf_counter(); first = pipe.run(item.image, item.box, mode="full"); t3 = time.perf_counter()
again = [pipe.run(item.image, item.box, mode="full").timings_ms["total"] for _ in range(5)]
print(f"hand decoder captured at load: {ok} in {(t1 - t0) * 1e3:.0f} ms; first full-mode run {(t3 - t2) * 1e3:.1f} ms "
      f"(hand decoder {first.timings_ms['hand decoder']:.1f} ms), then median {np.median(again):.1f} ms; "
      f"peak GPU memory in body mode {body_peak:.2f} GiB (allocated)")
PY
