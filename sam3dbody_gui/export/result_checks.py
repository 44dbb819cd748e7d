"""What must hold of a result before any file is written from it."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..pipeline.box import format_box
from ..pipeline.result import MeshResult


def non_finite_parts(result: MeshResult) -> list[str]:
    """Names of the result's arrays that hold NaN or infinity."""
    arrays = {"vertices": result.vertices, "camera translation": result.cam_t,
              "2-D keypoints": result.keypoints_2d, "3-D keypoints": result.keypoints_3d, "joints": result.joints,
              "intrinsics": result.intrinsics, "features": result.features, "hand boxes": result.hand_boxes}
    arrays.update({f"parameter {k}": v for k, v in result.params.items()})
    return [name for name, value in arrays.items()
            if value is not None and not np.isfinite(np.asarray(value, dtype=np.float64)).all()]


def require_finite(result: MeshResult) -> None:
    """Raise UserError when any number of the result is not finite: a NaN mesh or `NaN` in a
    JSON file is never a useful output (and NaN is not even valid JSON)."""
    bad = non_finite_parts(result)
    if bad:
        raise UserError(
            f"the result is not finite (NaN or infinity in {', '.join(bad[:4])}{', …' if len(bad) > 4 else ''}), "
            f"so nothing was written; with the box {format_box(result.crop.bbox_xyxy)} on a "
            f"{result.image_hw[1]}x{result.image_hw[0]} photo the numbers overflow: draw the box around the person")


def json_ready(data):
    """`data` with every non-finite float replaced by None (JSON's null). After `require_finite`
    only diagnostics can hold one (full mode's measured hand angles, say); JSON has no NaN, and
    Python's `NaN` token would make the file unreadable to strict parsers."""
    if isinstance(data, dict):
        return {k: json_ready(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(v) for v in data]
    if isinstance(data, float) and not np.isfinite(data):
        return None
    return data
