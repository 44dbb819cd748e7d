"""Backbone backend: a torch.export ExportedProgram (`.pt2`), e.g. the published INT8 export.

The program is moved to the target device with torch's own pass (constants created inside the
graph move too), its single user input is discovered from the graph signature, and the crop is
cast to the dtype that input was exported with.

`speed` (pt2_fast.py): "as-is" runs the program's module as exported (an INT8 QDQ program at
fp32-eager speed); "lowered" puts its QDQ linears on int8 GEMMs; "compiled" also compiles it
(on a GPU replayed as one CUDA graph). Each step is checked against the program run as is on a
probe crop and dropped, with a message, if it fails or differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.export.passes import move_to_device_pass

from ...errors import ModelFolderError
from .base import BackboneBackend, BackendInfo, describe_device
from .pt2_fast import PT2_SPEEDS, FastProgram, speed_up

PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _user_input_meta(program: torch.export.ExportedProgram) -> torch.Tensor:
    names = [spec.arg.name for spec in program.graph_signature.input_specs
             if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    if len(names) != 1:
        raise ModelFolderError(f"the .pt2 backbone takes {len(names)} inputs; expected one image crop")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
    return node.meta["val"]


def _weight_precision(program: torch.export.ExportedProgram) -> str:
    dtypes = {t.dtype for t in program.state_dict.values() if isinstance(t, torch.Tensor)}
    if any(d in (torch.int8, torch.qint8, torch.uint8) for d in dtypes) or any("float8" in str(d) for d in dtypes):
        return "int8/fp8 + " + "/".join(sorted(PRECISION_NAMES.get(d, str(d)) for d in dtypes if d.is_floating_point))
    floats = sorted(PRECISION_NAMES.get(d, str(d)) for d in dtypes if d.is_floating_point)
    return "/".join(floats) or "unknown"


def indexed_device(device: torch.device) -> torch.device:
    """`cuda` as `cuda:<current>`: the program's device asserts compare the written device with
    the tensor's exactly, so a program moved to plain `cuda` fails to compile on fake tensors
    ('Expected: cuda, Got: cuda:0'), though it runs eagerly."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class ExportedProgramBackbone(BackboneBackend):
    def __init__(self, path: Path, device: torch.device, speed: str = "as-is", half_attention: bool = False,
                 progress=lambda message: None, mesh_check=None, verdicts=None) -> None:
        """`mesh_check` (cpu_check.MeshCheck): judge the speed-up's steps by the mesh, `verdicts`
        (pt2_fast.StepVerdicts): as kept by an earlier start (pt2_fast.speed_up)."""
        if speed not in PT2_SPEEDS:
            raise ValueError(f"unknown .pt2 speed {speed!r}: choose from {', '.join(PT2_SPEEDS)}")
        path = Path(path)
        if not path.is_file():
            raise ModelFolderError(f".pt2 backbone not found: {path}")
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # noqa: BLE001 - corrupt archives raise many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelFolderError(f"{path} is not a loadable torch.export program ({first})") from None
        meta = _user_input_meta(program)
        if meta.dim() != 4 or meta.shape[1] != 3:
            raise ModelFolderError(f"the .pt2 backbone expects input {tuple(meta.shape)}; expected (1, 3, S, S)")
        self.input_shape = tuple(int(s) for s in meta.shape)
        self.input_dtype = meta.dtype
        self.device = torch.device(device)
        program = move_to_device_pass(program, indexed_device(self.device))
        self.module = program.module()
        self.fast: FastProgram = speed_up(self.module, speed, self.device, self.input_shape, self.input_dtype,
                                          half_attention, progress, mesh_check, verdicts)
        precision = _weight_precision(program)
        if self.fast.steps:
            precision += " (" + ", ".join(self.fast.steps) + ")"
        self.info = BackendInfo("pt2", precision, describe_device(self.device))
        self.path = path

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        """Features of `crop`; after a "compiled" CUDA speed-up they live in the graph's output
        buffer, which the next call overwrites (clone to keep them)."""
        with torch.inference_mode():
            return self.fast.run(crop.to(self.input_dtype))
