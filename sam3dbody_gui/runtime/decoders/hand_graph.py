"""Full mode's hand-decoder pass (both hands, 6 layers, 6 MHR calls) as one CUDA graph.

Same idea as decoder_graph.py for the body pass: `decode_hands` has static shapes (two crops per
person), no host syncs and no host-made tensors, so it is captured once and replayed. The capture
happens on the first full-mode run (body-only users never pay for it) and is checked: a replay on
inputs other than the capture's must match an eager pass on them, else the eager pass is used from
then on (and `status` says why), so a capture problem costs speed, never correctness.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...model.crop_camera import CropCamera
from ...model import full_mode
from ...model.sam3d_body import SAM3DBody
from ..cuda_graph import capture
from .decoder_graph import GraphedDecoderPass, check_agreement
CHECK_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "hand", "scale", "wrist_rotation")
CHECK_RTOL = 1e-3  # replay vs eager on the same inputs: the same kernels, so far tighter in practice


def _hand_cameras(n: int, crop_size: int, device: torch.device) -> CropCamera:
    """Plausible hand-crop cameras (values only shape the warm-up run)."""
    focal = crop_size * 2.8
    return CropCamera(
        box_center=torch.tensor([[crop_size * 0.4, crop_size * 0.55]] * n, device=device),
        box_size=torch.tensor([crop_size * 0.3] * n, device=device),
        affine=torch.tensor([[[3.3, 0.0, -420.0], [0.0, 3.3, -660.0]]] * n, device=device),
        intrinsics=torch.tensor([[[focal, 0, crop_size / 2], [0, focal, crop_size / 2], [0, 0, 1]]] * n, device=device),
        crop_size=crop_size,
    )


class GraphedHandDecoder(GraphedDecoderPass):
    """`decode_hands(model, features, cams)` for `persons` persons (2 × persons crops)."""

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, persons: int = 1) -> None:
        if device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        side = crop_size // model.patch_size
        n = 2 * persons
        self.features = torch.randn(n, model.feature_dim, side, side, device=device, dtype=model.decoder_dtype,
                                    generator=torch.Generator(device).manual_seed(0))
        self.camera = _hand_cameras(n, crop_size, device)
        self.graph, self.outputs = capture(lambda: full_mode.decode_hands(model, self.features, self.camera), device)
        # Check the graph on other inputs than it was captured with (an input baked into the graph
        # would show): features and cameras changed, replay vs eager.
        with torch.inference_mode():
            features = torch.roll(self.features, shifts=1, dims=0) * 0.5
            cams = _hand_cameras(n, crop_size, device)
            cams.box_center[0, 0] += crop_size * 0.1
            cams.box_size[-1] *= 1.3
            want = full_mode.decode_hands(model, features, cams)
            got = self(features, cams)
            torch.cuda.synchronize(device)
            check_agreement(got, want, CHECK_KEYS, CHECK_RTOL, "captured hand decoder")


class LazyHandDecoder:
    """The hand-decoder pass a pipeline runs: captured as a CUDA graph on first use when `graph`
    is set (and the device is CUDA), else eager. Falls back to eager if the capture fails."""

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, graph: bool) -> None:
        self.model = model
        self.crop_size = crop_size
        self.device = device
        self.want_graph = graph and device.type == "cuda"
        self._graphed: GraphedHandDecoder | None = None
        self.status = "CUDA graph (captured on the first full-mode run)" if self.want_graph else "eager"

    def _eager(self, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
        return full_mode.decode_hands(self.model, features, cams)

    def prepare(self) -> bool:
        """Capture now (the window does, while the model loads, so its first full-mode run pays
        nothing); whether the graph is there. Idempotent; eager where no graph is wanted."""
        if self.want_graph and self._graphed is None:
            try:
                self._graphed = GraphedHandDecoder(self.model, self.crop_size, self.device)
                self.status = "CUDA graph"
            except Exception as exc:  # noqa: BLE001 - any capture problem: stay correct, run eager
                self.want_graph = False
                self.status = f"eager (CUDA graph capture failed: {type(exc).__name__}: {exc})"
        return self._graphed is not None

    def __call__(self, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
        if not self.want_graph or features.shape[0] != 2:
            return self._eager(features, cams)
        if not self.prepare():
            return self._eager(features, cams)
        return self._graphed(features, cams)


HandDecoder = Callable[[torch.Tensor, CropCamera], dict]
