"""FP8 (e4m3) linear layers for the backbone on Hopper GPUs: 2× the bf16 tensor-core rate.

Weights are quantised once per output channel. Activations get one scale per layer, measured
once on the calibration images (`calibrate_fp8_`, like a TensorRT INT8 calibration): the
quantisation is then an element-wise step the compiler fuses into the kernel that produces
the activation. (Per-token scales measured at run time were tried first: their row-wise
max-reductions cost more than FP8 saved, 5.68 vs 5.56 ms for bf16 on the H100.) E4M3 is a
floating-point format, so one scale per layer keeps ~2 significant digits over a wide range.
Uncalibrated layers (before `calibrate_fp8_`) scale each token at run time.
The product runs in `torch._scaled_mm` with bf16 output and Hopper's fast accumulation.
Everything else in the backbone (patch conv, norms, attention) stays bf16.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ...model.backbone import block_linears

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
CALIBRATION_HEADROOM = 1.25  # scale for 125 % of the largest activation seen: new photos may go higher


def fp8_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


class Fp8Linear(nn.Module):
    def __init__(self, linear: nn.Linear, fast_accum: bool = True) -> None:
        super().__init__()
        # Hopper's fast FP8 accumulation (periodic promotion skipped): the rate FP8 is for.
        self.fast_accum = fast_accum
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
        self.register_buffer("weight_fp8", (weight / scale).to(FP8))  # (out, in), row-major
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, out)
        bias = linear.bias.detach()
        mask = getattr(linear, "bias_mask", None)  # DINOv3's masked key bias
        if mask is not None:
            bias = bias * mask.to(bias.dtype)
        self.register_buffer("bias", bias.to(torch.bfloat16))
        # Per-layer activation scale; 0 = not calibrated: measure per token at run time instead.
        self.register_buffer("input_scale", torch.zeros((), device=weight.device))
        self.register_buffer("unit_scale", torch.ones((), device=weight.device))
        self.out_features = linear.out_features
        self.observed_amax: torch.Tensor | None = None  # set while calibrating

    @property
    def calibrated(self) -> bool:
        return bool(self.input_scale > 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if self.observed_amax is not None:
            self.observed_amax = torch.maximum(self.observed_amax, rows.float().abs().amax())
        if self._static:
            # One scale for the whole activation: the GEMM scales by two scalars, and the weights'
            # per-channel scales join the bias in the epilogue, which the compiler fuses into
            # whatever reads this layer's output. Clamped: a new photo beyond the calibrated range
            # saturates, never NaN.
            quantized = (rows.float() / self.input_scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
            out = torch._scaled_mm(quantized, self.weight_fp8.t(), scale_a=self.input_scale, scale_b=self.unit_scale,
                                   out_dtype=torch.bfloat16, use_fast_accum=self.fast_accum)
            out = out * self.weight_scale.to(torch.bfloat16) + self.bias
        else:
            rows = rows.float()
            scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX
            out = torch._scaled_mm((rows / scale).to(FP8), self.weight_fp8.t(), scale_a=scale,
                                   scale_b=self.weight_scale, out_dtype=torch.bfloat16, use_fast_accum=self.fast_accum)
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    _static = False  # a plain attribute (not a tensor test) so compiled graphs branch on it freely


def quantize_backbone_fp8(encoder: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Swap every Linear inside the transformer blocks for Fp8Linear (in place); cast the rest to bf16.

    `device`: where the quantised backbone goes, when it is loaded elsewhere (the host): each
    Linear is moved there alone, quantised there and its bf16 weights dropped, so the device never
    holds the bf16 backbone (1.6 GiB for the 840 M one; it set the fp8 path's peak memory, above
    what the fp8 weights and every run need). The same fp8 weights as quantising on the device."""
    encoder = encoder.to(torch.bfloat16)
    for parent, name, child in block_linears(encoder):
        setattr(parent, name, Fp8Linear(child if device is None else child.to(device)))
    return encoder if device is None else encoder.to(device)


@torch.no_grad()
def calibrate_fp8_(encoder: nn.Module, crops: Iterable[torch.Tensor]) -> int:
    """Measure each FP8 layer's largest input on `crops` (normalised (1, 3, S, S)) and fix its
    activation scale from it. Returns how many crops were used."""
    layers = [m for m in encoder.modules() if isinstance(m, Fp8Linear)]
    for layer in layers:
        layer._static = False
        layer.observed_amax = torch.zeros((), device=layer.weight_fp8.device)
    count = 0
    try:
        for crop in crops:
            encoder(crop.to(device=layers[0].weight_fp8.device, dtype=torch.bfloat16))
            count += 1
    finally:
        for layer in layers:
            amax, layer.observed_amax = layer.observed_amax, None
            if count:
                layer.input_scale.copy_((amax * CALIBRATION_HEADROOM).clamp(min=1e-12) / FP8_MAX)
                layer._static = True
    if not count:
        raise ValueError("no calibration crops")
    return count
