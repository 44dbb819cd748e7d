"""The compiled GPU crop's first calls after its warm-up, as the pipeline makes them (inside
inference mode; 1 crop, then full mode's 2 hands): ms of each first call and of a steady one,
and whether Dynamo compiled anything after the warm-up (the H200's first full-mode run spent
~1 s in 'hand crops' on such a recompile). < 1 min on the GPU host."""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sam3dbody_gui.pipeline.device_crop import DeviceCropper  # noqa: E402
from sam3dbody_gui.pipeline.preprocess import crop_geometry  # noqa: E402

device = torch.device("cuda")
t = time.perf_counter()
cropper = DeviceCropper(device, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), compiled=True)
print(f"warm-up {time.perf_counter() - t:.1f} s, status {cropper.status}")
photo = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
geoms = [crop_geometry(b, photo.shape[:2], crop_size=512) for b in [(100, 50, 700, 1000), (900, 80, 1500, 1050)]]
from torch._dynamo.utils import counters  # noqa: E402

frames_before = counters["stats"]["unique_graphs"]
for label, count in (("1 crop, first", 1), ("2 crops, first", 2), ("2 crops, steady", 2), ("1 crop, steady", 1)):
    with torch.inference_mode():
        torch.cuda.synchronize()
        t = time.perf_counter()
        cropper.crops(photo, geoms[:count])
        torch.cuda.synchronize()
    print(f"{label:18s} {1e3 * (time.perf_counter() - t):8.2f} ms")
print(f"graphs compiled after the warm-up: {counters['stats']['unique_graphs'] - frames_before}")
