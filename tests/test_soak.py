"""Long runs keep memory flat: many inferences through the API (a window or a batch job runs for
hours). SOAK_RUNS=1000 for the full soak (the README's number); CI runs 300."""

from __future__ import annotations

import gc
import os

import numpy as np

from sam3dbody_gui.bundled import sample_image_path
from sam3dbody_gui.pipeline.image_io import load_image


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_api_soak_keeps_memory_flat(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    runs = int(os.environ.get("SOAK_RUNS", "300"))
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    image = load_image(sample_image_path())
    rng = np.random.default_rng(0)
    # Warm-up: allocator pools, lazy initialisation, in both modes. The heap keeps what a pass
    # frees for the next one (runtime/host_memory.py), so resident memory settles at the largest
    # pass's high-water mark: full mode's, which must come before the start is read.
    for i in range(20):
        pipe.run(image, (20.0, 10.0, 370.0, 512.0), mode="full" if i % 5 == 0 else "body")
    gc.collect()
    start = _rss_mib()
    samples = []
    for i in range(runs):
        x1, y1 = rng.uniform(0, 100, 2)
        box = (float(x1), float(y1), float(x1 + rng.uniform(150, 300)), float(y1 + rng.uniform(200, 390)))
        result = pipe.run(image, box, mode="full" if i % 10 == 0 else "body")
        assert np.isfinite(result.vertices).all()
        if i % 50 == 49:
            gc.collect()
            samples.append(_rss_mib())
    grown = samples[-1] - start
    assert grown < 40, f"resident memory grew {grown:.0f} MiB over {runs} runs: {[round(s) for s in samples]}"
