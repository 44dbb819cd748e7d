"""Image + person box (+ optional camera) → MeshResult, with per-stage timings.

    preprocess   crop geometry, 512×512 warp, normalisation (on the GPU when there is one)
    backbone     the runtime backend (PyTorch / compiled / .pt2 / TensorRT) → features on the device
    decoder+MHR  our SAM3DBody body pass (6 decoder layers, 6 MHR calls), a CUDA graph on GPUs

Stage times are wall-clock with a device synchronisation at each boundary, so on a GPU they
are the real per-stage latencies a user waits for, not just the time to queue kernels.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..model.crop_camera import CropCamera
from ..model.model_folder import LoadedModel
from ..runtime.base import BackboneBackend
from .preprocess import crop_geometry, default_intrinsics, normalize_crop, warp_crop, warp_crop_tensor
from .result import MeshResult

PARAM_KEYS = ("global_rot", "body_pose", "shape", "scale", "hand", "face", "mhr_model_params", "pred_pose_raw", "pred_cam")
HOST_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_keypoints_3d", "pred_joint_coords", "pred_cam_t",
             "hand_box") + PARAM_KEYS
BodyDecoder = Callable[[torch.Tensor, CropCamera], dict]


class Pipeline:
    def __init__(self, loaded: LoadedModel, backbone: BackboneBackend, decoder: BodyDecoder | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.config = loaded.config
        self.backbone = backbone
        self.decoder: BodyDecoder = decoder or self.model.decode_body
        self.device = loaded.device
        self.faces = self.model.head_pose.faces.cpu().numpy()
        self._image_ref: weakref.ref | None = None  # the photo last uploaded to the GPU
        self._image_on_device: torch.Tensor | None = None
        self._pinned: torch.Tensor | None = None  # host staging buffer for results

    @property
    def decoder_label(self) -> str:
        return "CUDA graph" if self.decoder != self.model.decode_body else "eager"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _crop(self, image: np.ndarray, geom) -> torch.Tensor:
        if self.device.type != "cuda":
            return warp_crop(image, geom).to(self.device)
        # Upload each photo once: dragging the box re-crops the copy already on the GPU. The same
        # array object (alive, hence not a new photo at a recycled address) means the same photo.
        if self._image_ref is None or self._image_ref() is not image:
            self._image_on_device = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            self._image_ref = weakref.ref(image)
        return warp_crop_tensor(self._image_on_device, geom)

    def _to_host(self, tensors: list[torch.Tensor]) -> list[np.ndarray]:
        """All results in one device→host copy (into a reused pinned buffer on CUDA): one copy
        instead of ~20 small synchronous ones. The arrays are fresh (the decoder's CUDA-graph
        buffers are overwritten by the next run)."""
        flat = torch.cat([t.detach().float().reshape(-1) for t in tensors])
        if flat.device.type == "cuda":
            if self._pinned is None or self._pinned.numel() < flat.numel():
                self._pinned = torch.empty(flat.numel(), dtype=torch.float32, pin_memory=True)
            staging = self._pinned[: flat.numel()]
            staging.copy_(flat, non_blocking=True)
            torch.cuda.current_stream(flat.device).synchronize()
            flat = staging
        values = flat.numpy().copy()
        arrays, start = [], 0
        for t in tensors:
            arrays.append(values[start : start + t.numel()].reshape(tuple(t.shape)))
            start += t.numel()
        return arrays

    def forget_image(self) -> None:
        self._image_ref = self._image_on_device = None

    @torch.inference_mode()
    def run(
        self,
        image: np.ndarray,
        box_xyxy: Sequence[float] | None = None,
        intrinsics: np.ndarray | None = None,
    ) -> MeshResult:
        """`image`: (H, W, 3) uint8 RGB (treated as read-only). `box_xyxy`: None = whole image.
        `intrinsics`: 3×3 or None for upstream's default (focal = image diagonal, centred)."""
        t0 = time.perf_counter()
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        geom = crop_geometry(box_xyxy, image_hw, crop_size=self.config.crop_size)
        k = default_intrinsics(image_hw) if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        crop = normalize_crop(self._crop(image, geom), self.config.image_mean, self.config.image_std)
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
        out = self.decoder(features, cam)
        host = self._to_host([out[key][0] for key in HOST_KEYS] + [features[0]])
        feature_map = host.pop()
        host = dict(zip(HOST_KEYS, host))
        t3 = time.perf_counter()
        result = MeshResult(
            vertices=host["pred_vertices"],
            faces=self.faces,
            keypoints_2d=host["pred_keypoints_2d"],
            keypoints_3d=host["pred_keypoints_3d"],
            joints=host["pred_joint_coords"],
            cam_t=host["pred_cam_t"],
            focal_length=float(k[0, 0]),
            intrinsics=k,
            image_hw=image_hw,
            crop=geom,
            params={key: host[key] for key in PARAM_KEYS},
            features=feature_map,
            hand_boxes=host["hand_box"],
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


def build_pipeline(model_dir: Path, device: str = "auto", precision: str = "auto", backend: str = "auto",
                   backbone_file: Path | None = None, cuda_graph: bool = True, decoder_precision: str = "fp32",
                   progress: Callable[[str], None] = lambda m: None, cache_dir: Path | None = None) -> Pipeline:
    """Load a model folder and open the backbone backend the request (or `auto`) names."""
    from ..device import resolve_device
    from ..model.backbone import backbone_arch
    from ..model.config import load_model_config
    from ..model.model_folder import find_model_files, load_model_folder
    from ..runtime.select import BackendRequest, open_backend, plan_backend

    dev = resolve_device(device)
    files = find_model_files(model_dir)
    config = load_model_config(files.config)
    backbone_arch(config.backbone_type)  # an unknown architecture fails here, before loading anything
    request = BackendRequest(kind=backend, precision=precision, backbone_file=backbone_file, cache_dir=cache_dir)
    plan = plan_backend(request, files, dev, config.backbone_type, config.crop_size)
    progress(f"loading the model ({plan.kind} backbone: {plan.reason})")
    from ..device import resolve_dtype

    loaded = load_model_folder(model_dir, device=dev, with_backbone=plan.needs_backbone_weights,
                               decoder_dtype=resolve_dtype(decoder_precision))
    encoder = loaded.model.backbone.encoder if plan.needs_backbone_weights else None
    backbone = open_backend(plan, request, files, dev, config.backbone_type, config.crop_size, encoder, progress)
    decoder = None
    if cuda_graph and dev.type == "cuda":
        from ..runtime.decoder_graph import graph_body_decoder

        progress("capturing the decoder as a CUDA graph")
        decoder = graph_body_decoder(loaded.model, config.crop_size, dev)
    return Pipeline(loaded, backbone, decoder)
