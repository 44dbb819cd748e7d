"""The body decoder pass (6 layers, 6 MHR calls, thousands of small kernels) as one CUDA graph.

Upstream is launch-bound: one body pass launches ~6,500 kernels holding ~25 ms of GPU work and
syncs with the host hundreds of times. Our decoder has static shapes and no host syncs, so it
can be captured once and replayed: one launch per pass. Inputs are copied into static buffers;
outputs live in the graph's static buffers and are overwritten by the next replay.
"""

from __future__ import annotations

import torch

from ...model.crop_camera import CropCamera
from ...model.sam3d_body import SAM3DBody
from ..cuda_graph import capture

CAMERA_FIELDS = ("box_center", "box_size", "affine", "intrinsics")


def plausible_camera(crop_size: int, device: torch.device) -> CropCamera:
    """A sensible camera for warm-up and capture (values only shape the warm-up run)."""
    return CropCamera(
        box_center=torch.tensor([[crop_size / 2, crop_size / 2]], device=device),
        box_size=torch.tensor([float(crop_size)], device=device),
        affine=torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], device=device),
        intrinsics=torch.tensor([[[crop_size * 1.4, 0, crop_size / 2], [0, crop_size * 1.4, crop_size / 2], [0, 0, 1]]],
                                device=device),
        crop_size=crop_size,
    )


class GraphedDecoderPass:
    """A captured decoder pass fed through static inputs: `features`, `camera` (set by the
    subclass before capture) are refilled on each call, then the graph is replayed."""

    label = "CUDA graph"
    features: torch.Tensor
    camera: CropCamera
    graph: torch.cuda.CUDAGraph
    outputs: dict

    def __call__(self, features: torch.Tensor, camera: CropCamera) -> dict[str, torch.Tensor]:
        self.features.copy_(features)
        for name in CAMERA_FIELDS:
            getattr(self.camera, name).copy_(getattr(camera, name))
        self.graph.replay()
        return self.outputs


class GraphedBodyDecoder(GraphedDecoderPass):
    def __init__(self, model: SAM3DBody, feature_shape: tuple[int, ...], feature_dtype: torch.dtype,
                 crop_size: int, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.model = model
        self.features = torch.randn(feature_shape, device=device, dtype=feature_dtype)
        self.camera = plausible_camera(crop_size, device).rows([0] * feature_shape[0])  # one row per crop
        self.graph, self.outputs = capture(lambda: model.decode_body(self.features, self.camera), device)


def check_agreement(got: dict, want: dict, keys: tuple[str, ...], rtol: float, what: str) -> None:
    """Raise if any of `keys` differs between a captured/compiled pass and the eager one by more
    than `rtol` of the eager values' largest magnitude."""
    for key in keys:
        err = ((got[key].float() - want[key].float()).abs().max()
               / want[key].float().abs().max().clamp(min=1e-12)).item()
        if not err <= rtol:
            raise RuntimeError(f"the {what} differs from the eager one ({key}: rel. {err:.1e})")


def graph_body_decoder(model: SAM3DBody, crop_size: int, device: torch.device) -> GraphedBodyDecoder:
    """Capture `model`'s body pass for crops of `crop_size` on `device`."""
    side = crop_size // model.patch_size
    return GraphedBodyDecoder(model, (1, model.feature_dim, side, side), model.decoder_dtype, crop_size, device)
