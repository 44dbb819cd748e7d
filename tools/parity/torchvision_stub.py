"""A stand-in `torchvision` for running upstream's code where no torchvision build exists.

Upstream's data transforms only use `torchvision.transforms.ToTensor` (HWC uint8 → CHW float in
[0, 1]); this registers a module with exactly that, unless a real torchvision imports.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch


class ToTensor:
    def __call__(self, array):
        return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous().float().div(255.0)


def install_torchvision_stub() -> None:
    try:
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    transforms.ToTensor = ToTensor
    transforms.functional = functional
    package.transforms = transforms
    sys.modules.update({"torchvision": package, "torchvision.transforms": transforms,
                        "torchvision.transforms.functional": functional})
