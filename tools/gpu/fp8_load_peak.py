"""Peak GPU memory of opening the fp8 backbone (issue 15's memory row), the two ways:

    python3 tools/gpu/fp8_load_peak.py [--model /tmp/full]

  on-gpu    the backbone loaded onto the GPU in bf16, then quantised there (as before)
  via-host  loaded on the host in bf16, quantised onto the GPU layer by layer (the default now)
Each in a fresh process: load_model_folder + prepare_encoder (calibrated) + 3 eager body runs,
then torch.cuda.max_memory_allocated. Makes the full-size synthetic model first if missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child(model: str, way: str) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from sam3dbody_gui.pipeline.build import build_pipeline
    from sam3dbody_gui.pipeline.benchmark_images import benchmark_images

    t = time.perf_counter()
    pipe = build_pipeline(Path(model), "cuda", "fp8", backend="pytorch", cuda_graph=False,
                          load_in_run_precision=True, host_staged_fp8=(way == "via-host"))
    load_s = time.perf_counter() - t
    loaded_peak = torch.cuda.max_memory_allocated() / 2**30
    item = benchmark_images()[0]
    for _ in range(3):
        pipe.run(item.image, item.box)
    torch.cuda.synchronize()
    return {"way": way, "build_s": round(load_s, 1), "peak_after_load_gib": round(loaded_peak, 3),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "allocated_gib": round(torch.cuda.memory_allocated() / 2**30, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/full")
    ap.add_argument("--child", choices=("on-gpu", "via-host"))
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.model, args.child)), flush=True)
        return
    if not (Path(args.model) / "model.ckpt").exists():
        subprocess.run([sys.executable, "-m", "sam3dbody_gui.cli", "make-synthetic", args.model, "--size", "full",
                        "--exports", "none"], check=True, capture_output=True)
    for way in ("on-gpu", "via-host"):
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", way], capture_output=True,
                              text=True)
        got = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        print(got[-1][7:] if got else f"{way} failed: {proc.stderr.strip().splitlines()[-3:]}", flush=True)


if __name__ == "__main__":
    main()
