"""Backbone backend: our own PyTorch DINOv3 module, eager, in the precision it was loaded in."""

from __future__ import annotations

import torch

from .base import BackboneBackend, BackendInfo, describe_device

PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class PyTorchBackbone(BackboneBackend):
    def __init__(self, encoder: torch.nn.Module) -> None:
        self.encoder = encoder.eval()
        weight = next(encoder.parameters())
        self.device = weight.device
        self.dtype = weight.dtype
        self.info = BackendInfo("pytorch", PRECISION_NAMES.get(self.dtype, str(self.dtype)), describe_device(self.device))

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        return self.encoder(crop.to(self.dtype))
