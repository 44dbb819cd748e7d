"""Backbone exports with the deployed I/O: (1,3,S,S) normalised crop → (1,C,S/16,S/16) features.

These stand in for the published `embedl_sam3dbody_int8.onnx` (+ external `.onnx.data`) and
`.pt2` so the runtime backends are exercised on files of the same kind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path

import torch

from ..errors import UserError

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
