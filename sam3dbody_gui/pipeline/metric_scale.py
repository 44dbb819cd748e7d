"""A person of known height: the body and its distance scaled together about the camera centre.

Monocular recovery cannot tell a child near the camera from an adult far away; the photo only
fixes the ratio of size to distance. Scaling every camera-frame point (vertices + cam_t, joints,
3-D keypoints) by one factor keeps every projection on the photo, and sets the size.

Standing height is measured on the rig's rest pose with this person's shape and bone scales (no
pose, no expression): the vertical extent of that mesh, top of the head to the soles, in metres.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..errors import UserError
from .result import MeshResult

MIN_HEIGHT_M, MAX_HEIGHT_M = 0.3, 2.8


@torch.no_grad()
def rest_height_m(model, result: MeshResult) -> float:
    """The person's standing height in metres, as their mesh is now."""
    head = model.head_pose
    device = next(head.parameters()).device if any(True for _ in head.parameters()) else torch.device("cpu")

    def param(name: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(result.params[name]), dtype=torch.float32, device=device)[None]

    shape, scale = param("shape"), param("scale")
    zeros = lambda n: torch.zeros(1, n, device=device)  # noqa: E731
    out = head.rig(model.mhr, zeros(3), zeros(133), zeros(108), scale, shape, zeros(72))
    y = out["pred_vertices"][0, :, 1].double()
    return float(y.max() - y.min())


def scale_to_height(result: MeshResult, height_m: float, current_height_m: float) -> MeshResult:
    """The same person `height_m` tall: every camera-frame point scaled by height / current."""
    if not (MIN_HEIGHT_M <= height_m <= MAX_HEIGHT_M):
        raise UserError(f"a height of {height_m:g} m is not a person's: give one from {MIN_HEIGHT_M} to {MAX_HEIGHT_M} m")
    factor = height_m / current_height_m
    scaled = dataclasses.replace(
        result, vertices=result.vertices * factor, cam_t=result.cam_t * factor,
        keypoints_3d=result.keypoints_3d * factor, joints=result.joints * factor)
    scaled.metric = {"height_m": float(height_m), "height_before_m": float(current_height_m),
                     "scale": float(factor), "measured_on": "the rig's rest pose with this person's shape and scales"}
    return scaled
