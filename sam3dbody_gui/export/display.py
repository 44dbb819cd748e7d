"""A result drawn on a reduced copy of its photo (large photos are displayed reduced)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..pipeline.result import MeshResult


def result_on_display(result: MeshResult, display_hw: tuple[int, int]) -> MeshResult:
    """The same result with everything in photo pixels (camera intrinsics, 2-D keypoints, box)
    moved to the pixels of a `display_hw` copy of the photo; 3-D geometry is unchanged.

    Pixel centres sit on integer coordinates (as in the crop), so a photo pixel u is display
    pixel (u + 0.5) * s - 0.5 for the scale s of each axis."""
    height, width = result.image_hw
    sy, sx = display_hw[0] / height, display_hw[1] / width
    scale = np.array([sx, sy])
    shift = (scale - 1.0) / 2.0  # (u + 0.5) * s - 0.5 = u * s + (s - 1) / 2

    k = np.array(result.intrinsics, dtype=np.float64)
    k[0, 0] *= sx
    k[1, 1] *= sy
    k[0, 1] *= sx
    k[:2, 2] = k[:2, 2] * scale + shift
    box = np.asarray(result.crop.bbox_xyxy, dtype=np.float64) * np.tile(scale, 2) + np.tile(shift, 2)
    crop = dataclasses.replace(result.crop, bbox_xyxy=box, image_hw=tuple(display_hw))
    return dataclasses.replace(result, intrinsics=k, keypoints_2d=result.keypoints_2d * scale + shift,
                               image_hw=tuple(display_hw), crop=crop)
