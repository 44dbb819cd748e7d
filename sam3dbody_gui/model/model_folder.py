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

import torch

from ..errors import ModelFolderError
from .checkpoint_file import read_checkpoint
from .config import ModelConfig, load_model_config
from .mhr_head import NUM_JOINTS
from .mhr_rig import check_mhr_rig, load_mhr_rig
from .sam3d_body import SAM3DBody

CHECKPOINT_NAME = "model.ckpt"
CONFIG_NAME = "model_config.yaml"
RIG_PATH = Path("assets") / "mhr_model.pt"
BACKBONE_PREFIX = "backbone.encoder."


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
    unexpected: list[str] = field(default_factory=list)  # in the file, unknown to the model
    hand_only: int = 0  # loaded, used only by full (hand-refinement) mode
    read_inertly: bool = False  # the file held non-tensor objects, read as inert placeholders

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
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelFolderError(f"model folder not found: {folder}")
    ckpt = folder / CHECKPOINT_NAME
    config = folder / CONFIG_NAME
    if not config.is_file() and (folder.parent / CONFIG_NAME).is_file():
        config = folder.parent / CONFIG_NAME
    rig = folder / RIG_PATH
    missing = [str(p.relative_to(folder)) if p.is_relative_to(folder) else str(p)
               for p in (ckpt, config, rig) if not p.is_file()]
    if missing:
        raise ModelFolderError(
            f"model folder {folder} is missing {', '.join(missing)} "
            "(expected the layout of facebook/sam-3d-body-dinov3: model.ckpt, model_config.yaml, assets/mhr_model.pt)"
        )
    return ModelFiles(folder, ckpt, config, rig)


def _mesh_size(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    try:
        num_vertices = state["head_pose.keypoint_mapping"].shape[1] - NUM_JOINTS
        num_faces = state["head_pose.faces"].shape[0]
    except KeyError as exc:
        raise ModelFolderError(f"checkpoint lacks {exc.args[0]}: not a SAM 3D Body checkpoint") from None
    return num_vertices, num_faces


def _is_hand_only(key: str) -> bool:
    head = key.split(".")[0]
    return head.endswith("_hand") or head in ("hand_pe_layer",)


def materialize(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Allocate a meta-device model on `device` and rebuild its computed (non-checkpoint) buffers."""
    model = model.to_empty(device=device)
    for module in model.modules():
        init = getattr(module, "init_static_buffers", None)
        if callable(init):
            init()
    return model


def load_state_into(model: SAM3DBody, state: dict[str, torch.Tensor], with_backbone: bool) -> LoadReport:
    expected = model.state_dict()
    report = LoadReport(tensors_in_file=len(state), tensors_loaded=0)
    wrong_shape = []
    for key, value in state.items():
        if not with_backbone and key.startswith(BACKBONE_PREFIX):
            report.backbone_skipped += 1
        elif key not in expected:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            wrong_shape.append(f"{key} is {tuple(value.shape)}, the config wants {tuple(expected[key].shape)}")
    missing = sorted(set(expected) - set(state))
    if wrong_shape or missing:
        details = wrong_shape[:3] + [f"{k} is missing" for k in missing[:3]]
        more = len(wrong_shape) + len(missing) - len(details)
        raise ModelFolderError(
            "checkpoint does not match the architecture in model_config.yaml: " + "; ".join(details)
            + (f"; and {more} more" if more > 0 else "")
        )
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(state[key])  # copy_ converts dtype (fp16 file → model precision)
    report.tensors_loaded = len(expected)
    report.hand_only = sum(1 for k in expected if _is_hand_only(k))
    return report


def load_model_folder(
    folder: Path,
    device: torch.device | str = "cpu",
    decoder_dtype: torch.dtype = torch.float32,
    backbone_dtype: torch.dtype = torch.float32,
    with_backbone: bool = True,
) -> LoadedModel:
    """Build our SAM3DBody from a model folder. `with_backbone=False` when a runtime backend
    (TensorRT engine, .pt2) computes the features: the 840 M backbone weights are not loaded."""
    device = torch.device(device)
    files = find_model_files(folder)
    config = load_model_config(files.config)
    contents = read_checkpoint(files.checkpoint)
    state = contents.state_dict
    num_vertices, num_faces = _mesh_size(state)
    with torch.device("meta"):
        model = SAM3DBody(config, num_vertices, num_faces, with_backbone=with_backbone)
    model.to(decoder_dtype)
    if with_backbone:
        model.backbone.to(backbone_dtype)
    model = materialize(model, device)
    report = load_state_into(model, state, with_backbone)
    report.read_inertly = contents.needed_inert_loading
    model.mhr = load_mhr_rig(files.mhr_rig, device)
    check_mhr_rig(model.mhr, num_vertices, device)
    model.eval()
    return LoadedModel(model, config, files, report, device)
