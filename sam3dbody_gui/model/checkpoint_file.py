"""Reading `model.ckpt` without running code from it.

`torch.load(weights_only=True)` is tried first. A Lightning checkpoint may also pickle training
objects (e.g. the yacs config in `hyper_parameters`), which weights-only loading refuses. Then
the file is read again with an unpickler that builds tensors normally but turns every other
class into an inert placeholder: nothing from the file is imported or called, so a file that
needs more than tensors still loads safely, and we say so.
"""

from __future__ import annotations

import pickle
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFolderError, first_line

# The globals a tensor checkpoint legitimately needs: exactly those torch's own weights-only
# loader allows (tensor/storage rebuilders, dtypes, OrderedDict, ...). Trusting whole modules
# would not do: `torch.*` holds functions that run shell commands (torch.utils.collect_env.run).
_TRUSTED_BUILTINS = {"set", "frozenset", "slice", "complex", "bytearray", "dict", "list", "tuple", "int", "float"}


def _weights_only_globals() -> frozenset[str]:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return frozenset(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - private API; fall back to the tensor essentials
        names = {"collections.OrderedDict", "torch.Size", "torch.device", "torch._utils._rebuild_tensor_v2",
                 "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"}
        return frozenset(names | {str(t) for t in vars(torch).values() if isinstance(t, torch.dtype)})


_TRUSTED_GLOBALS = _weights_only_globals()


class InertObject:
    """Stands in for any pickled object of an untrusted class; keeps its data, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state) -> None:
        self.state = state

    def __call__(self, *args, **kwargs) -> "InertObject":  # used as a "reduce" callable
        return InertObject(*args, **kwargs)

    # dict/list subclasses (e.g. yacs CfgNode) are rebuilt through these.
    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "builtins" and name in _TRUSTED_BUILTINS:
            return super().find_class(module, name)
        if f"{module}.{name}" in _TRUSTED_GLOBALS:
            return super().find_class(module, name)
        return type(name, (InertObject,), {"__module__": "inert." + module})


_inert_pickle = types.SimpleNamespace(Unpickler=_InertUnpickler, load=pickle.load, __name__="inert_pickle")


@dataclass
class CheckpointContents:
    state_dict: dict[str, torch.Tensor]
    needed_inert_loading: bool  # the file held non-tensor Python objects (read as placeholders)


def read_checkpoint(path: Path) -> CheckpointContents:
    from ..errors import describe_os_error
    from .file_checks import file_problem

    path = Path(path)
    problem = file_problem(path)
    if problem == "is missing":
        raise ModelFolderError(f"checkpoint not found: {path}")
    if problem is not None:
        raise ModelFolderError(f"checkpoint {path} {problem}")
    # zipfile.is_zipfile answers False for a file it cannot open, hiding e.g. "permission
    # denied" behind "not a zip archive": open it ourselves first.
    try:
        with open(path, "rb") as fh:
            is_zip = zipfile.is_zipfile(fh)
    except OSError as exc:
        raise ModelFolderError(f"checkpoint {path} cannot be read: {describe_os_error(exc)}") from None
    if not is_zip:
        raise ModelFolderError(f"{path} is not a PyTorch checkpoint (not a zip archive; truncated or corrupt?)")
    inert = False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        inert = True
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, mmap=True, pickle_module=_inert_pickle)
        except Exception as exc:  # noqa: BLE001 - any decode failure is a corrupt file for the user
            raise ModelFolderError(f"{path} could not be read ({type(exc).__name__}: {exc})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{path} is corrupt or truncated ({first_line(exc)})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFolderError(f"{path} holds no state dict of tensors: not a SAM 3D Body checkpoint")
    return CheckpointContents(dict(state), inert)
