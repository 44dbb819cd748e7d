"""Choosing and opening a backbone backend.

auto: TensorRT when a supported version imports, a CUDA GPU exists and a backbone ONNX is known; otherwise
on CUDA the fastest PyTorch path already in the cache (the compiled backbone if compiled before
— fp8 on GPUs with FP8, else bf16 — otherwise eager bf16); on the CPU the precision its units
run fastest (runtime/cpu_features.py: int8, bf16 or fp32), compiled if compiled before, else
eager, checked against fp32 when it opens (cpu_check.py) with fp32 as the fallback. The CPU's
compiled backbone is an AOTInductor package (aoti_backend.py); once one is cached and checked,
`auto` opens it directly, even on a warm start (it loads in a second).
The user can name any backend and precision instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from ...app_paths import cache_dir
from ...device import resolve_dtype
from ...errors import DeviceError, ModelFolderError, UserError
from ...model.backbone import DinoV3Backbone
from ...model.config import ModelConfig
from ...model.model_folder import ONNX_CANDIDATES, PT2_CANDIDATES, ModelFiles, find_backbone_file  # noqa: F401
from .base import BackboneBackend
from ..choices import BACKENDS, PRECISIONS
from .fp8 import calibrate_fp8_, fp8_supported, quantize_backbone_fp8
from .cpu_check import MeshCheck, PendingCheck, open_checked, open_unchecked, read_verdict, verdict_path
from .int8_cpu import quantize_backbone_int8
from .int8_weights_cache import int8_weights_path
from .aoti_backend import AotiBackbone, aoti_package_path, aoti_wanted
from .compiled_backend import CompileOptions, CompiledBackbone, compile_cache_path
from .pt2_backend import ExportedProgramBackbone
from .pt2_fast import StepVerdicts
from .pytorch_backend import PyTorchBackbone
from .tensorrt_import import tensorrt_status

# Where backbone exports are looked for, relative to the model folder, in order.

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BackendRequest:
    kind: str = "auto"
    precision: str = "auto"  # for the PyTorch backends
    backbone_file: Path | None = None  # ONNX for TensorRT, .pt2 for the exported program
    cache_dir: Path | None = None  # engines and compiled packages
    max_autotune: bool = False  # measured: CUDA graphs alone beat max-autotune on the H100


@dataclass(frozen=True)
class BackendPlan:
    kind: str
    precision: str
    backbone_file: Path | None
    reason: str
    compile_needed: bool = False  # "compiled" with nothing in the cache yet
    checked: bool = False  # a CPU fast path `auto` chose: checked against fp32 at open, fp32 if it misses
    opens_quickly: bool = False  # "compiled" from a cached AOTInductor package: a second, not a trace

    @property
    def needs_backbone_weights(self) -> bool:
        """Whether our PyTorch backbone must be loaded from model.ckpt for this plan."""
        return self.kind in ("pytorch", "compiled")

    @property
    def backbone_on_host(self) -> bool:
        """Whether our backbone is loaded on the host and moved to the device as it is prepared:
        fp8, quantised layer by layer on the way (quantize_backbone_fp8), so the device never
        holds it in bf16."""
        return self.precision == "fp8" and self.needs_backbone_weights

    @property
    def load_dtype(self) -> torch.dtype:
        """The dtype to load our backbone in: the one it runs in, so the GPU never holds a 3 GiB
        fp32 copy on the way (fp8 quantises from bf16, as quantize_backbone_fp8 always did). fp32
        where fp32 weights are needed: int8 quantises from them, and a checked plan keeps them
        until its check against fp32 passes."""
        if self.checked:
            return torch.float32
        return {"fp8": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision,
                                                                                        torch.float32)


def tensorrt_available() -> bool:
    """A supported TensorRT imports for real (find_spec would call a broken install available)."""
    return tensorrt_status().usable


def default_cache_dir() -> Path:
    return cache_dir("compiled")


def _precision(req: BackendRequest, device: torch.device, compiled: bool = False) -> str:
    """`auto`: on CUDA bf16, or for the compiled backbone on a GPU with FP8 (Ada, Hopper) fp8, the
    fastest measured there (H100: 4.8 vs 5.5 ms, mesh within 3 mm mean); on the CPU what its units
    run fastest (cpu_features.py: int8, bf16 or fp32)."""
    if req.precision != "auto":
        return req.precision
    if device.type != "cuda":
        from ..cpu_features import this_cpu_plan

        return this_cpu_plan().backbone
    return "fp8" if compiled and fp8_supported(device) else "bf16"


def plan_backend(req: BackendRequest, files: ModelFiles, device: torch.device, arch: str, crop_size: int) -> BackendPlan:
    if req.kind not in BACKENDS:
        raise UserError(f"unknown backend {req.kind!r}: choose from {', '.join(BACKENDS)}")
    if req.precision not in PRECISIONS:
        raise UserError(f"unknown precision {req.precision!r}: choose from {', '.join(PRECISIONS)}")
    precision = _precision(req, device, compiled=req.kind == "compiled")
    if req.kind == "tensorrt":
        onnx = req.backbone_file or find_backbone_file(files, ONNX_CANDIDATES)
        if onnx is None:
            raise ModelFolderError(f"no backbone ONNX for TensorRT in {files.folder}; give its path (--backbone-file)")
        return BackendPlan("tensorrt", "as built", onnx, "chosen")  # the engine's label says what was built
    if req.kind == "pt2":
        pt2 = req.backbone_file or find_backbone_file(files, PT2_CANDIDATES)
        if pt2 is None:
            raise ModelFolderError(f"no .pt2 backbone in {files.folder}; give its path (--backbone-file)")
        return BackendPlan("pt2", "as exported", pt2, "chosen")
    cpu_auto = device.type == "cpu" and req.precision == "auto" and precision != "fp32"  # checked at open
    if req.kind == "compiled":
        package = _aoti_package_cached(req, device, arch, precision, crop_size)
        cached = package or _compile_cache(req, device, arch, precision, crop_size).is_file()
        return BackendPlan("compiled", precision, None, "chosen", compile_needed=not cached, checked=cpu_auto,
                           opens_quickly=_opens_quickly(req, files, package, precision, arch, crop_size, cpu_auto))
    if req.kind == "pytorch":
        return BackendPlan("pytorch", precision, None, "chosen", checked=cpu_auto)
    # auto
    if device.type == "cuda":
        onnx = find_backbone_file(files, ONNX_CANDIDATES)
        trt_note = ""
        if onnx is not None:
            trt = tensorrt_status()
            if trt.usable:
                return BackendPlan("tensorrt", "as built", onnx, f"auto: {trt.reason} and a backbone ONNX found")
            trt_note = f" ({trt.reason})"
        compiled_precision = _precision(req, device, compiled=True)
        if _compile_cache(req, device, arch, compiled_precision, crop_size).is_file():
            return BackendPlan("compiled", compiled_precision, None, f"auto: a compiled backbone is cached{trt_note}")
        return BackendPlan("pytorch", precision, None,
                           f"auto: CUDA without TensorRT or a cached compiled backbone{trt_note}")
    from ..cpu_features import this_cpu_plan

    cpu = this_cpu_plan()
    if cpu_auto and _opens_quickly(req, files, _aoti_package_cached(req, device, arch, precision, crop_size),
                                   precision, arch, crop_size, checked=True):
        return BackendPlan("compiled", precision, None, f"auto: {cpu.reason}; a compiled backbone is cached "
                           "(AOTInductor: it opens in a second)", checked=True, opens_quickly=True)
    if cpu_auto and _compile_cache(req, device, arch, precision, crop_size).is_file():
        return BackendPlan("compiled", precision, None, f"auto: {cpu.reason}; a compiled backbone is cached",
                           checked=True)
    why = f"auto: no CUDA GPU; {cpu.reason}" if req.precision == "auto" else "auto: no CUDA GPU"
    return BackendPlan("pytorch", precision, None, why, checked=cpu_auto)


def warm_start_plans(plan: BackendPlan, req: BackendRequest, device: torch.device,
                     background: bool = True) -> tuple[BackendPlan, BackendPlan | None]:
    """(what to open now, the compiled plan to build in the background, or None) for a warm
    start (pipeline/warm_start.py). A compiled plan, named or one `auto` would take, opens eager
    first in its own precision (fp8 eager on an FP8 GPU, the checked int8 on a CPU), on the same
    weights the compile then uses. With a warm start `auto` aims for the compiled path even when
    nothing is cached: the compile no longer delays the first mesh. Eager named, TensorRT, .pt2,
    and a CPU without a fast precision open as they are. `background` False (`infer`: one photo):
    the eager plan alone is used, and its reason says so."""
    target = None
    if plan.kind == "compiled" and plan.opens_quickly:
        return plan, None  # the compiled backbone itself answers first: loading it takes a second
    if plan.kind == "compiled":
        target = plan
    elif req.kind == "auto" and plan.kind == "pytorch" and (device.type == "cuda" or plan.checked):
        precision = _precision(req, device, compiled=True)
        target = BackendPlan("compiled", precision, None, f"{plan.reason}; compiled in the background",
                             compile_needed=True, checked=plan.checked)
    if target is None:
        return plan, None
    why = (f"{target.reason}; eager until the compiled one is ready" if background else
           f"{plan.reason}; eager: one photo would only wait for a compile")
    eager = BackendPlan("pytorch", target.precision, None, why, checked=target.checked)
    return eager, target


def _compile_cache(req: BackendRequest, device: torch.device, arch: str, precision: str, crop_size: int) -> Path:
    return compile_cache_path(req.cache_dir or default_cache_dir(), arch, precision, device, crop_size,
                              CompileOptions(req.max_autotune))


def _uses_aoti(req: BackendRequest, device: torch.device) -> bool:
    """The CPU's default compile is an AOTInductor package (aoti_backend.py); tuned compiles and
    the GPU (CUDA graphs, batch buckets) use torch.compile."""
    return device.type == "cpu" and not req.max_autotune and aoti_wanted()


def _aoti_package_cached(req: BackendRequest, device: torch.device, arch: str, precision: str, crop_size: int) -> bool:
    return _uses_aoti(req, device) and aoti_package_path(req.cache_dir or default_cache_dir(), arch, precision,
                                                         crop_size).is_file()


def _opens_quickly(req: BackendRequest, files: ModelFiles, package_cached: bool, precision: str, arch: str,
                   crop_size: int, checked: bool) -> bool:
    """A cached package to open at once; for a checked plan also its verdict against fp32 (else
    opening it would first cost the fp32 reference pass: a warm start answers on eager meanwhile,
    and writes that verdict when it swaps the package in, build.py)."""
    return package_cached and (not checked or
                               cpu_verdict_file(req, files, "compiled", precision, arch, crop_size).is_file())


def open_compiled(encoder: torch.nn.Module, dtype: torch.dtype, device: torch.device, crop_size: int,
                  req: BackendRequest, arch: str, precision: str, progress: Progress) -> BackboneBackend:
    """The compiled backbone of a prepared `encoder`: on the CPU the AOTInductor package (made
    once, loaded in a second on later starts), with torch.compile as the fallback if exporting or
    building it fails; elsewhere torch.compile (+ CUDA graphs)."""
    if _uses_aoti(req, device):
        package = aoti_package_path(req.cache_dir or default_cache_dir(), arch, precision, crop_size)
        try:
            return AotiBackbone(encoder, dtype, crop_size, package, precision, progress)
        except Exception as exc:  # noqa: BLE001 - torch.compile is the same code, traced at each start
            progress(f"AOTInductor package unavailable ({type(exc).__name__}: {str(exc)[:200]}); "
                     "compiling with torch.compile")
    return CompiledBackbone(encoder, dtype, device, crop_size, _compile_cache(req, device, arch, precision, crop_size),
                            CompileOptions(req.max_autotune), progress, precision=precision)


# Crops to measure FP8 activation scales on, made by the caller (the pipeline knows photos and
# preprocessing; this layer does not).
CalibrationCrops = Callable[[], Iterable[torch.Tensor]]


def prepare_encoder(encoder: DinoV3Backbone, precision: str, device: torch.device,
                    calibration: CalibrationCrops | None = None) -> tuple[torch.nn.Module, torch.dtype]:
    """Our backbone in the requested precision, and the dtype its input must have. On CUDA the
    patch embedding becomes one matrix product (patch_embed.py: cuDNN's bf16 convolution there
    was 4 % of a batch of 16), once checked against the convolution."""
    if precision == "fp8":
        if not fp8_supported(device):
            raise DeviceError("fp8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper)")
        if calibration is None:
            raise ValueError("an fp8 backbone needs calibration crops")
        # Loaded on the host (BackendPlan.backbone_on_host): onto the device layer by layer, quantised.
        encoder = quantize_backbone_fp8(encoder, device)
    if device.type == "cuda":
        from .patch_embed import use_gemm_patch_embed_

        use_gemm_patch_embed_(encoder)
    if precision == "fp8":  # calibrated on the device, the patch embedding as it will run
        with torch.inference_mode():
            calibrate_fp8_(encoder, calibration())
        return encoder, torch.bfloat16
    if precision == "int8":
        if device.type != "cpu":
            raise DeviceError("int8 is the CPU's fast path (dynamic quantisation, oneDNN); on a GPU use bf16 or fp8")
        quantize_backbone_int8(encoder)
        return encoder, torch.float32
    dtype = resolve_dtype(precision)
    return encoder.to(dtype), dtype


def open_backend(plan: BackendPlan, req: BackendRequest, files: ModelFiles, device: torch.device,
                 config: ModelConfig, encoder: DinoV3Backbone | None, progress: Progress = lambda m: None,
                 calibration: CalibrationCrops | None = None, check: MeshCheck | None = None) -> BackboneBackend:
    """Open what `plan` describes. `encoder` is our loaded backbone when the plan needs one.
    `check`: what a `checked` plan (a CPU fast path auto chose) is checked on against fp32."""
    return open_backend_check_later(plan, req, files, device, config, encoder, progress, calibration, check,
                                    later=False)[0]


def open_backend_check_later(plan: BackendPlan, req: BackendRequest, files: ModelFiles, device: torch.device,
                             config: ModelConfig, encoder: DinoV3Backbone | None, progress: Progress = lambda m: None,
                             calibration: CalibrationCrops | None = None, check: MeshCheck | None = None,
                             later: bool = True) -> tuple[BackboneBackend, PendingCheck | None]:
    """`open_backend`, except that with `later` a checked CPU plan with no verdict kept yet opens
    its fast path at once and hands back the check to run (a warm start runs it in the
    background: build.py); otherwise the PendingCheck is None."""
    arch, crop_size = config.backbone_type, config.crop_size
    if plan.kind == "tensorrt":
        from .tensorrt_backend import TensorRTBackbone

        def trt_progress(phase: str, fraction: float) -> bool:
            keep_going = progress(f"building TensorRT engine: {phase} {fraction:.0%}")
            return keep_going is not False  # a callback may return False to cancel the build

        if device.type != "cuda":
            raise DeviceError("the TensorRT backend needs a CUDA GPU")
        return TensorRTBackbone(plan.backbone_file, device, req.cache_dir or default_cache_dir(),
                                progress=trt_progress), None
    if plan.kind == "pt2":
        return ExportedProgramBackbone(plan.backbone_file, device, speed=pt2_speed(device), progress=progress,
                                       mesh_check=check, verdicts=pt2_verdicts(req, plan.backbone_file, device,
                                                                               crop_size)), None
    if encoder is None:
        raise RuntimeError(f"the {plan.kind} backend needs the backbone weights loaded")
    if plan.checked and check is not None and device.type == "cpu":
        return _open_checked_cpu(plan, req, files, config, encoder, check, progress, later)
    if plan.precision == "fp8":
        progress("calibrating FP8 activation scales")
    prepared, dtype = prepare_encoder(encoder, plan.precision, device, calibration)
    if plan.kind == "compiled":
        return open_compiled(prepared, dtype, device, crop_size, req, arch, plan.precision, progress), None
    return PyTorchBackbone(prepared, precision=plan.precision), None


def pt2_speed(device: torch.device) -> str:
    """How a `.pt2` backbone runs (pt2_fast.py). On the CPU its INT8 QDQ linears lowered onto int8
    GEMMs, checked against the program by the mesh: the full-size synthetic INT8 program took
    2.8 s a pass instead of 11.7 s as exported (2 cores), mesh within 0.29 / 0.59 mm of the
    program's. Elsewhere as exported, until the GPU's figures are in (tools/gpu/pt2_speed.py)."""
    return "lowered" if device.type == "cpu" else "as-is"


def pt2_verdicts(req: BackendRequest, program: Path, device: torch.device, crop_size: int) -> StepVerdicts:
    """Where a `.pt2`'s speed-up verdicts are kept: per program file (path, size, time), device,
    CPU (its int8 kernels), crop and torch."""
    from ..compile_cache import cache_path, file_identity
    from ..cpu_features import detect

    return StepVerdicts(cache_path(req.cache_dir or default_cache_dir(), "pt2-check", device,
                                   program=file_identity(program),
                                   cpu=detect().describe(), crop=crop_size).with_suffix(".json"))


def cpu_verdict_file(req: BackendRequest, files: ModelFiles, kind: str, precision: str, arch: str,
                     crop_size: int) -> Path:
    """Where the verdict of a CPU fast path against fp32 is kept (cpu_check.py)."""
    from ..cpu_features import detect

    return verdict_path(req.cache_dir or default_cache_dir(), files.checkpoint, kind, precision, arch, crop_size,
                        detect().describe())


def int8_weights_file(plan: BackendPlan, req: BackendRequest, files: ModelFiles, device: torch.device,
                      arch: str, crop_size: int) -> Path | None:
    """Where this plan's int8 backbone weights are kept between starts (int8_weights_cache.py),
    or None where the plan has none to keep: not int8 on the CPU, or a check against fp32 still to
    run (its reference is the fp32 model). The file may not exist yet."""
    if plan.precision != "int8" or device.type != "cpu" or not plan.needs_backbone_weights:
        return None
    if plan.checked:
        verdict = read_verdict(cpu_verdict_file(req, files, plan.kind, plan.precision, arch, crop_size))
        if verdict is None or not verdict.ok:
            return None
    return int8_weights_path(req.cache_dir or default_cache_dir(), files.checkpoint, arch)


def _open_checked_cpu(plan: BackendPlan, req: BackendRequest, files: ModelFiles, config: ModelConfig,
                      encoder: DinoV3Backbone, check: MeshCheck, progress: Progress,
                      later: bool) -> tuple[BackboneBackend, PendingCheck | None]:
    device, arch, crop_size = torch.device("cpu"), config.backbone_type, config.crop_size

    def open_fast(fast: torch.nn.Module, dtype: torch.dtype) -> BackboneBackend:
        if plan.kind == "compiled":
            return open_compiled(fast, dtype, device, crop_size, req, arch, plan.precision, progress)
        return PyTorchBackbone(fast, precision=plan.precision)

    verdict_file = cpu_verdict_file(req, files, plan.kind, plan.precision, arch, crop_size)
    if later and check.fp32_reference is not None and read_verdict(verdict_file) is None:
        return open_unchecked(encoder, plan.precision, open_fast, check, verdict_file, progress)
    backend, verdict = open_checked(encoder, plan.precision, open_fast, check, verdict_file, progress)
    if verdict.ok:
        progress(f"{plan.precision} CPU backbone: {verdict.describe()}")
    return backend, None
