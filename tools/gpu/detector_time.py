"""Person-detector time per photo (RT-DETRv2-R18 at full size, random weights), on the device given.

    python tools/gpu/detector_time.py --device cuda [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sam3dbody_gui.bundled import sample_image_path  # noqa: E402
from sam3dbody_gui.model.detector import load_detector  # noqa: E402
from sam3dbody_gui.pipeline.image_io import load_image  # noqa: E402
from sam3dbody_gui.synthetic.detector import make_synthetic_detector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    folder = make_synthetic_detector(Path(tempfile.mkdtemp()) / "detector", size="full")
    image = load_image(sample_image_path())
    for dtype in (torch.float32, torch.float16) if args.device != "cpu" else (torch.float32,):
        detector = load_detector(folder, device=args.device, dtype=dtype)
        for _ in range(5):
            detector.detect(image)
        times = []
        for _ in range(args.runs):
            if args.device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            detector.detect(image)
            if args.device != "cpu":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"detector {dtype} on {args.device}: median {statistics.median(times):.2f} ms, "
              f"min {min(times):.2f} ms over {args.runs} runs (512x512 photo, 640x640 input, incl. pre/post)")


if __name__ == "__main__":
    main()
