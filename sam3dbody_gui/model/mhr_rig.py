"""The MHR body rig (`assets/mhr_model.pt`, TorchScript): load it once and check its contract.

Contract: `verts, skeleton = rig(shape[B,45], model_params[B,204], expr[B,72])` with verts
(B, V, 3) in cm and skeleton (B, 127, 8) = joint position, quaternion (xyzw), scale.
Upstream loads this file twice (once per MHR head); we load it once and share it.

Safety: TorchScript is code, not data. Loading a rig compiles its code and may run it (a class's
`__setstate__`), and calling it runs its `forward`; that code can read and write files (e.g.
through `torch.from_file`). So a rig is loaded only from a folder the user chose, and
`model/verify.py` looks inside the archive (without running it), hashes it, and flags a rig
whose SHA-256 differs from the Hub's record or from the published one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelFolderError, first_line
from .mhr_head import NUM_FACE, NUM_JOINTS, NUM_SHAPE

NUM_MODEL_PARAMS = 204
RIG_REPO_FILE = "facebook/sam-3d-body-dinov3/assets/mhr_model.pt"
# The SHA-256 of the released rig, when this app knows it. It does not yet: hub.py learns a
# file's hash only from the Hub's ETag at download time (checked then, and recorded on disk by
# huggingface_hub), and no hash of the gated file is written down here. None means a rig is
# reported as "unverified" against a published hash, never as matching one.
PUBLISHED_MHR_RIG_SHA256: str | None = None


def load_mhr_rig(path: Path, device: torch.device | str) -> torch.jit.ScriptModule:
    from .file_checks import file_problem, inspect_torchscript

    path = Path(path)
    problem = file_problem(path)
    if problem == "is missing":
        raise ModelFolderError(f"MHR rig not found: {path} (it ships in the model folder as assets/mhr_model.pt)")
    if problem is not None:
        raise ModelFolderError(f"MHR rig {path} {problem}")
    problem = inspect_torchscript(path).problem  # before torch.jit.load, which runs code
    if problem:
        raise ModelFolderError(f"MHR rig {path} {problem}")
    try:
        rig = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # noqa: BLE001 - TorchScript raises several types for bad files
        first = first_line(exc)
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
        first = first_line(exc)
        raise ModelFolderError(f"the MHR rig does not accept (shape, model_params, expr): {first}") from None
    if not isinstance(verts, torch.Tensor) or not isinstance(skeleton, torch.Tensor):
        raise ModelFolderError("the MHR rig does not return (vertices, skeleton) tensors")
    if tuple(verts.shape) != (1, num_vertices, 3) or tuple(skeleton.shape) != (1, NUM_JOINTS, 8):
        raise ModelFolderError(
            f"the MHR rig returns vertices {tuple(verts.shape)} and skeleton {tuple(skeleton.shape)}; "
            f"the checkpoint expects (1, {num_vertices}, 3) and (1, {NUM_JOINTS}, 8): rig and checkpoint do not match"
        )
    if not (torch.isfinite(verts).all() and torch.isfinite(skeleton).all()):
        raise ModelFolderError("the MHR rig returns NaN or infinite vertices for the rest pose: the rig is broken")
