"""Inference-time fusion of the backbone's SwiGLU gate and value projections into one GEMM.

DINOv3 stores the FFN as w1 (gate) and w2 (value), both dim → hidden and both reading the same
input. One (dim → 2·hidden) matrix multiply does the same arithmetic with one weight read
schedule and one launch instead of two, and at batch 1 (1,029 tokens) a wider GEMM fills the
GPU better. Used by the runtime only: the loaded model keeps the checkpoint's names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.backbone import SwiGLUFFN


class FusedSwiGLUFFN(nn.Module):
    def __init__(self, ffn: SwiGLUFFN) -> None:
        super().__init__()
        w1, w2 = ffn.w1, ffn.w2
        self.hidden = w1.out_features
        self.w12 = nn.Linear(w1.in_features, 2 * self.hidden, device=w1.weight.device, dtype=w1.weight.dtype)
        with torch.no_grad():
            self.w12.weight.copy_(torch.cat([w1.weight, w2.weight]))
            self.w12.bias.copy_(torch.cat([w1.bias, w2.bias]))
        self.w3 = ffn.w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).split(self.hidden, dim=-1)
        return self.w3(F.silu(gate) * value)


def fuse_swiglu_(encoder: nn.Module) -> nn.Module:
    """Replace every SwiGLUFFN inside `encoder` by its fused twin (in place; same results)."""
    for parent in list(encoder.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SwiGLUFFN):
                setattr(parent, name, FusedSwiGLUFFN(child))
    return encoder
