#!/usr/bin/env bash
# On the GPU host: detector time, then video frames/s on a 1080p clip (1 and 4 people) with the
# full-size synthetic model on the fast path.
set -uo pipefail
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; fi
[ -n "${SKIP_DETECTOR:-}" ] || python3 tools/gpu/detector_time.py --device cuda --runs 50 2>&1 | grep "^detector"
[ -d /tmp/full ] || python3 -m sam3dbody_gui.cli make-synthetic /tmp/full --size full --exports none > /dev/null 2>&1
python3 - <<'PY'
import av, numpy as np
with av.open("/tmp/clip1080.mp4", "w") as c:
    s = c.add_stream("libx264", rate=30); s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
    rng = np.random.default_rng(0)
    for i in range(90):
        f = (rng.random((1080, 1920, 3)) * 60 + 80).astype(np.uint8)
        for p in c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))) or []: pass
    for p in s.encode(): c.mux(p)
PY
for people in 1 4; do
  boxes=""; for k in $(seq 1 $people); do x=$(( (k-1)*450 + 60 )); boxes="$boxes --bbox $x 100 $((x+380)) 1000"; done
  python3 -m sam3dbody_gui.cli video /tmp/clip1080.mp4 --model /tmp/full --device cuda --backend compiled $boxes \
     --json /tmp/f$people.jsonl --fresh 2>&1 | grep -E "speed|frames:|error" | sed "s/^/$people people: /"
done
