"""int8 linear layers for the backbone on the CPU: dynamic quantisation, no extra packages.

Weights are quantised once, symmetric, one scale per output channel. Activations are quantised
at run time, one scale per token (row): a transformer's tokens differ in magnitude (the class and
storage tokens, bright and dark patches), and one scale per row keeps each token's own precision
where one per tensor would let the largest token set it for all. The product is
`torch._int_mm` (int8 × int8 → int32; oneDNN's VNNI kernels on x86), then one scale per row and
column and the bias in fp32. Everything else (patch embedding, norms, RoPE, attention, residual
stream) stays in the encoder's own dtype.

Without VNNI (AVX2 only) oneDNN multiplies int8 pairs with `vpmaddubsw`, whose 16-bit sums of two
products saturate at 32,767: with full-range (±127) activations and weights that lost up to 8 %
of a layer's output on large tokens. There the weights use ±63 (7 bits), so a pair can never
exceed it (2 × 255 × 63 = 32,130), at the cost of one bit of weight precision (1.8 % instead of
1.1 % on a random layer).

(torch.ao's `quantize_dynamic` was measured too: one scale per tensor for the activations, and
its module swap skips the fused q/k/v projection, a subclass of `nn.Linear`; torch.ao is
deprecated besides.)
"""

from __future__ import annotations

import torch
from torch import nn

from ...model.backbone import block_linears

INT8_MAX = 127.0
INT7_MAX = 63.0  # weights where int8 products saturate (no VNNI)


def weight_levels() -> float:
    """The largest weight level for this CPU: ±127 with VNNI, ±63 without (see above)."""
    from ..cpu_features import detect

    return INT8_MAX if {"avx512_vnni", "avx_vnni"} & detect().usable() else INT7_MAX


class Int8DynamicLinear(nn.Module):
    def __init__(self, linear: nn.Linear, levels: float | None = None, scratch: torch.Tensor | None = None) -> None:
        """`levels`: the weights' largest quantised magnitude (default `weight_levels()`).
        `scratch`: a float32 buffer of at least the weight's size to work in (one for all layers)."""
        super().__init__()
        levels = levels or weight_levels()
        weight = linear.weight.detach().float()
        # Worked in place, in a reused buffer: each fresh (out, in) float buffer costs its page
        # faults (glibc hands large blocks back to the system), and five of them per layer made
        # opening the full-size backbone take 11 s of quantising on 2 cores. The same numbers.
        scale = torch.linalg.vector_norm(weight, ord=float("inf"), dim=1).clamp_(min=1e-12) / levels
        work = None if scratch is None or scratch.numel() < weight.numel() else \
            scratch[: weight.numel()].view(weight.shape)
        quantized = torch.div(weight, scale[:, None], out=work).round_().clamp_(-levels, levels).to(torch.int8)
        # Row-major (out, in); `forward` hands oneDNN its transpose, a view (the layout it wants).
        self.register_buffer("weight_int8", quantized)
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(linear.out_features)
        mask = getattr(linear, "bias_mask", None)  # DINOv3's masked key bias (backbone.py)
        if mask is not None:
            bias = bias * mask.float()
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    @classmethod
    def from_quantized(cls, weight_int8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor):
        """The layer from weights quantised before (int8_weights_cache.py), as they are."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.out_features, self.in_features = weight_int8.shape
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / INT8_MAX
        scaled = rows / row_scale
        quantized = scaled.round_().to(torch.int8)
        out = torch._int_mm(quantized, self.weight_int8.t()).float()  # fewest passes measured: in place below
        out.mul_(self.weight_scale).mul_(row_scale).add_(self.bias)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


Swap = tuple[nn.Module, str, nn.Module]  # (parent, attribute, the Linear that was there)


def quantize_backbone_int8(encoder: nn.Module) -> list[Swap]:
    """Swap every Linear inside the transformer blocks for Int8DynamicLinear (in place); returns
    what was swapped out, for `restore_linears` (the fp32 weights stay alive while it is kept)."""
    swaps: list[Swap] = []
    levels = weight_levels()
    linears = list(block_linears(encoder))  # the fp32 Linears stay alive in the swaps anyway
    scratch = torch.empty(max((c.weight.numel() for _, _, c in linears), default=0), dtype=torch.float32)
    for parent, name, child in linears:
        setattr(parent, name, Int8DynamicLinear(child, levels, scratch))
        swaps.append((parent, name, child))
    return swaps


def restore_linears(swaps: list[Swap]) -> None:
    for parent, name, original in swaps:
        setattr(parent, name, original)
