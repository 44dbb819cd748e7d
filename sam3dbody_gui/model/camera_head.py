"""Perspective camera head: pose token → weak-perspective (s, tx, ty) → full-image translation.

(s, tx, ty) live in the crop's normalised frame; with the crop's box size b and the focal
length f, depth is tz = 2f / (b·s) and the box centre's offset from the principal point adds
to tx, ty (CLIFF / CameraHMR). Points are then projected with the full-image intrinsics.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FeedForward

NUM_CAMERA_OUTPUTS = 3


class PerspectiveHead(nn.Module):
    def __init__(self, in_dim: int, mlp_depth: int, channel_div: int, scale_factor: float = 1.0) -> None:
        super().__init__()
        self.proj = FeedForward(in_dim, in_dim // channel_div, NUM_CAMERA_OUTPUTS, num_layers=mlp_depth)
        self.scale_factor = scale_factor

    def forward(self, token: torch.Tensor, init_estimate: torch.Tensor) -> torch.Tensor:
        return (self.proj(token) + init_estimate).float()

    def translation(
        self, pred_cam: torch.Tensor, box_center: torch.Tensor, box_size: torch.Tensor, intrinsics: torch.Tensor
    ) -> torch.Tensor:
        """(B, 3) camera translation in metres, camera frame (principal point as the centre)."""
        # The head's s and ty are trained in a frame with flipped y/z (MHR's Y-up).
        s, tx, ty = -pred_cam[:, 0], pred_cam[:, 1], -pred_cam[:, 2]
        bs = box_size * s * self.scale_factor + 1e-8
        focal = intrinsics[:, 0, 0]
        cx = 2 * (box_center[:, 0] - intrinsics[:, 0, 2]) / bs
        cy = 2 * (box_center[:, 1] - intrinsics[:, 1, 2]) / bs
        return torch.stack([tx + cx, ty + cy, 2 * focal / bs], dim=-1)


def project_points(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of (B, N, 3) camera-frame points to (B, N, 2) image pixels."""
    xy1 = points_cam / points_cam[..., 2:3]
    return torch.einsum("bij,bnj->bni", intrinsics, xy1)[..., :2]
