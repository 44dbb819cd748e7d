"""Backbone backend: our own PyTorch DINOv3 module, eager, in the precision it was loaded in."""

from __future__ import annotations

import torch

from .base import BackboneBackend, BackendInfo, describe_device

PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class PyTorchBackbone(BackboneBackend):
    batched = True  # any batch of crops in one call (the other backends are built for batch 1)

    def __init__(self, encoder: torch.nn.Module, precision: str | None = None) -> None:
        self.encoder = encoder.eval()
        weight = encoder.patch_embed.proj.weight  # the input's dtype (FP8 layers sit deeper)
        self.device = weight.device
        self.dtype = weight.dtype
        self.info = BackendInfo("pytorch", precision or PRECISION_NAMES.get(self.dtype, str(self.dtype)),
                                describe_device(self.device))

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        return self.encoder(crop.to(self.dtype))
