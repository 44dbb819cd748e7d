"""Which backbone backends, precisions and devices the Settings dialog offers, and loading a
pipeline from the settings (on the worker thread).

The runtime (runtime/backbones/plan.py) decides what `auto` means and opens the backend; this module
only says, before anything is loaded, which explicit choices can work here and why not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Optional

from ..errors import UserError
from ..runtime.choices import BACKENDS as RUNTIME_BACKENDS
from ..runtime.choices import PRECISIONS as RUNTIME_PRECISIONS
from .state import BackendChoice, DeviceChoice, Settings

BACKEND_LABELS = {
    "auto": "Auto (fastest available here)",
    "tensorrt": "TensorRT engine (CUDA; built once, cached)",
    "pt2": "torch.export program (.pt2)",
    "pytorch": "PyTorch (eager)",
    "compiled": "PyTorch compiled (torch.compile: backbone, decoder, crop; compiled once, cached)",
}
PRECISION_LABELS = {"auto": "Auto (fp8 compiled / bf16 on CUDA; by the CPU's units on a CPU)", "fp32": "fp32 (exact)",
                    "bf16": "bf16", "fp16": "fp16", "fp8": "fp8 (Ada/Hopper GPUs; calibrated, linear layers)",
                    "int8": "int8 (CPU; linear layers, quantised per token)"}
BACKENDS = tuple((k, BACKEND_LABELS.get(k, k)) for k in RUNTIME_BACKENDS)
PRECISIONS = tuple((k, PRECISION_LABELS.get(k, k)) for k in RUNTIME_PRECISIONS)
MODES = (("body", "Body (fast)"), ("full", "Full (body + hand refinement)"))
MODE_NOTE = ("Full mode refines both hands, as upstream does by default: two hand crops through the backbone, "
             "the hand decoder, then the body decoder again (about three times the work). While you drag the "
             "box, body mode runs; full mode runs when you let go.")


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken torch install means "no CUDA"
        return False


def tensorrt_installed() -> bool:
    """Whether a `tensorrt` package is there to try (the runtime checks, at load time, that it
    imports and is a supported version)."""
    return importlib.util.find_spec("tensorrt") is not None


def fp8_unavailable_reason() -> str:
    """Why fp8 cannot run here ("" when it can): it needs an NVIDIA GPU with FP8 tensor cores."""
    if not cuda_available():
        return "fp8 needs an NVIDIA GPU with FP8 tensor cores (Ada or Hopper)"
    from ..runtime.backbones.fp8 import fp8_supported
    import torch

    if not fp8_supported(torch.device("cuda")):
        return f"fp8 needs FP8 tensor cores (Ada or Hopper); {torch.cuda.get_device_name(0)} has none"
    return ""


def auto_precision_note(device: str = "auto") -> str:
    """One line: what Auto picks for the backbone on `device` ("auto", "cpu", "cuda") here, and why.
    On the CPU it is runtime/cpu_features.py's plan (torch is imported by then: the device list needs it)."""
    if device != "cpu" and cuda_available():
        return ("Auto on the GPU: bf16, or fp8 for the compiled backbone on GPUs with FP8 tensor cores "
                "(Ada, Hopper).")
    from ..runtime.cpu_features import this_cpu_plan

    plan = this_cpu_plan()
    checked = "; checked against fp32 when the model loads (fp32 if it misses)" if plan.fast else ""
    return f"Auto on this CPU: {plan.reason}{checked}. The decoder stays fp32."


def _model_files(model_dir: Optional[Path]):
    if model_dir is None:
        return None
    from ..model.model_folder import find_model_files

    try:
        return find_model_files(Path(model_dir))
    except UserError:
        return None


def backend_choices(model_dir: Optional[Path] = None) -> list[BackendChoice]:
    """Every backend, with whether it can run here and, if not, why. With no (valid) model
    folder, choices that depend on its files are offered and checked at load time."""
    from ..runtime.backbones.plan import ONNX_CANDIDATES, PT2_CANDIDATES, find_backbone_file

    files = _model_files(model_dir)
    has_cuda = cuda_available()
    out = []
    for key, label in BACKENDS:
        reason = ""
        if key == "tensorrt":
            if not tensorrt_installed():
                reason = "TensorRT is not installed (pip install tensorrt-cu12)"
            elif not has_cuda:
                reason = "TensorRT needs a CUDA GPU"
            elif files is not None and find_backbone_file(files, ONNX_CANDIDATES) is None:
                reason = f"the model folder has no backbone ONNX ({' or '.join(ONNX_CANDIDATES)})"
        elif key == "pt2":
            if files is not None and find_backbone_file(files, PT2_CANDIDATES) is None:
                reason = f"the model folder has no .pt2 backbone ({' or '.join(PT2_CANDIDATES)})"
        out.append(BackendChoice(key, label, not reason, reason))
    return out


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


def resolve_model_dir(settings: Settings) -> Path:
    """The folder to load; for the demo model, make it first (on the worker: ~1 s)."""
    if settings.use_demo_model:
        from ..synthetic.demo import ensure_demo_model

        return ensure_demo_model(progress=lambda m: None)
    if not settings.model_dir:
        raise UserError("no model folder chosen")
    return Path(settings.model_dir).expanduser()


def build_pipeline_for(settings: Settings, model_dir: Path, progress: Callable[..., object]):
    """Load `model_dir` as `settings` ask (worker thread; seconds, or minutes when a TensorRT
    engine is built or the backbone compiled for the first time)."""
    from ..model.model_folder import find_model_files
    from ..pipeline.build import build_pipeline
    from ..pipeline.warm_start import warm_start_wanted

    find_model_files(model_dir)  # a clear "missing model.ckpt" before any slow work
    # Warm: the window answers with the eager path while the compiled one builds (warm_start.py).
    return build_pipeline(model_dir, settings.device, settings.precision, backend=settings.backend,
                          progress=progress, warm_start=warm_start_wanted())
