"""FP8 (e4m3) linear layers for the backbone on Hopper GPUs: 2× the bf16 tensor-core rate.

Weights are quantised once per output channel; activations per token at run time (dynamic,
no calibration set needed); the product runs in `torch._scaled_mm` with row-wise scales and
bf16 output. Everything else in the backbone (patch conv, norms, attention) stays bf16.
"""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448


def fp8_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


class Fp8Linear(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
        self.register_buffer("weight_fp8", (weight / scale).to(FP8))  # (out, in), row-major
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, out)
        bias = linear.bias.detach()
        mask = getattr(linear, "bias_mask", None)  # DINOv3's masked key bias
        if mask is not None:
            bias = bias * mask.to(bias.dtype)
        self.register_buffer("bias", bias.to(torch.bfloat16))
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
        out = torch._scaled_mm((rows / scale).to(FP8), self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale,
                               out_dtype=torch.bfloat16)
        return (out + self.bias).reshape(*x.shape[:-1], self.out_features)


def quantize_backbone_fp8(encoder: nn.Module) -> nn.Module:
    """Swap every Linear inside the transformer blocks for Fp8Linear (in place); cast the rest to bf16."""
    encoder = encoder.to(torch.bfloat16)
    for block in encoder.blocks:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Fp8Linear(child))
    return encoder
