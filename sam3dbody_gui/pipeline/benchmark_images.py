"""The image set behind `bench`, `compare` and calibration: what the numbers were measured on.

Real person photos cannot be shipped or fetched here, so the set is the bundled public-domain
NASA portrait (scikit-image's "astronaut") with several person boxes, plus generated variants
(mirrored, darkened, downscaled, noisy) that change the crop's statistics the way other
photos would. Every item is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bundled import SAMPLE_BOX, sample_image_path
from .image_io import load_image


@dataclass(frozen=True)
class BenchImage:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    box: tuple[float, float, float, float]


def benchmark_images() -> list[BenchImage]:
    photo = load_image(sample_image_path())
    h, w = photo.shape[:2]
    x1, y1, x2, y2 = SAMPLE_BOX
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    dark = (photo.astype(np.float32) * 0.45).astype(np.uint8)
    small = photo[::2, ::2].copy()
    noisy = np.clip(photo.astype(np.int16) + np.random.default_rng(0).normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    return [
        BenchImage("astronaut, person box", photo, SAMPLE_BOX),
        BenchImage("astronaut, head and shoulders", photo, (110.0, 10.0, 330.0, 300.0)),
        BenchImage("astronaut, whole photo", photo, (0.0, 0.0, float(w), float(h))),
        BenchImage("astronaut, box partly outside", photo, (-60.0, 40.0, 300.0, 560.0)),
        BenchImage("mirrored", mirrored, (w - x2, y1, w - x1, y2)),
        BenchImage("darkened ×0.45", dark, SAMPLE_BOX),
        BenchImage("half resolution", small, tuple(v / 2 for v in SAMPLE_BOX)),
        BenchImage("sensor noise σ=12", noisy, SAMPLE_BOX),
    ]


def calibration_images() -> list[BenchImage]:
    """What FP8 activation scales are measured on: other boxes and edits of the same photo than
    `benchmark_images`, so `compare` judges the quantised backbone on crops it was not tuned on."""
    photo = load_image(sample_image_path())
    h, w = photo.shape[:2]
    grey = np.repeat(photo.astype(np.float32).mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    contrast = np.clip((photo.astype(np.float32) - 128.0) * 1.5 + 128.0, 0, 255).astype(np.uint8)
    bright = np.clip(photo.astype(np.float32) * 1.35 + 10.0, 0, 255).astype(np.uint8)
    blurred = photo.astype(np.float32)
    for axis in (0, 1):  # a 5-pixel box blur, twice
        blurred = sum(np.roll(blurred, shift, axis=axis) for shift in range(-2, 3)) / 5.0
    lying = np.ascontiguousarray(np.rot90(photo))  # the person turned a quarter
    return [
        BenchImage("calibration: torso box", photo, (60.0, 120.0, 420.0, 512.0)),
        BenchImage("calibration: wide box", photo, (-100.0, -40.0, w + 100.0, h + 60.0)),
        BenchImage("calibration: face", photo, (150.0, 40.0, 300.0, 220.0)),
        BenchImage("calibration: grey", grey, SAMPLE_BOX),
        BenchImage("calibration: high contrast", contrast, SAMPLE_BOX),
        BenchImage("calibration: bright", bright, (40.0, 20.0, 480.0, 500.0)),
        BenchImage("calibration: blurred", blurred.astype(np.uint8), SAMPLE_BOX),
        BenchImage("calibration: quarter turn", lying, (0.0, 0.0, float(h), float(w))),
    ]
