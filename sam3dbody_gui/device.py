"""Choosing a torch device from the user's words, with a clear message when it is absent."""

from __future__ import annotations

import torch

from .errors import DeviceError


def resolve_device(name: str | None) -> torch.device:
    """'auto' / None → CUDA when present, else CPU; 'cuda' without a GPU → DeviceError."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"CUDA was requested but {build}; use --device cpu (or install a CUDA build of PyTorch)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{name} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return dev
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise DeviceError(f"unknown precision {name!r}: use fp32, fp16 or bf16") from None
