"""Loading a SAM 3D Body model folder (the layout of `facebook/sam-3d-body-dinov3`).

    <folder>/model.ckpt            state dict (possibly under "state_dict")
    <folder>/model_config.yaml     (or in the parent folder, as upstream allows)
    <folder>/assets/mhr_model.pt   the MHR rig, TorchScript

The model is built on the meta device (no random init of ~1 B parameters), materialised on the
target device, then filled from the checkpoint. Every tensor is checked: a missing or misshapen
one is a clear error naming the architecture mismatch, never a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ModelFolderError
from .checkpoint_file import read_checkpoint
from .meta_build import meta_model_building
from .config import ModelConfig, load_model_config
from .mhr_head import NUM_JOINTS
from .mhr_rig import check_mhr_rig, load_mhr_rig
from .sam3d_body import SAM3DBody

CHECKPOINT_NAME = "model.ckpt"
CONFIG_NAME = "model_config.yaml"
RIG_PATH = Path("assets") / "mhr_model.pt"
BACKBONE_PREFIX = "backbone.encoder."
# Backbone exports a folder may hold, first found wins: the published ones, then make-synthetic's.
ONNX_CANDIDATES = ("embedl_sam3dbody_int8.onnx", "exports/backbone.onnx")
PT2_CANDIDATES = ("embedl_sam3dbody_int8.pt2", "exports/backbone.pt2")
# make-synthetic leaves this file in every folder it writes: the weights are random.
SYNTHETIC_MARKER = "SYNTHETIC.txt"


def is_synthetic(folder: Path) -> bool:
    return (Path(folder) / SYNTHETIC_MARKER).is_file()


@dataclass
class ModelFiles:
    folder: Path
    checkpoint: Path
    config: Path
    mhr_rig: Path


@dataclass
class LoadReport:
    tensors_in_file: int
    tensors_loaded: int
    backbone_skipped: int = 0  # backbone tensors left to a runtime backend (TensorRT / .pt2)
    unexpected: list[str] = field(default_factory=list)  # under prefixes the model lacks: ignored
    hand_only: int = 0  # loaded, used only by full (hand-refinement) mode
    read_inertly: bool = False  # the file held non-tensor objects, read as inert placeholders
    left_unloaded: tuple[str, ...] = ()  # parameters the caller provides (load_model_folder's leave_unloaded)

    def summary(self) -> str:
        parts = [f"{self.tensors_loaded}/{self.tensors_in_file} tensors loaded"]
        if self.backbone_skipped:
            parts.append(f"{self.backbone_skipped} backbone tensors left to the runtime")
        if self.hand_only:
            parts.append(f"{self.hand_only} used only by hand refinement")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unknown and ignored (e.g. {self.unexpected[0]})")
        if self.read_inertly:
            parts.append("non-tensor objects in the file were read as inert placeholders")
        return "; ".join(parts)


@dataclass
class LoadedModel:
    model: SAM3DBody
    config: ModelConfig
    files: ModelFiles
    report: LoadReport
    device: torch.device


def find_model_files(folder: Path) -> ModelFiles:
    """The three required files, each readable; otherwise one message naming every problem
    with its real cause (missing, a broken link, a symlink loop, permission denied, ...)."""
    from .file_checks import file_problem, require_folder

    folder = require_folder(folder, "model folder")
    ckpt = folder / CHECKPOINT_NAME
    config = folder / CONFIG_NAME
    if file_problem(config) == "is missing" and file_problem(folder.parent / CONFIG_NAME) is None:
        config = folder.parent / CONFIG_NAME
    rig = folder / RIG_PATH
    missing, other = [], []
    for p in (ckpt, config, rig):
        problem = file_problem(p)
        name = str(p.relative_to(folder)) if p.is_relative_to(folder) else str(p)
        if problem == "is missing":
            missing.append(name)
        elif problem is not None:
            other.append(f"{name} {problem}")
    if other:
        raise ModelFolderError(f"model folder {folder}: " + "; ".join(other + [f"{m} is missing" for m in missing]))
    if missing:
        raise ModelFolderError(
            f"model folder {folder} is missing {', '.join(missing)} "
            "(expected the layout of facebook/sam-3d-body-dinov3: model.ckpt, model_config.yaml, assets/mhr_model.pt)"
        )
    return ModelFiles(folder, ckpt, config, rig)


MAX_MESH_SIZE = 10_000_000  # the released mesh has 18,439 vertices; beyond this a file is not a mesh


def _mesh_size(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    try:
        mapping, faces = state["head_pose.keypoint_mapping"], state["head_pose.faces"]
    except KeyError as exc:
        raise ModelFolderError(f"checkpoint lacks {exc.args[0]}: not a SAM 3D Body checkpoint") from None
    if mapping.dim() != 2 or faces.dim() != 2:
        raise ModelFolderError("checkpoint's head_pose.keypoint_mapping / head_pose.faces are not matrices: "
                               "not a SAM 3D Body checkpoint")
    num_vertices, num_faces = mapping.shape[1] - NUM_JOINTS, faces.shape[0]
    if not (0 < num_vertices <= MAX_MESH_SIZE and 0 < num_faces <= 2 * MAX_MESH_SIZE):
        raise ModelFolderError(f"checkpoint describes a mesh of {num_vertices} vertices and {num_faces} faces: "
                               "not a SAM 3D Body checkpoint")
    return num_vertices, num_faces


def decoder_depth_in(state: dict[str, torch.Tensor], prefix: str = "decoder.layers.") -> int:
    """How many decoder layers the checkpoint holds (1 + the highest layer index)."""
    indices = {key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)}
    return 1 + max((int(i) for i in indices if i.isdigit()), default=-1)


@dataclass
class StateCheck:
    """A checkpoint against the architecture a config describes."""

    wrong_shape: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # under a prefix the model has, but not used
    foreign: list[str] = field(default_factory=list)  # under prefixes the model has nothing of
    rig: list[str] = field(default_factory=list)  # an MHR rig's tensors (the rig is its own file)
    backbone_skipped: int = 0
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not (self.wrong_shape or self.missing or self.unused)

    def message(self) -> str:
        details = self.wrong_shape[:3] + [f"{k} is missing" for k in self.missing[:3]]
        if self.unused:
            more = f" and {len(self.unused) - 1} more" if len(self.unused) > 1 else ""
            details.append(f"{self.unused[0]}{more} are in the checkpoint but not in the architecture")
        shown = len(self.wrong_shape[:3]) + len(self.missing[:3]) + (len(self.unused) > 0)
        more = len(self.wrong_shape) + len(self.missing) + (len(self.unused) > 0) - shown
        return ("checkpoint does not match the architecture in model_config.yaml: "
                + (f"{self.hint}; " if self.hint else "") + "; ".join(details)
                + (f"; and {more} more" if more > 0 else ""))


def check_state(expected: dict, state: dict, config: ModelConfig, with_backbone: bool = True) -> StateCheck:
    """Compare names and shapes (no tensor data is read). A tensor the model does not use under
    one of its own prefixes (e.g. `decoder.layers.5.*` with DECODER.DEPTH 5) means the config
    describes another model than the checkpoint holds: an error, never silently dropped."""
    out = StateCheck()
    known = {k.split(".", 1)[0] for k in expected} | {"backbone"}
    for key, value in state.items():
        if key.startswith(BACKBONE_PREFIX) and not with_backbone:
            out.backbone_skipped += 1
        elif key in expected:
            if tuple(value.shape) != tuple(expected[key].shape):
                out.wrong_shape.append(f"{key} is {tuple(value.shape)}, the config wants {tuple(expected[key].shape)}")
        elif ".mhr." in f".{key}":
            out.rig.append(key)
        elif key.split(".", 1)[0] in known:
            out.unused.append(key)
        else:
            out.foreign.append(key)
    out.missing = sorted(set(expected) - set(state))
    for prefix in ("decoder.layers.", "decoder_hand.layers."):
        held = decoder_depth_in(state, prefix)
        if held and held != config.decoder.depth:
            out.hint = (f"the checkpoint has {held} decoder layers, model_config.yaml says "
                        f"DECODER.DEPTH {config.decoder.depth}")
            break
    return out


def _is_hand_only(key: str) -> bool:
    head = key.split(".")[0]
    return head.endswith("_hand") or head in ("hand_pe_layer",)


def materialize(model: torch.nn.Module, device: torch.device,
                backbone_device: torch.device | None = None) -> torch.nn.Module:
    """Allocate a meta-device model on `device` (its backbone on `backbone_device` when given) and
    rebuild its computed (non-checkpoint) buffers."""
    backbone = getattr(model, "backbone", None)
    if backbone_device is not None and backbone is not None:
        backbone.to_empty(device=backbone_device)
        if next(model.parameters(recurse=False), None) is not None or next(model.buffers(recurse=False), None) is not None:
            raise ValueError("materialize: tensors held by the model itself, outside its submodules")
        for child in model.children():
            if child is not backbone:
                child.to_empty(device=device)
    else:
        model = model.to_empty(device=device)
    for module in model.modules():
        init = getattr(module, "init_static_buffers", None)
        if callable(init):
            init()
    return model


def _detach_parameter(model: nn.Module, name: str) -> tuple[nn.Module, str, nn.Parameter]:
    owner, _, attribute = name.rpartition(".")
    module = model.get_submodule(owner)
    if attribute not in module._parameters:
        raise ValueError(f"{name} is not a parameter of the model")
    return module, attribute, module._parameters.pop(attribute)


def load_left_parameters(loaded: LoadedModel, names: Iterable[str] | None = None) -> None:
    """Read parameters `load_model_folder` left unloaded (all of them by default) from the
    checkpoint after all, e.g. when what was to provide them failed."""
    names = list(loaded.report.left_unloaded if names is None else names)
    if not names:
        return
    contents = read_checkpoint(loaded.files.checkpoint)
    with torch.no_grad():
        for name in names:
            module, attribute, meta = _detach_parameter(loaded.model, name)
            device = next((t.device for t in module.parameters() if not t.is_meta), loaded.device)
            value = torch.empty(meta.shape, dtype=meta.dtype, device=device)
            value.copy_(contents.state_dict[name])
            module._parameters[attribute] = nn.Parameter(value, requires_grad=False)
    read = set(names)
    loaded.report.left_unloaded = tuple(n for n in loaded.report.left_unloaded if n not in read)
    loaded.report.tensors_loaded += len(names)
    del contents


def load_state_into(model: SAM3DBody, state: dict[str, torch.Tensor], with_backbone: bool,
                    checked: StateCheck | None = None, skip: set[str] = frozenset()) -> LoadReport:
    expected = model.state_dict()
    checked = checked or check_state(expected, state, model.cfg, with_backbone)
    if not checked.ok:
        raise ModelFolderError(checked.message())
    report = LoadReport(tensors_in_file=len(state), tensors_loaded=0, backbone_skipped=checked.backbone_skipped,
                        unexpected=checked.foreign + checked.rig)
    with torch.no_grad():
        for key, target in expected.items():
            if key not in skip:
                target.copy_(state[key])  # copy_ converts dtype (fp16 file → model precision)
    report.tensors_loaded = len(expected) - len(skip & expected.keys())
    report.hand_only = sum(1 for k in expected if _is_hand_only(k))
    return report


def load_model_folder(
    folder: Path,
    device: torch.device | str = "cpu",
    decoder_dtype: torch.dtype = torch.float32,
    backbone_dtype: torch.dtype = torch.float32,
    with_backbone: bool = True,
    backbone_device: torch.device | str | None = None,
    leave_unloaded: Callable[[nn.Module], Iterable[str]] | None = None,
) -> LoadedModel:
    """Build our SAM3DBody from a model folder. `with_backbone=False` when a runtime backend
    (TensorRT engine, .pt2) computes the features: the 840 M backbone weights are not loaded.
    `backbone_device`: where the backbone's weights go, when not on `device` (the fp8 path loads
    them on the host and quantises them onto the GPU: BackendPlan.backbone_on_host).
    `leave_unloaded(meta model)`: names of parameters the caller provides otherwise (the int8
    backbone's weights from their cache): they are neither allocated nor read and stay on the
    meta device (`load_left_parameters` reads them after all)."""
    device = torch.device(device)
    files = find_model_files(folder)
    config = load_model_config(files.config)
    contents = read_checkpoint(files.checkpoint)
    state = contents.state_dict
    num_vertices, num_faces = _mesh_size(state)
    with meta_model_building():
        model = SAM3DBody(config, num_vertices, num_faces, with_backbone=with_backbone)
    # Names and shapes are compared on the meta model, before any memory is allocated for it.
    checked = check_state(model.state_dict(), state, config, with_backbone)
    if not checked.ok:
        raise ModelFolderError(checked.message())
    # The rig before the weights: TorchScript's loader, run while the checkpoint's pages are
    # mapped and read, took 4.5-5.8 s instead of 0.3 s for the full-size rig on a 2-core VM
    # (the copy itself is no slower after it). The rig is then checked before any weight is copied.
    rig = load_mhr_rig(files.mhr_rig, device)
    check_mhr_rig(rig, num_vertices, device)
    model.to(decoder_dtype)
    if with_backbone:
        model.backbone.to(backbone_dtype)
    left = sorted(set(leave_unloaded(model))) if leave_unloaded is not None else []
    held = [_detach_parameter(model, name) for name in left]  # out of the model while it is allocated
    model = materialize(model, device, None if backbone_device is None else torch.device(backbone_device))
    for module, attribute, parameter in held:
        module._parameters[attribute] = parameter  # back, still on the meta device
    report = load_state_into(model, state, with_backbone, checked, skip=set(left))
    report.left_unloaded = tuple(left)
    report.read_inertly = contents.needed_inert_loading
    del state, contents  # unmaps the checkpoint now, not when the caller's frame ends
    model.mhr = rig
    model.eval()
    return LoadedModel(model, config, files, report, device)


def find_backbone_file(files: ModelFiles, candidates: tuple[str, ...]) -> Path | None:
    """The first of `candidates` (paths relative to the model folder) that is a file, or None."""
    for name in candidates:
        if (files.folder / name).is_file():
            return files.folder / name
    return None
