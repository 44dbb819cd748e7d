"""PIL's resize, bit for bit, as two matrix products on the device (the detector's preprocessing).

The person detector was converted against PIL's bilinear resize of the whole photo to 640x640
(model/detector.py). `torch.nn.functional.interpolate(mode="bilinear", antialias=True)` is the
same filter in float, but PIL works in 8-bit fixed point and rounds to uint8 between its two
passes: measured on photos from 30x50 to 3840x2160, interpolate is off by up to 1-2 levels on
0.1-25 % of the pixels, depending on the scale (ties at x.5 and the lost intermediate rounding).
That is small for a trained detector, but it is not nothing for a check that asks for the same
people: a detector whose scores are close together (the synthetic one: every query ~0.98) picks
other people from a one-level change. So we do what PIL does instead, exactly:

    coefficients   PIL's precompute_coeffs (doubles, normalised per output pixel), then its
                   normalize_coeffs_8bpc (times 2**22, rounded half away from zero): integers
    each pass      out = clamp(floor((2**21 + sum(in * coefficient)) / 2**22), 0, 255), the
                   second pass on the first's uint8 values, in Pillow's order (see __call__)

as a dense (out, in) matrix product in float64: every product is an integer below 255 * 2**22
and every partial sum an integer below 2**53, so float64 is exact whatever order cuBLAS sums in.
A 1080p photo is ~11 GFLOP of float64 (~0.2 ms on an H100/H200); the matrices are cached per
(in size, out size). Tested against PIL on the CPU (tests/test_detector_fast.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # PIL's, for 8-bit images
NEAREST = 0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _box(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _hamming(x: float) -> float:
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x *= math.pi
    return math.sin(x) / x * (float(np.float32(0.54)) + float(np.float32(0.46)) * math.cos(x))


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


# PIL's Resampling numbers -> (filter, support)
FILTERS: dict[int, tuple[Callable[[float], float], float]] = {
    1: (_lanczos, 3.0), 2: (_bilinear, 1.0), 3: (_bicubic, 2.0), 4: (_box, 0.5), 5: (_hamming, 1.0)}


def pil_coefficients(in_size: int, out_size: int, resample: int) -> np.ndarray:
    """(out_size, in_size) float64 matrix of PIL's fixed-point coefficients (integers)."""
    if resample not in FILTERS:
        raise ValueError(f"PIL filter {resample} has no device resize (only {sorted(FILTERS)})")
    filt, base_support = FILTERS[resample]
    scale = filterscale = in_size / out_size
    filterscale = max(filterscale, 1.0)
    support = base_support * filterscale
    ss = 1.0 / filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # C's (int) truncates toward zero, as int() does
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [filt(((x + xmin) - center + 0.5) * ss) for x in range(xmax)]
        total = sum(weights)  # left to right, as PIL sums
        for x, w in enumerate(weights):
            w = w / total if total != 0.0 else w
            fixed = int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
            matrix[xx, xmin + x] = fixed
    return matrix


class DeviceResize:
    """Photos (uint8, on the device) -> PIL's resize of them, as float32 0..255 (whole numbers)."""

    def __init__(self, device: torch.device, out_hw: tuple[int, int], resample: int, cache_size: int = 8) -> None:
        if resample not in FILTERS:
            raise ValueError(f"PIL filter {resample} has no device resize")
        self.device, self.out_hw, self.resample = torch.device(device), tuple(out_hw), int(resample)
        self._matrices: OrderedDict = OrderedDict()
        self.cache_size = cache_size

    def _matrix(self, in_size: int, out_size: int) -> torch.Tensor:
        key = (in_size, out_size)
        if key in self._matrices:
            self._matrices.move_to_end(key)
            return self._matrices[key]
        m = torch.from_numpy(pil_coefficients(in_size, out_size, self.resample)).to(self.device)
        self._matrices[key] = m
        while len(self._matrices) > self.cache_size:
            self._matrices.popitem(last=False)
        return m

    @staticmethod
    def _round(x: torch.Tensor) -> torch.Tensor:
        return torch.floor((x + float(1 << (PRECISION_BITS - 1))) * (1.0 / (1 << PRECISION_BITS))).clamp_(0, 255)

    def __call__(self, photos_hwc: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) or (B, H, W, 3) uint8 of one size -> (B, 3, out_h, out_w) float32."""
        x = photos_hwc if photos_hwc.dim() == 4 else photos_hwc[None]
        x = x.permute(0, 3, 1, 2).to(torch.float64)  # (B, 3, H, W)
        out_h, out_w = self.out_hw
        in_h, in_w = x.shape[-2:]
        # The order Pillow takes (found by trying both against it on 23 shapes from 30x50 to
        # 1920x1080; the other order is a level off on up to a quarter of the pixels): the
        # vertical pass first when it reduces, and more than the horizontal one does.
        vertical_first = in_h / out_h > max(in_w / out_w, 1.0)
        for axis in (("v", "h") if vertical_first else ("h", "v")):
            if axis == "h" and x.shape[-1] != out_w:
                x = self._round(torch.matmul(x, self._matrix(x.shape[-1], out_w).T))
            elif axis == "v" and x.shape[-2] != out_h:
                x = self._round(torch.matmul(self._matrix(x.shape[-2], out_h), x))
        return x.to(torch.float32)
