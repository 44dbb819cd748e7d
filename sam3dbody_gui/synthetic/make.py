"""`make-synthetic`: a model folder in exactly the released layout, with random weights.

    model_config.yaml, model.ckpt ({"state_dict": …}; backbone fp16, rest fp32, as released),
    assets/mhr_model.pt (TorchScript MHR stand-in), exports/backbone.onnx(+.data), exports/backbone.pt2,
    SYNTHETIC.txt (says plainly that the weights are random).

The real weights are gated and cannot be fetched on build machines, so tests and benchmarks run
on these: `tiny` for tests (seconds on a CPU), `full` for benchmarks (the real sizes).
The folder is assembled in a temporary sibling and renamed into place, so a failure or a
cancel never leaves a half-written model behind, and an existing folder is never overwritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..atomic_file import atomic_folder
from ..errors import UserError
from ..model.config import DecoderConfig, ModelConfig, save_model_config
from ..model.model_folder import CHECKPOINT_NAME, CONFIG_NAME, RIG_PATH, SYNTHETIC_MARKER, is_synthetic  # noqa: F401
from ..model.sam3d_body import SAM3DBody
from .backbone_exports import export_backbone_onnx, export_backbone_pt2, onnx_export_problem
from .mhr_standin import build_mhr_standin, save_mhr_standin
from .random_weights import demo_camera_start, init_model_random_

MARKER_NAME = SYNTHETIC_MARKER
EXPORTS_DIR = "exports"
ONNX_NAME = "backbone.onnx"
PT2_NAME = "backbone.pt2"
EXPORT_KINDS = ("onnx", "pt2")

SIZES: dict[str, ModelConfig] = {
    "full": ModelConfig(),  # the released configuration
    "tiny": replace(
        ModelConfig(),
        backbone_type="sam3dbody_gui_tiny",
        decoder=replace(DecoderConfig(), dim=64, heads=2, dim_head=16, mlp_dim=64),
    ),
}


def synthetic_config(size: str) -> ModelConfig:
    try:
        return SIZES[size]
    except KeyError:
        raise UserError(f"unknown synthetic size {size!r}: use tiny or full") from None


def build_synthetic_model(size: str, seed: int) -> tuple[SAM3DBody, torch.nn.Module]:
    """Our model with random weights and the matching MHR stand-in (attached as `model.mhr`)."""
    cfg = synthetic_config(size)
    standin = build_mhr_standin(size, seed)
    model = SAM3DBody(cfg, num_vertices=standin.num_vertices, num_faces=standin.faces.shape[0])
    init_model_random_(model, seed, demo_camera_start(*_rest_extent_y(standin.module)))
    with torch.no_grad():
        for head in (model.head_pose, model.head_pose_hand):
            for name, value in standin.head_buffers.items():
                getattr(head, name).copy_(value)
    with torch.no_grad():  # the released backbone is fp16: exports must hold the same (rounded) values
        for tensor in model.backbone.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half())
    model.mhr = standin.module
    return model.eval(), standin


@torch.no_grad()
def _rest_extent_y(rig: torch.nn.Module) -> tuple[float, float]:
    """(height, centre height) in metres of the rig's zero-pose body (MHR is Y-up, cm), to 0.1 mm.

    Rounded because the rig's matrix products round differently per CPU instruction set: the
    camera start, a weight of the model, must not carry those last bits."""
    verts, _ = rig(torch.zeros(1, 45), torch.zeros(1, 204), torch.zeros(1, 72))
    y = verts[0, :, 1].double() / 100.0
    return round(float(y.max() - y.min()), 4), round(float(y.max() + y.min()) / 2, 4)


def released_state_dict(model: SAM3DBody) -> dict[str, torch.Tensor]:
    """State dict with the released dtypes: backbone fp16, everything else as built (fp32)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone.") and value.is_floating_point():
            value = value.half()
        state[key] = value.detach().clone().contiguous()
    return state


def _check_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} already exists and is not empty; choose a new folder (nothing was written)")


def default_exports(progress: Callable[[str], None] = lambda msg: None) -> tuple[str, ...]:
    """Every export this install can write: the ONNX one only with the `export` extra's packages."""
    problem = onnx_export_problem()
    if problem:
        progress(f"skipping the ONNX backbone export ({problem})")
        return tuple(kind for kind in EXPORT_KINDS if kind != "onnx")
    return EXPORT_KINDS


def make_synthetic_model(
    dest: Path,
    size: str = "tiny",
    seed: int = 0,
    exports: tuple[str, ...] | None = EXPORT_KINDS,
    progress: Callable[[str], None] = lambda msg: None,
) -> Path:
    """`exports`: which backbone exports to write; None: those this install can write."""
    dest = Path(dest).expanduser().resolve()
    _check_destination(dest)
    if exports is None:
        exports = default_exports(progress)
    unknown = set(exports) - set(EXPORT_KINDS)
    if unknown:
        raise UserError(f"unknown export kind(s) {sorted(unknown)}: choose from {', '.join(EXPORT_KINDS)}")
    if "onnx" in exports and onnx_export_problem():  # say so before minutes of work, not after
        raise UserError(f"cannot write the ONNX export: {onnx_export_problem()} (or --exports pt2)")
    with atomic_folder(dest, before_publish=lambda: _check_destination(dest)) as work:
        progress(f"building a {size} model with random weights (seed {seed})")
        model, standin = build_synthetic_model(size, seed)
        save_model_config(model.cfg, work / CONFIG_NAME)
        (work / RIG_PATH).parent.mkdir(parents=True)
        save_mhr_standin(standin, work / RIG_PATH)
        progress("writing model.ckpt")
        torch.save({"state_dict": released_state_dict(model)}, work / CHECKPOINT_NAME)
        if exports:
            (work / EXPORTS_DIR).mkdir()
        if "pt2" in exports:
            progress("exporting the backbone to torch.export .pt2")
            export_backbone_pt2(model.backbone.encoder, work / EXPORTS_DIR / PT2_NAME, model.cfg.crop_size)
        if "onnx" in exports:
            progress("exporting the backbone to ONNX (external weights)")
            export_backbone_onnx(model.backbone.encoder, work / EXPORTS_DIR / ONNX_NAME, model.cfg.crop_size)
        (work / MARKER_NAME).write_text(
            "SYNTHETIC MODEL - RANDOM WEIGHTS\n"
            f"Made by sam3dbody-gui make-synthetic --size {size} --seed {seed}.\n"
            "Same files, key names and shapes as facebook/sam-3d-body-dinov3, but the weights are random\n"
            "and the MHR rig is a stand-in: meshes from it are not estimates of anyone's pose or shape.\n",
            encoding="utf-8",
        )
    progress(f"wrote {dest}")
    return dest


def state_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names and bytes: tells whether two synthetic models are the same weights."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
