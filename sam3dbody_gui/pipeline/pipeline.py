"""Image + person box (+ optional camera) → MeshResult, with per-stage timings.

    preprocess   crop geometry, 512×512 warp, normalisation, upload to the device
    backbone     the runtime backend (PyTorch / .pt2 / TensorRT) → feature map on the device
    decoder+MHR  our SAM3DBody body pass (6 decoder layers, 6 MHR calls)

Stage times are wall-clock with a device synchronisation at each boundary, so on a GPU they
are the real per-stage latencies a user waits for, not just the time to queue kernels.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from ..model.crop_camera import CropCamera
from ..model.model_folder import LoadedModel
from ..runtime.base import BackboneBackend
from .preprocess import crop_geometry, default_intrinsics, normalize_crop, warp_crop
from .result import MeshResult

PARAM_KEYS = ("global_rot", "body_pose", "shape", "scale", "hand", "face", "mhr_model_params", "pred_pose_raw", "pred_cam")


class Pipeline:
    def __init__(self, loaded: LoadedModel, backbone: BackboneBackend) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.config = loaded.config
        self.backbone = backbone
        self.device = loaded.device
        self.faces = self.model.head_pose.faces.cpu().numpy()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def run(
        self,
        image: np.ndarray,
        box_xyxy: Sequence[float] | None = None,
        intrinsics: np.ndarray | None = None,
    ) -> MeshResult:
        """`image`: (H, W, 3) uint8 RGB. `box_xyxy`: None = whole image. `intrinsics`: 3×3 or
        None for upstream's default (focal = image diagonal, centred principal point)."""
        t0 = time.perf_counter()
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        geom = crop_geometry(box_xyxy, image_hw, crop_size=self.config.crop_size)
        k = default_intrinsics(image_hw) if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        crop = normalize_crop(warp_crop(image, geom), self.config.image_mean, self.config.image_std)
        crop = crop.to(self.device, non_blocking=True)
        cam = CropCamera(
            box_center=torch.from_numpy(geom.center)[None],
            box_size=torch.tensor([geom.scale[0]]),
            affine=torch.from_numpy(geom.affine)[None],
            intrinsics=torch.from_numpy(k)[None],
            crop_size=geom.crop_size,
        ).to(self.device)
        self._sync()
        t1 = time.perf_counter()
        features = self.backbone(crop)
        self._sync()
        t2 = time.perf_counter()
        out = self.model.decode_body(features, cam)
        self._sync()
        t3 = time.perf_counter()

        def np0(key: str) -> np.ndarray:
            return out[key][0].detach().float().cpu().numpy()

        result = MeshResult(
            vertices=np0("pred_vertices"),
            faces=self.faces,
            keypoints_2d=np0("pred_keypoints_2d"),
            keypoints_3d=np0("pred_keypoints_3d"),
            joints=np0("pred_joint_coords"),
            cam_t=np0("pred_cam_t"),
            focal_length=float(k[0, 0]),
            intrinsics=k,
            image_hw=image_hw,
            crop=geom,
            params={key: np0(key) for key in PARAM_KEYS},
            features=features[0].detach().float().cpu().numpy(),
            hand_boxes=np0("hand_box"),
            backend=self.backbone.info.label(),
        )
        t4 = time.perf_counter()
        result.timings_ms = {
            "preprocess": (t1 - t0) * 1e3,
            "backbone": (t2 - t1) * 1e3,
            "decoder+MHR": (t3 - t2) * 1e3,
            "total": (t4 - t0) * 1e3,
        }
        return result


def build_pipeline(model_dir, device: str = "auto", backbone_precision: str = "fp32") -> Pipeline:
    """Load a model folder and our PyTorch backbone into a ready pipeline."""
    from ..device import resolve_device, resolve_dtype
    from ..model.model_folder import load_model_folder
    from ..runtime.pytorch_backend import PyTorchBackbone

    dev = resolve_device(device)
    loaded = load_model_folder(model_dir, device=dev, backbone_dtype=resolve_dtype(backbone_precision))
    return Pipeline(loaded, PyTorchBackbone(loaded.model.backbone.encoder))
