"""The MHR body rig (`assets/mhr_model.pt`, TorchScript): load it once and check its contract.

Contract: `verts, skeleton = rig(shape[B,45], model_params[B,204], expr[B,72])` with verts
(B, V, 3) in cm and skeleton (B, 127, 8) = joint position, quaternion (xyzw), scale.
Upstream loads this file twice (once per MHR head); we load it once and share it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelFolderError
from .mhr_head import NUM_FACE, NUM_JOINTS, NUM_SHAPE

NUM_MODEL_PARAMS = 204


def load_mhr_rig(path: Path, device: torch.device | str) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(f"MHR rig not found: {path} (it ships in the model folder as assets/mhr_model.pt)")
    try:
        rig = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # noqa: BLE001 - TorchScript raises several types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{path} is not a loadable TorchScript MHR rig ({first})") from None
    rig.eval()
    for p in rig.parameters():
        p.requires_grad_(False)
    return rig


def check_mhr_rig(rig: torch.nn.Module, num_vertices: int, device: torch.device | str) -> None:
    """One zero-pose call: the rig must accept the real signature and match the checkpoint's mesh size."""
    dev = torch.device(device)
    try:
        with torch.no_grad():
            verts, skeleton = rig(
                torch.zeros(1, NUM_SHAPE, device=dev),
                torch.zeros(1, NUM_MODEL_PARAMS, device=dev),
                torch.zeros(1, NUM_FACE, device=dev),
            )
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"the MHR rig does not accept (shape, model_params, expr): {first}") from None
    if tuple(verts.shape) != (1, num_vertices, 3) or tuple(skeleton.shape) != (1, NUM_JOINTS, 8):
        raise ModelFolderError(
            f"the MHR rig returns vertices {tuple(verts.shape)} and skeleton {tuple(skeleton.shape)}; "
            f"the checkpoint expects (1, {num_vertices}, 3) and (1, {NUM_JOINTS}, 8): rig and checkpoint do not match"
        )
