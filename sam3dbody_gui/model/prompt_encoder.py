"""Prompt encoding: random-Fourier positional encodings, keypoint prompts and the mask slot.

The released model always takes the mask path; without a mask it adds `no_mask_embed` to the
image features. The keypoint prompt of a plain box query is one "invalid" point (label -2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import LayerNorm2d

LABEL_INVALID = -2  # "no point" placeholder (what a box-only query sends)
LABEL_NOT_A_POINT = -1


class RandomFourierEncoding(nn.Module):
    """Encode [0,1]^2 coordinates with fixed random frequencies (SAM's PositionEmbeddingRandom)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        # nn.init rather than randn: a model folder builds the model on the meta device with random
        # initialisation skipped (model_folder.py), which randn would bypass.
        self.register_buffer("positional_encoding_gaussian_matrix", nn.init.normal_(torch.empty(2, num_features)))

    def encode(self, coords01: torch.Tensor) -> torch.Tensor:
        """(..., 2) in [0,1] → (..., 2*num_features), computed in fp32 whatever the model dtype."""
        angles = (2 * coords01.float() - 1) @ self.positional_encoding_gaussian_matrix.float()
        angles = 2 * math.pi * angles
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def dense(self, height: int, width: int) -> torch.Tensor:
        """Encoding of every cell centre of an H×W grid, as (1, C, H, W)."""
        dev = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, device=dev, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=dev, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # H, W, (x, y)
        return self.encode(grid).permute(2, 0, 1).unsqueeze(0)


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, num_keypoints: int, mask_embed_type: str | None) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(num_keypoints))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.invalid_point_embed = nn.Embedding(1, embed_dim)
        if mask_embed_type == "v2":
            # Mask prompts are not used by this app, but the checkpoint carries the layers.
            chans = [1, 4, 16, 64, 256]
            mods: list[nn.Module] = []
            for cin, cout in zip(chans[:-1], chans[1:]):
                mods += [nn.Conv2d(cin, cout, kernel_size=2, stride=2), LayerNorm2d(cout), nn.GELU()]
            mods.append(nn.Conv2d(256, embed_dim, kernel_size=1))
            self.mask_downscaling = nn.Sequential(*mods)
            self.no_mask_embed = nn.Embedding(1, embed_dim)
        self.has_mask_path = mask_embed_type is not None

    def embed_keypoints(self, keypoints: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) rows of (x, y in [0,1] crop coords, label) → (B, N, C).

        label ≥ 0: keypoint index (encoding + its embedding); -1: not-a-point; -2: invalid.
        Uses `where`, not boolean indexing, so shapes stay static (no host syncs).
        """
        coords, labels = keypoints[..., :2].float(), keypoints[..., 2]
        pe = self.pe_layer.encode(coords)
        table = torch.cat([e.weight for e in self.point_embeddings], dim=0)  # K, C
        joint = table[labels.clamp(min=0).long()]
        is_joint = (labels >= 0).unsqueeze(-1)
        out = torch.where(is_joint, pe + joint, torch.zeros_like(pe))
        out = torch.where((labels == LABEL_NOT_A_POINT).unsqueeze(-1), self.not_a_point_embed.weight, out)
        out = torch.where((labels == LABEL_INVALID).unsqueeze(-1), self.invalid_point_embed.weight, out)
        return out

    def add_no_mask(self, image_features: torch.Tensor) -> torch.Tensor:
        if not self.has_mask_path:
            return image_features
        return image_features + self.no_mask_embed.weight.view(1, -1, 1, 1).to(image_features.dtype)
