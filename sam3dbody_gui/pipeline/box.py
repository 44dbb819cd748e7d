"""The person box: checked against the photo (numpy only, so the UI thread can use it
without importing torch)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from sam3dbody_gui.errors import BoxError


def checked_image_size(image_hw: Tuple[int, int]) -> Tuple[int, int]:
    height, width = (int(v) for v in image_hw[:2])
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return height, width


def format_box(box: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"


def validate_box(box_xyxy: Optional[Sequence[float]], image_hw: Tuple[int, int]) -> np.ndarray:
    """Check a person box (x1, y1, x2, y2) against the photo; return it as float64 (4,).

    None means "the whole photo", [0, 0, W, H], as upstream uses without a detector.
    Corners given in either order are sorted. A box partly outside the photo is kept as
    given; one that misses the photo entirely, has no area, or holds NaN/inf raises
    BoxError.
    """
    height, width = checked_image_size(image_hw)
    if box_xyxy is None:
        return np.array([0.0, 0.0, float(width), float(height)])

    try:
        values = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise BoxError(f"person box must be 4 numbers (x1, y1, x2, y2), got {box_xyxy!r}") from None
    if values.shape != (4,):
        raise BoxError(f"person box must be 4 numbers (x1, y1, x2, y2), got {values.size}")
    if not np.all(np.isfinite(values)):
        raise BoxError(f"person box has a non-finite coordinate: {format_box(values)}")

    x1, x2 = sorted(values[0::2])
    y1, y2 = sorted(values[1::2])
    box = np.array([x1, y1, x2, y2])
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise BoxError(f"person box {format_box(box)} has zero width or height; "
                       "draw a box around the person")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise BoxError(f"person box {format_box(box)} lies entirely outside the "
                       f"{width}x{height} image")
    return box
