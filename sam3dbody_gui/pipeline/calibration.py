"""The crops FP8 activation scales are measured on: the calibration images (benchmark_images.py),
preprocessed exactly as a photo is."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..model.config import ModelConfig
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
