"""The crops FP8 activation scales are measured on: the calibration images (benchmark_images.py),
preprocessed exactly as a photo is; and what a CPU fast backbone is checked on against fp32."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..model.config import ModelConfig
from ..model.model_folder import LoadedModel
from ..runtime.backbones.cpu_check import MeshCheck, weight_sharing_copy
from .benchmark_images import calibration_images
from .preprocess import crop_geometry, normalize_crop, warp_crop


def calibration_crops(config: ModelConfig, device: torch.device) -> Iterator[torch.Tensor]:
    """The calibration images as normalised backbone crops on `device`."""
    for item in calibration_images():
        geom = crop_geometry(item.box, item.image.shape[:2], crop_size=config.crop_size)
        yield normalize_crop(warp_crop(item.image, geom), config.image_mean, config.image_std).to(device)


def calibration_for(config: ModelConfig, device: torch.device) -> Callable[[], Iterator[torch.Tensor]]:
    """What runtime.backbones.plan.open_backend takes: made lazily, only when a backbone is quantised."""
    return lambda: calibration_crops(config, device)


def mesh_check_for(loaded: LoadedModel) -> MeshCheck:
    """What a CPU fast backbone is checked on against fp32 when it opens (runtime/backbones/cpu_check.py):
    the first calibration crop, the body mesh the model's decoder makes of features (camera
    frame, metres: `MeshResult.vertices_camera`), and the int8 path's decoder part (its
    image-token k/v projections, runtime/decoders/int8_image_kv.py); for a check run later, the
    fp32 model as it is now, on the same tensors."""
    from ..runtime.decoders.decoder_graph import plausible_camera

    config, device = loaded.config, loaded.device

    def crop() -> torch.Tensor:
        return next(iter(calibration_crops(config, device)))

    def mesh_by(model, features: torch.Tensor) -> torch.Tensor:
        out = model.decode_body(features, plausible_camera(config.crop_size, device))
        return (out["pred_vertices"][0] + out["pred_cam_t"][0][None, :]).float()

    def mesh(features: torch.Tensor) -> torch.Tensor:
        return mesh_by(loaded.model, features)

    def fp32_reference():
        model = loaded.model
        twin = weight_sharing_copy(model, share=[m for m in (model.mhr,) if m is not None])
        return lambda crop: mesh_by(twin, twin.backbone.encoder(crop))

    def fast_decoder(precision: str):
        if precision != "int8":
            return None
        from ..runtime.decoders.int8_image_kv import quantize_image_kv_int8, restore_linears

        swaps = quantize_image_kv_int8(loaded.model)
        return lambda: restore_linears(swaps)

    return MeshCheck(crop, mesh, fast_decoder, fp32_reference)
