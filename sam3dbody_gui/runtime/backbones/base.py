"""The one small interface every backbone backend implements.

A backend turns a normalised (1, 3, S, S) crop on its device into the (1, C, S/16, S/16)
feature map, on the same device, so the decoder consumes it with no host round trip.
Backends: PyTorch (our module; eager), torch.export `.pt2`, TensorRT (see runtime/).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BackendInfo:
    name: str  # e.g. "pytorch", "pt2", "tensorrt"
    precision: str  # e.g. "fp32", "bf16", "int8+fp16"
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"

    def label(self) -> str:
        return f"{self.name} {self.precision} on {self.device}"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


class BackboneBackend(ABC):
    info: BackendInfo
    device: torch.device

    @abstractmethod
    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) normalised crop (any float dtype, on `device`) → (1, C, S/16, S/16)."""

    def warm_up(self, crop_size: int, iterations: int = 2) -> None:
        """Run a few dummy crops so lazy initialisation is not billed to the first photo."""
        dummy = torch.zeros(1, 3, crop_size, crop_size, device=self.device)
        with torch.inference_mode():
            for _ in range(iterations):
                self(dummy)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
