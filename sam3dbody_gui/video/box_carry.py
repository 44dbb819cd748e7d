"""Without a detector: a person's box in the next frame from where they were in this one.

The pipeline's 2-D keypoints (70 per person: body, feet, hands, projected with the camera) say
where the body lies in the frame; the box around them, padded, is the next frame's crop box,
as a detector's box would be (SAM 3D Body was trained on detector boxes, which leave a margin
around the body). A person whose keypoints have left the picture is lost.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

PAD = 0.1  # of the keypoints' larger extent, on every side
MIN_KEYPOINTS = 4  # inside the picture, for the box to mean anything
MIN_SIDE_PX = 4.0


def box_around_keypoints(keypoints_2d: np.ndarray, image_hw: tuple[int, int], pad: float = PAD
                         ) -> Optional[tuple[float, float, float, float]]:
    """The padded box (x1, y1, x2, y2) around the keypoints that fall inside the picture, clipped
    to it; None when fewer than MIN_KEYPOINTS do or the box is too small to crop."""
    h, w = image_hw
    points = np.asarray(keypoints_2d, np.float64).reshape(-1, 2)
    inside = np.isfinite(points).all(axis=1)
    inside &= (points[:, 0] >= 0) & (points[:, 0] <= w) & (points[:, 1] >= 0) & (points[:, 1] <= h)
    if inside.sum() < MIN_KEYPOINTS:
        return None
    lo, hi = points[inside].min(axis=0), points[inside].max(axis=0)
    margin = pad * float((hi - lo).max())
    x1, y1 = max(0.0, lo[0] - margin), max(0.0, lo[1] - margin)
    x2, y2 = min(float(w), hi[0] + margin), min(float(h), hi[1] + margin)
    if x2 - x1 < MIN_SIDE_PX or y2 - y1 < MIN_SIDE_PX:
        return None
    return (float(x1), float(y1), float(x2), float(y2))
