"""Building a model on the meta device (shapes only, no memory) before its weights are loaded.

Random initialisation has nothing to fill there, but it still runs, and on the meta device
`normal_` and friends run through torch's Python references, whose first call imports
torch._dynamo: 0.9-1.2 s of every start on a 2-core machine, before any weight was read. Inside
`meta_model_building()` torch.nn.init's initialisers return a meta tensor untouched (the values
come from the checkpoint, whose keys are checked against the model's); any other tensor (another
thread's module) is initialised as always.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator
from unittest import mock

import torch
from torch import nn

# Every initialiser torch.nn's layers call (directly or through the others).
_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                 "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                 "sparse_")


_patching = threading.Lock()  # one patch of nn.init at a time: nested ones would restore out of order


def _skipping_meta(initialiser: Callable) -> Callable:
    def initialise(tensor: torch.Tensor, *args, **kwargs):
        return tensor if tensor.is_meta else initialiser(tensor, *args, **kwargs)

    return initialise


@contextmanager
def meta_model_building() -> Iterator[None]:
    """Modules made inside get meta tensors and skip their random initialisation."""
    with _patching, ExitStack() as stack:
        for name in _INITIALISERS:
            if hasattr(nn.init, name):
                stack.enter_context(mock.patch.object(nn.init, name, _skipping_meta(getattr(nn.init, name))))
        stack.enter_context(torch.device("meta"))
        yield
