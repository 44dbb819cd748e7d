"""Which backbone backends and devices the Settings dialog offers, and loading a pipeline.

The pipeline today runs our PyTorch backbone only. `.pt2` and TensorRT backends are being
added in `runtime/`; as soon as `build_pipeline` takes a `backend=` argument they become
selectable here without a UI change (availability is probed, not hard-coded).
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Callable, Optional

from ..errors import DeviceError, UserError
from .state import BackendChoice, DeviceChoice, Settings

BACKENDS = (("auto", "Auto (fastest available)"), ("tensorrt", "TensorRT engine"),
            ("pt2", "torch.export (.pt2)"), ("pytorch", "PyTorch (eager)"))
PRECISIONS = (("fp32", "fp32 (exact)"), ("bf16", "bf16"), ("fp16", "fp16"))
MODES = (("body", "Body"), ("full", "Full (body + hand refinement)"))
FULL_MODE_REASON = "hand refinement (full mode) is not part of this build yet"
PT2_EXPORT = Path("exports") / "backbone.pt2"
ONNX_EXPORT = Path("exports") / "backbone.onnx"


def _pipeline_parameters() -> set[str]:
    from ..pipeline.pipeline import build_pipeline

    return set(inspect.signature(build_pipeline).parameters)


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken torch install means "no CUDA"
        return False


def backend_choices(model_dir: Optional[Path] = None) -> list[BackendChoice]:
    """Every backend, with whether it can run here and, if not, why."""
    takes_backend = "backend" in _pipeline_parameters()
    not_wired = "not wired into this build's pipeline yet (only the PyTorch backbone runs today)"
    choices = [BackendChoice("auto", BACKENDS[0][1], True)]

    if not takes_backend:
        trt = BackendChoice("tensorrt", BACKENDS[1][1], False, not_wired)
    elif importlib.util.find_spec("tensorrt") is None:
        trt = BackendChoice("tensorrt", BACKENDS[1][1], False, "TensorRT is not installed (pip install tensorrt-cu12)")
    elif not cuda_available():
        trt = BackendChoice("tensorrt", BACKENDS[1][1], False, "TensorRT needs a CUDA GPU")
    elif model_dir is not None and not (Path(model_dir) / ONNX_EXPORT).is_file():
        trt = BackendChoice("tensorrt", BACKENDS[1][1], False, f"the model folder has no {ONNX_EXPORT}")
    else:
        trt = BackendChoice("tensorrt", BACKENDS[1][1], True)
    choices.append(trt)

    if not takes_backend:
        pt2 = BackendChoice("pt2", BACKENDS[2][1], False, not_wired)
    elif model_dir is not None and not (Path(model_dir) / PT2_EXPORT).is_file():
        pt2 = BackendChoice("pt2", BACKENDS[2][1], False, f"the model folder has no {PT2_EXPORT}")
    else:
        pt2 = BackendChoice("pt2", BACKENDS[2][1], True)
    choices.append(pt2)

    choices.append(BackendChoice("pytorch", BACKENDS[3][1], True))
    return choices


def device_choices() -> list[DeviceChoice]:
    import torch

    has_cuda = cuda_available()
    if has_cuda:
        cuda_label = f"CUDA ({torch.cuda.get_device_name(0)})"
        reason = ""
    else:
        cuda_label = "CUDA"
        reason = ("this PyTorch build has no CUDA support" if torch.version.cuda is None
                  else "no CUDA GPU is visible")
    auto = "Auto (" + ("CUDA" if has_cuda else "CPU") + ")"
    return [DeviceChoice("auto", auto, True), DeviceChoice("cpu", "CPU", True),
            DeviceChoice("cuda", cuda_label, has_cuda, reason)]


def resolve_backend(requested: str, model_dir: Optional[Path]) -> str:
    """'auto' → the fastest available backend; an unavailable explicit choice → DeviceError."""
    choices = {c.key: c for c in backend_choices(model_dir)}
    if requested == "auto":
        for key in ("tensorrt", "pt2"):
            if choices[key].available and cuda_available():
                return key
        return "pytorch"
    choice = choices.get(requested)
    if choice is None:
        raise DeviceError(f"unknown backend {requested!r}: use auto, tensorrt, pt2 or pytorch")
    if not choice.available:
        raise DeviceError(f"the {choice.label} backend is unavailable: {choice.reason}")
    return requested


def resolve_model_dir(settings: Settings, make_demo: Callable[[], Path] | None = None) -> Path:
    """The folder to load; for the demo model, make it first (on the worker)."""
    if settings.use_demo_model:
        if make_demo is None:
            from ..cli import ensure_demo_model

            return ensure_demo_model(progress=lambda m: None)
        return make_demo()
    if not settings.model_dir:
        raise UserError("no model folder chosen")
    return Path(settings.model_dir).expanduser()


def build_pipeline_for(settings: Settings, model_dir: Path, progress: Callable[[str], None]):
    """Load `model_dir` as `settings` ask (runs on the worker thread; seconds to minutes)."""
    from ..model.model_folder import find_model_files
    from ..pipeline.pipeline import build_pipeline

    if settings.mode != "body":
        raise UserError(FULL_MODE_REASON)
    find_model_files(model_dir)  # a clear "missing model.ckpt" before any slow work
    backend = resolve_backend(settings.backend, model_dir)
    kwargs = {}
    params = _pipeline_parameters()
    if "backend" in params:
        kwargs["backend"] = backend
    if "progress" in params:
        kwargs["progress"] = progress
    progress(f"loading {model_dir.name} ({backend}, {settings.precision}, device {settings.device})")
    return build_pipeline(model_dir, settings.device, settings.precision, **kwargs), backend
