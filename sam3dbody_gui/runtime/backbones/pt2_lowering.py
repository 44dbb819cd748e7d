"""Rewrites of a `.pt2` program's graph onto faster kernels, for `pt2_fast.py`.

An INT8 QDQ program (PT2E's convert output, the published `.pt2`'s kind) keeps every quantised
Linear as float math: `linear(dequantize(quantize(x)), dequantize_per_channel(int8 W), b)`, so it
runs at fp32 speed. `lower_qdq_linears` replaces each such pattern with `Int8GemmLinear`: the same
quantisation of x (same ops, same rounding, so the same int8 values), then `torch._int_mm`
(int8 × int8 → int32: cuBLASLt's IMMA tensor cores on a GPU, oneDNN on the CPU) and one
multiply by (activation scale × weight scale) plus the bias. The int32 sum is exact where the
program's fp32 sum rounds, so the two differ only by fp32 rounding (and where that flips the next
layer's quantisation by one level).

`attention_in_bf16` casts the inputs of each fp32 `scaled_dot_product_attention` to bf16 (the
result back to fp32): fp32 attention has no tensor-core kernel, and a TensorRT build of the
same QDQ file runs it in fp16 too. It changes the numbers, so it is opt-in and checked.
Patterns that do not match exactly (another zero point layout, an unknown op) are left as they are.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401 - registers torch.ops.quantized_decomposed
from torch import fx

QD = torch.ops.quantized_decomposed
QUANTIZE = {QD.quantize_per_tensor.default, QD.quantize_per_tensor.tensor}
DEQUANTIZE = {QD.dequantize_per_tensor.default, QD.dequantize_per_tensor.tensor}
DEQUANTIZE_CHANNEL = QD.dequantize_per_channel.default
LINEAR = torch.ops.aten.linear.default
SDPA = torch.ops.aten.scaled_dot_product_attention.default


class Int8GemmLinear(torch.nn.Module):
    """x → quantize (as the program) → int8 GEMM → × scales + bias. Weight (out, in) int8, symmetric."""

    def __init__(self, weight_int8: torch.Tensor, weight_scale: torch.Tensor, input_scale: float,
                 input_zero_point: int, quant_min: int, quant_max: int, out_dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight_int8", weight_int8.contiguous())  # (out, in): its .t() is what _int_mm wants
        self.register_buffer("out_scale", (weight_scale.double() * input_scale).float())
        # A non-zero activation zero point adds zp × Σ_k W[n, k] to every int32 sum: taken off again.
        self.register_buffer("zero_point_sum", (input_zero_point * weight_int8.long().sum(dim=1)).float())
        self.inv_scale = 1.0 / input_scale  # the quantize op's own expression, for identical rounding
        self.zero_point, self.quant_min, self.quant_max = input_zero_point, quant_min, quant_max
        self.out_dtype = out_dtype

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()
        q = torch.clamp(torch.round(rows * self.inv_scale) + self.zero_point, self.quant_min, self.quant_max)
        acc = torch._int_mm(q.to(torch.int8), self.weight_int8.t()).float()
        if self.zero_point:
            acc = acc - self.zero_point_sum
        out = acc * self.out_scale
        if bias is not None:
            out = out + bias.float()
        return out.to(self.out_dtype).reshape(*x.shape[:-1], self.weight_int8.shape[0])


@dataclass
class LoweringReport:
    lowered: int = 0
    left: int = 0  # Linears whose inputs were not the QDQ pattern (float ones, or an unknown layout)
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"{self.lowered} int8 QDQ linears on int8 GEMMs"
        if self.left:
            text += f", {self.left} left as they were ({'; '.join(sorted(set(self.reasons))[:3])})"
        return text


def _copy(gm: fx.GraphModule) -> fx.GraphModule:
    """A new GraphModule on a copy of `gm`'s graph, sharing its tensors."""
    with warnings.catch_warnings():  # deep-copying the graph's pytree spec warns (torch 2.13) about LeafSpec
        warnings.simplefilter("ignore", FutureWarning)
        return fx.GraphModule(gm, copy.deepcopy(gm.graph))


def _value(gm: fx.GraphModule, arg):
    """A constant argument: a literal, or a get_attr node's tensor."""
    if isinstance(arg, fx.Node):
        if arg.op != "get_attr":
            raise LookupError("computed, not a constant")
        obj = gm
        for part in arg.target.split("."):
            obj = getattr(obj, part)
        return obj
    return arg


