"""Backbone exports with the deployed I/O: (1,3,S,S) normalised crop → (1,C,S/16,S/16) features.

These stand in for the published `embedl_sam3dbody_int8.onnx` (+ external `.onnx.data`) and
`.pt2` so the runtime backends are exercised on files of the same kind.

`export_backbone_pt2_int8` writes the INT8 QDQ kind of `.pt2` (the published one is INT8 QDQ with
the patch-embed convolution and the LayerNorms unquantised). torch 2.13 no longer ships PT2E's
`prepare_pt2e`/`convert_pt2e` or any quantizer (they moved to torchao, which we do not install), so
the graph is written the way `convert_pt2e` leaves it: each transformer Linear reads
`dequantize_per_tensor(quantize_per_tensor(x))` (int8, one calibrated scale per layer, zero point 0
as TensorRT's Q/DQ wants) and `dequantize_per_channel(int8 weight)` (symmetric, ±127, one scale per
output channel), all `torch.ops.quantized_decomposed` ops, which torch registers itself.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path

import torch

from ..errors import UserError

# Registers torch.ops.quantized_decomposed (the ops PT2E's convert writes); needed to build and to
# load an int8 QDQ program.
import torch.ao.quantization.fx._decomposed  # noqa: E402,F401

INPUT_NAME = "image"
OUTPUT_NAME = "features"


def export_backbone_pt2(backbone: torch.nn.Module, path: Path, crop_size: int) -> Path:
    example = torch.zeros(1, 3, crop_size, crop_size, dtype=next(backbone.parameters()).dtype)
    program = torch.export.export(backbone.eval(), (example,))
    # The temporary name ends in .pt2 too: torch.export.save warns about any other suffix.
    tmp = Path(path).with_name(f".{Path(path).stem}.partial.pt2")
    torch.export.save(program, tmp)
    os.replace(tmp, path)
    return Path(path)


INT8_ACTIVATION_RANGE = (-128, 127)
INT8_WEIGHT_LEVELS = 127  # symmetric weights: -127..127, as PT2E's symmetric per-channel weight spec
CALIBRATION_CROPS = 4


class QdqLinear(torch.nn.Module):
    """A Linear as PT2E's convert leaves it: Q/DQ of the input, DQ of the int8 weight, fp linear."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / INT8_WEIGHT_LEVELS
        quantized = torch.round(weight / scale[:, None]).clamp(-INT8_WEIGHT_LEVELS, INT8_WEIGHT_LEVELS)
        self.register_buffer("weight_int8", quantized.to(torch.int8))
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(linear.out_features, dtype=torch.int64, device=weight.device))
        bias = linear.bias.detach().float()
        mask = getattr(linear, "bias_mask", None)  # DINOv3's masked key bias
        self.register_buffer("bias", bias * mask.float() if mask is not None else bias)
        self.input_scale: float | None = None  # a Python float in the graph, as PT2E writes it
        self.observed_amax = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qd = torch.ops.quantized_decomposed
        if self.input_scale is None:  # calibrating: observe, run in float
            self.observed_amax = max(self.observed_amax, float(x.detach().abs().amax()))
            dq_x = x
        else:
            low, high = INT8_ACTIVATION_RANGE
            q = qd.quantize_per_tensor.default(x, self.input_scale, 0, low, high, torch.int8)
            dq_x = qd.dequantize_per_tensor.default(q, self.input_scale, 0, low, high, torch.int8)
        weight = qd.dequantize_per_channel.default(self.weight_int8, self.weight_scale, self.weight_zero_point, 0,
                                                   -INT8_WEIGHT_LEVELS, INT8_WEIGHT_LEVELS, torch.int8)
        return torch.nn.functional.linear(dq_x, weight, self.bias)


