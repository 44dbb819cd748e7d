"""Camera-ray conditioning of the image features.

Each crop pixel is mapped back to the full image and turned into a normalised ray
((x - cx)/fx, (y - cy)/fy). The ray map is downsampled to the feature grid, a 1 is appended,
Fourier-encoded (16 linear bands per axis → 99 channels), concatenated with the backbone
features and mixed by a 1×1 conv + LayerNorm2d. This is how the decoder learns where the crop
sits in the camera, since the backbone never sees it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm2d

NUM_BANDS = 16
MAX_RESOLUTION = 64
RAY_CHANNELS = 3 + 3 * NUM_BANDS * 2  # raw (x, y, 1) + sin/cos of every band = 99


def crop_ray_map(affine: torch.Tensor, intrinsics: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Normalised camera rays of every crop pixel: (B, 2, S, S).

    `affine` (B, 2, 3) maps full-image → crop pixels (scale + translation only, as our crops
    are axis-aligned); `intrinsics` (B, 3, 3).
    """
    dev, dt = affine.device, affine.dtype
    pix = torch.arange(crop_size, device=dev, dtype=dt)
    scale = torch.stack([affine[:, 0, 0], affine[:, 1, 1]], dim=-1)  # B, 2
    shift = affine[:, :, 2]
    focal = torch.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], dim=-1)
    centre = intrinsics[:, :2, 2]
    # Per-axis 1-D rays; the map is their outer broadcast (x varies along W, y along H).
    rays = ((pix[None, None, :] - shift[..., None]) / scale[..., None] - centre[..., None]) / focal[..., None]
    rx = rays[:, 0][:, None, :].expand(-1, crop_size, -1)
    ry = rays[:, 1][:, :, None].expand(-1, -1, crop_size)
    return torch.stack([rx, ry], dim=1)


def fourier_features(pos: torch.Tensor) -> torch.Tensor:
    """(..., 3) → (..., 99): [pos, sin(π·pos·f), cos(π·pos·f)] for f = linspace(1, 32, 16)."""
    freqs = torch.linspace(1.0, MAX_RESOLUTION / 2, NUM_BANDS, device=pos.device, dtype=pos.dtype)
    scaled = (pos[..., None] * freqs).flatten(-2)  # (..., 3*16), axis-major
    return torch.cat([pos, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


class RayConditioning(nn.Module):
    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.conv = nn.Conv2d(embed_dim + RAY_CHANNELS, embed_dim, kernel_size=1, bias=False)
        self.norm = LayerNorm2d(embed_dim)

    def forward(self, features: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w); rays (B, 2, S, S) at crop resolution (ray maths stays fp32)."""
        small = F.interpolate(
            rays.float(), scale_factor=1.0 / self.patch_size, mode="bilinear", align_corners=False, antialias=True
        )
        small = small.permute(0, 2, 3, 1)
        pos = torch.cat([small, torch.ones_like(small[..., :1])], dim=-1)
        enc = fourier_features(pos).permute(0, 3, 1, 2).to(features.dtype)
        return self.norm(self.conv(torch.cat([features, enc], dim=1)))