def _scalar(value) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _int_mm_fits(node: fx.Node, device: torch.device, k: int, n: int) -> str | None:
    """Why `torch._int_mm` cannot take this Linear, or None (cuBLASLt: more than 16 rows, sizes ÷ 8)."""
    if device.type != "cuda":
        return None
    val = node.meta.get("val")
    rows = None
    if isinstance(val, torch.Tensor):
        try:
            rows = int(torch.tensor(val.shape[:-1]).prod()) if val.dim() > 1 else 1
        except Exception:  # noqa: BLE001 - a symbolic size: let the check at open decide
            rows = None
    if rows is not None and rows <= 16:
        return "16 rows or fewer"
    if k % 8 or n % 8:
        return "sizes not multiples of 8"
    return None


def _match(gm: fx.GraphModule, linear: fx.Node, device: torch.device):
    """(x, Int8GemmLinear, bias node) for a QDQ linear, or a reason string."""
    x_dq, w_dq = linear.args[0], linear.args[1]
    bias = linear.args[2] if len(linear.args) > 2 else linear.kwargs.get("bias")
    if not (isinstance(x_dq, fx.Node) and x_dq.target in DEQUANTIZE):
        return "input not dequantized"
    x_q = x_dq.args[0]
    if not (isinstance(x_q, fx.Node) and x_q.target in QUANTIZE):
        return "input dequantize without a quantize"
    if not (isinstance(w_dq, fx.Node) and w_dq.target == DEQUANTIZE_CHANNEL):
        return "weight not dequantize_per_channel"
    try:
        q_params = [_value(gm, a) for a in x_q.args[1:6]]
        dq_params = [_value(gm, a) for a in x_dq.args[1:6]]
        weight, w_scale, w_zero, axis, w_min, w_max, w_dtype = (_value(gm, a) for a in w_dq.args[:7])
    except (LookupError, AttributeError, ValueError):
        return "quantisation parameters computed in the graph"
    scale, zero, qmin, qmax, qdtype = q_params
    if qdtype != torch.int8 or dq_params[4] != torch.int8 or w_dtype != torch.int8 or weight.dtype != torch.int8:
        return "not int8"
    if _scalar(dq_params[0]) != _scalar(scale) or int(_scalar(dq_params[1])) != int(_scalar(zero)):
        return "quantize and dequantize disagree"
    if axis != 0 or weight.dim() != 2 or bool((w_zero != 0).any()):
        return "weight not symmetric per output channel"
    if w_dq.kwargs.get("out_dtype") not in (None, torch.float32) or len(w_dq.args) > 7:
        return "weight dequantized to another dtype"
    if bias is not None and not isinstance(bias, fx.Node):
        return "literal bias"
    why = _int_mm_fits(linear, device, weight.shape[1], weight.shape[0])
    if why:
        return why
    out_val = linear.meta.get("val")
    out_dtype = out_val.dtype if isinstance(out_val, torch.Tensor) else torch.float32
    module = Int8GemmLinear(weight, w_scale.float().reshape(-1), _scalar(scale), int(_scalar(zero)), int(qmin),
                            int(qmax), out_dtype)
    return x_q.args[0], module, bias


def lower_qdq_linears(gm: fx.GraphModule, device: torch.device) -> tuple[fx.GraphModule, LoweringReport]:
    """A new GraphModule (sharing `gm`'s tensors; `gm` itself unchanged) with every int8 QDQ
    linear on `Int8GemmLinear`."""
    lowered = _copy(gm)
    report, reasons = LoweringReport(), []
    for node in list(lowered.graph.nodes):
        if node.op != "call_function" or node.target != LINEAR:
            continue
        found = _match(lowered, node, device)
        if isinstance(found, str):
            report.left += 1
            reasons.append(found)
            continue
        x, module, bias = found
        name = f"int8_gemm_{report.lowered}"
        lowered.add_submodule(name, module.to(device))
        with lowered.graph.inserting_before(node):
            new = lowered.graph.call_module(name, (x,) if bias is None else (x, bias))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        lowered.graph.erase_node(node)
        report.lowered += 1
    report.reasons = tuple(reasons)
    lowered.graph.eliminate_dead_code()
    lowered.recompile()
    return lowered, report


def attention_in_bf16(gm: fx.GraphModule) -> tuple[fx.GraphModule, int]:
    """A new GraphModule whose fp32 SDPA calls run in bf16; how many were changed."""
    changed = _copy(gm)
    count = 0
    for node in list(changed.graph.nodes):
        if node.op != "call_function" or node.target != SDPA:
            continue
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dtype != torch.float32:
            continue
        with changed.graph.inserting_before(node):
            args = [changed.graph.call_method("to", (a, torch.bfloat16)) for a in node.args[:3]]
        node.args = (*args, *node.args[3:])
        with changed.graph.inserting_after(node):
            back = changed.graph.call_method("to", (node, torch.float32))
        node.replace_all_uses_with(back, delete_user_cb=lambda user: user is not back)
        count += 1
    changed.recompile()
    return changed, count
