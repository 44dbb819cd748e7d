"""Which TensorRT is usable here: a real import, a version check, and the reason when it is not.

`importlib.util.find_spec("tensorrt")` only says a `tensorrt` folder exists. The wheel's
`__init__` can still fail: on Windows it raises FileNotFoundError when a DLL is not on PATH and
loads each with `ctypes.CDLL` (OSError) (python/packaging/bindings_wheel/tensorrt/__init__.py:60
and :91, v10.16 and v11.1); missing or mismatched CUDA libraries fail in `from .tensorrt import *`
(ImportError). And a major version this backend was not written against fails later, mid-build
(TensorRT 11 has no `BuilderFlag.FP16`/`INT8`: python/src/infer/pyCore.cpp:1599-1621 at v11.1,
against :1671/:1673 at v10.16). So `auto` asks `tensorrt_status()`, which imports for real.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import DeviceError

# The majors whose bindings this backend is written and checked against (tests/trt_surface.py:
# 10.16 and 11.1). 10.0 is the floor: IProgressMonitor and always-explicit-batch networks.
SUPPORTED_MAJORS = (10, 11)
INSTALL_HINT = ("pip install tensorrt-cu12 (TensorRT 10.x or 11.x; CUDA 12 driver needed), "
                "or choose the .pt2 or PyTorch backend")


@dataclass(frozen=True)
class TensorRTStatus:
    module: object | None  # the imported `tensorrt` module when usable
    version: str | None
    reason: str  # "TensorRT 10.16.0", or why it cannot be used

    @property
    def usable(self) -> bool:
        return self.module is not None


def tensorrt_major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)\.", version or "")
    return int(match.group(1)) if match else None


def tensorrt_status() -> TensorRTStatus:
    try:
        import tensorrt as trt
    except ModuleNotFoundError as exc:
        if exc.name == "tensorrt":
            return TensorRTStatus(None, None, "TensorRT is not installed")
        return TensorRTStatus(None, None, f"TensorRT is installed but incomplete ({exc})")
    except Exception as exc:  # noqa: BLE001 - the wheel's __init__ raises ImportError, OSError, FileNotFoundError...
        return TensorRTStatus(None, None, f"TensorRT is installed but cannot be loaded ({type(exc).__name__}: {exc})")
    version = getattr(trt, "__version__", None)
    version = str(version) if version is not None else None
    if tensorrt_major(version) not in SUPPORTED_MAJORS:
        return TensorRTStatus(None, version, f"TensorRT {version or '(no version)'} is not supported "
                                             f"(this backend knows {', '.join(f'{m}.x' for m in SUPPORTED_MAJORS)})")
    return TensorRTStatus(trt, version, f"TensorRT {version}")


def import_tensorrt():
    """The `tensorrt` module, or a DeviceError saying why it cannot be used and what to do."""
    status = tensorrt_status()
    if not status.usable:
        raise DeviceError(f"{status.reason}: {INSTALL_HINT}")
    return status.module
