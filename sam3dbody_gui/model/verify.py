"""Checking a model folder before use, cheaply, with a report a person can read.

`verify_model_folder` runs the checks `load_model_folder` relies on, without loading ~1 B
parameters: the files are there; model_config.yaml parses; the checkpoint is read with mmap
(tensor data stays on disk) and every key and shape is compared with the architecture the
config describes, built on the meta device; the MHR rig is a TorchScript archive (or, with
`deep=True`, is loaded and checked against the checkpoint's mesh size); backbone exports, if
any, are complete. Every outcome is a line of the report, never a stack trace.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

OK, INFO, WARNING, ERROR = "ok", "info", "warning", "error"


@dataclass
class Check:
    name: str
    level: str  # ok | info | warning | error
    detail: str


@dataclass
class VerifyReport:
    folder: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.level == ERROR for c in self.checks)

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.level == ERROR]

    def add(self, name: str, level: str, detail: str) -> None:
        self.checks.append(Check(name, level, detail))

    def text(self) -> str:
        marks = {OK: "ok  ", INFO: "info", WARNING: "warn", ERROR: "FAIL"}
        lines = [f"model folder {self.folder}: " + ("usable" if self.ok else "NOT usable")]
        lines += [f"  {marks[c.level]}  {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def first_error(self) -> str:
        e = self.errors
        return f"{e[0].name}: {e[0].detail}" if e else ""


def _size(path: Path) -> str:
    from ..hub import format_size

    try:
        return format_size(path.stat().st_size)
    except OSError:
        return "?"


def compare_state(expected: dict, state: dict, with_backbone: bool = True,
                  backbone_prefix: str = "backbone.encoder.") -> tuple[list[str], list[str], list[str]]:
    """(wrong shapes, missing keys, unknown keys) of `state` against `expected` (name → tensor)."""
    wrong, unknown = [], []
    for key, value in state.items():
        if not with_backbone and key.startswith(backbone_prefix):
            continue
        if key not in expected:
            unknown.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            wrong.append(f"{key} is {tuple(value.shape)}, the config wants {tuple(expected[key].shape)}")
    missing = sorted(set(expected) - set(state))
    return wrong, missing, unknown


def verify_model_folder(folder: Path, deep: bool = False) -> VerifyReport:
    import torch

    from .checkpoint_file import read_checkpoint
    from .config import load_model_config
    from .model_folder import _mesh_size, find_model_files
    from .sam3d_body import SAM3DBody

    folder = Path(folder).expanduser()
    report = VerifyReport(folder)
    try:
        files = find_model_files(folder)
    except UserError as exc:
        report.add("files", ERROR, str(exc))
        return report
    report.add("files", OK, f"model.ckpt ({_size(files.checkpoint)}), {files.config.name}, "
                            f"assets/mhr_model.pt ({_size(files.mhr_rig)})")

    try:
        config = load_model_config(files.config)
        report.add("config", OK, f"{config.backbone_type} backbone, decoder depth {config.decoder.depth}, "
                                 f"{config.crop_size}px crops")
    except UserError as exc:
        report.add("config", ERROR, str(exc))
        config = None
    except Exception as exc:  # noqa: BLE001
        report.add("config", ERROR, f"{files.config} could not be read ({type(exc).__name__}: {exc})")
        config = None

    num_vertices = None
    try:
        contents = read_checkpoint(files.checkpoint)  # mmap: the tensor data is not read
        state = contents.state_dict
        num_vertices, num_faces = _mesh_size(state)
        if config is not None:
            with torch.device("meta"):
                model = SAM3DBody(config, num_vertices, num_faces, with_backbone=True)
            wrong, missing, unknown = compare_state(model.state_dict(), state)
            if wrong or missing:
                details = wrong[:3] + [f"{k} is missing" for k in missing[:3]]
                more = len(wrong) + len(missing) - len(details)
                report.add("checkpoint", ERROR, "does not match the architecture in model_config.yaml: "
                           + "; ".join(details) + (f"; and {more} more" if more > 0 else ""))
            else:
                note = f"; {len(unknown)} unknown tensors ignored (e.g. {unknown[0]})" if unknown else ""
                report.add("checkpoint", WARNING if unknown else OK,
                           f"{len(state)} tensors, every key and shape matches ({num_vertices} vertices){note}")
        if contents.needed_inert_loading:
            report.add("checkpoint objects", INFO, "non-tensor objects in the file are read as inert placeholders")
    except UserError as exc:
        report.add("checkpoint", ERROR, str(exc))
    except Exception as exc:  # noqa: BLE001
        report.add("checkpoint", ERROR, f"{files.checkpoint} could not be read ({type(exc).__name__}: {exc})")

    _check_rig(report, files.mhr_rig, num_vertices, deep)
    _check_exports(report, files)
    from ..synthetic.make import is_synthetic

    if is_synthetic(folder):
        report.add("weights", WARNING, "a synthetic demo model: its weights are random")
    return report


def _check_rig(report: VerifyReport, path: Path, num_vertices, deep: bool) -> None:
    if not zipfile.is_zipfile(path):
        report.add("MHR rig", ERROR, f"{path} is not a TorchScript archive (truncated or corrupt?)")
        return
    if not deep or num_vertices is None:
        report.add("MHR rig", OK, "TorchScript archive")
        return
    from .mhr_rig import check_mhr_rig, load_mhr_rig

    try:
        check_mhr_rig(load_mhr_rig(path, "cpu"), num_vertices, "cpu")
        report.add("MHR rig", OK, f"loads; {num_vertices} vertices like the checkpoint")
    except UserError as exc:
        report.add("MHR rig", ERROR, str(exc))
    except Exception as exc:  # noqa: BLE001
        report.add("MHR rig", ERROR, f"{type(exc).__name__}: {exc}")


def _check_exports(report: VerifyReport, files) -> None:
    from ..runtime.select import ONNX_CANDIDATES, PT2_CANDIDATES, find_backbone_file

    onnx = find_backbone_file(files, ONNX_CANDIDATES)
    if onnx is None:
        report.add("backbone ONNX", INFO, "none (optional: the TensorRT backend needs it)")
    else:
        data = onnx.with_name(onnx.name + ".data")
        if onnx.name.startswith("embedl") and not data.is_file():
            report.add("backbone ONNX", ERROR, f"{onnx.name} is there but its weights {data.name} are not")
        else:
            extra = f" + {data.name} ({_size(data)})" if data.is_file() else ""
            report.add("backbone ONNX", OK, f"{onnx.name} ({_size(onnx)}){extra}")
    pt2 = find_backbone_file(files, PT2_CANDIDATES)
    if pt2 is None:
        report.add("backbone .pt2", INFO, "none (optional: the pt2 backend needs it)")
    elif not zipfile.is_zipfile(pt2):
        report.add("backbone .pt2", ERROR, f"{pt2.name} is not a .pt2 archive (truncated or corrupt?)")
    else:
        report.add("backbone .pt2", OK, f"{pt2.name} ({_size(pt2)})")
