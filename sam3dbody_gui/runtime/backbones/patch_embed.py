"""The backbone's patch embedding as one matrix product, for the GPU backends.

DINOv3 embeds 16×16 patches with a strided convolution. On the H200, cuDNN runs it in bf16 as
`implicit_convolve_sgemm`: 1.84 ms for a batch of 16 crops (profiled in the compiled fp8
backbone), 4 % of the whole backbone, for ~0.03 TFLOP of work. The same numbers as a matrix
product — each patch's 3×16×16 pixels a row, the kernel as a (768 → 1280) weight — take a
fraction of that. The module keeps the convolution's parameters (`proj`), so the checkpoint,
`patch_embed.proj.weight` lookups and the CPU (where oneDNN's convolution is fine) are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GemmPatchEmbed(nn.Module):
    def __init__(self, conv_embed: nn.Module) -> None:
        super().__init__()
        self.proj = conv_embed.proj
        kh, kw = self.proj.kernel_size
        if (kh, kw) != tuple(self.proj.stride) or self.proj.padding not in ((0, 0), "valid") or self.proj.groups != 1:
            raise ValueError("only non-overlapping, unpadded patch convolutions are a plain matrix product")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, C, H // patch, W // patch), trailing pixels dropped, as the convolution."""
        p = self.proj.kernel_size[0]
        b, c, h, w = images.shape
        gh, gw = h // p, w // p
        patches = images[:, :, :gh * p, :gw * p].reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
        weight = self.proj.weight.reshape(self.proj.out_channels, c * p * p)
        out = F.linear(patches.reshape(b, gh * gw, c * p * p), weight, self.proj.bias)
        return out.transpose(1, 2).reshape(b, self.proj.out_channels, gh, gw)


def use_gemm_patch_embed_(encoder: nn.Module) -> bool:
    """Swap the encoder's patch embedding for the matrix-product one (in place), after checking it
    against the convolution on a random crop; False (and the convolution kept) if it differs or
    fails: a speed-up must never cost correctness."""
    conv = encoder.patch_embed
    if isinstance(conv, GemmPatchEmbed):
        return True
    try:
        gemm = GemmPatchEmbed(conv)
        weight = conv.proj.weight
        probe = torch.randn(1, conv.proj.in_channels, 4 * conv.proj.kernel_size[0], 3 * conv.proj.kernel_size[1],
                            generator=torch.Generator().manual_seed(0)).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            want, got = conv(probe).float(), gemm(probe).float()
        ok = got.shape == want.shape and bool(((got - want).abs().max() <= 2e-2 * want.abs().max() + 1e-6).item())
    except Exception:  # noqa: BLE001 - keep the convolution
        return False
    if ok:
        encoder.patch_embed = gemm
    return ok