def quantize_backbone_qdq_int8(backbone: torch.nn.Module, crops) -> torch.nn.Module:
    """`backbone` (fp32, changed in place) with every transformer Linear a QdqLinear, its activation
    scale calibrated on `crops` ((1, 3, S, S) each; min-max, symmetric)."""
    backbone = backbone.float().eval()
    from ..model.backbone import block_linears

    layers = []
    for parent, name, child in block_linears(backbone):
        layers.append(QdqLinear(child))
        setattr(parent, name, layers[-1])
    device = next(backbone.parameters()).device
    with torch.no_grad():
        for crop in crops:
            backbone(crop.to(device=device, dtype=torch.float32))
    for layer in layers:
        layer.input_scale = max(layer.observed_amax, 1e-8) / INT8_ACTIVATION_RANGE[1]
    return backbone


def build_synthetic_backbone(backbone_type: str, seed: int = 0) -> torch.nn.Module:
    """The backbone `make_synthetic_model(size, seed)` writes (`backbone_type`: its config's,
    `make.synthetic_config(size).backbone_type`), built alone in memory (fp32 holding the
    fp16-rounded values, as the released checkpoint): benchmarks of the backbone then skip the
    decoder, the MHR stand-in and gigabytes of checkpoint I/O."""
    from ..model.backbone import DinoV3Backbone, backbone_arch
    from .random_source import RandomSource
    from .random_weights import init_backbone_random_

    backbone = DinoV3Backbone(backbone_arch(backbone_type))
    with torch.no_grad():
        init_backbone_random_(backbone, RandomSource(seed))  # the model's first draws, as in init_model_random_
        for tensor in backbone.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half())
    return backbone.eval()


def synthetic_calibration_crops(crop_size: int, count: int = CALIBRATION_CROPS, seed: int = 0) -> list[torch.Tensor]:
    """Normalised crops with image-like structure (smooth blobs, a bright and a dark region): the
    synthetic weights are random, so any plausible input range does."""
    gen = torch.Generator().manual_seed(seed)
    crops = []
    for _ in range(count):
        low = torch.rand(1, 3, 8, 8, generator=gen) * 4 - 2
        crop = torch.nn.functional.interpolate(low, size=(crop_size, crop_size), mode="bilinear", align_corners=False)
        crops.append(crop + 0.3 * torch.randn(1, 3, crop_size, crop_size, generator=gen))
    return crops


def export_backbone_pt2_int8(backbone: torch.nn.Module, path: Path, crop_size: int, crops=None) -> Path:
    """An INT8 QDQ `.pt2` of (a copy of) `backbone`, calibrated on `crops` (default: synthetic ones)."""
    import copy

    quantized = quantize_backbone_qdq_int8(copy.deepcopy(backbone), crops or synthetic_calibration_crops(crop_size))
    device = next(quantized.parameters()).device
    example = torch.zeros(1, 3, crop_size, crop_size, device=device)
    program = torch.export.export(quantized, (example,))
    tmp = Path(path).with_name(f".{Path(path).stem}.partial.pt2")
    torch.export.save(program, tmp)
    os.replace(tmp, path)
    return Path(path)


def onnx_export_problem() -> str | None:
    """Why the ONNX export cannot run here (torch's exporter needs onnx and onnxscript, which the
    default install leaves out), or None."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"the ONNX export needs the {' and '.join(repr(m) for m in missing)} package"
            f"{'s' if len(missing) > 1 else ''}: pip install 'sam3dbody-gui[export]'")


def export_backbone_onnx(backbone: torch.nn.Module, path: Path, crop_size: int) -> Path:
    """ONNX with the weights in `<name>.onnx.data` beside it (as the published file)."""
    problem = onnx_export_problem()
    if problem:
        raise UserError(problem[0].upper() + problem[1:])
    example = torch.zeros(1, 3, crop_size, crop_size, dtype=next(backbone.parameters()).dtype)
    path = Path(path)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints progress banners
        program = torch.onnx.export(
            backbone.eval(), (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            optimize=True,
        )
    program.save(str(path), external_data=True)
    return path
