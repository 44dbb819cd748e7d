"""Backbone backend: a TensorRT engine built from a backbone ONNX (e.g. the published INT8 QDQ).

NOT RUN BY OUR CI OR ON OUR MACHINES: TensorRT cannot be installed where this project is built
and tested. This file is kept thin and follows the documented TensorRT 10 Python API
(Builder / OnnxParser / IBuilderConfig / IProgressMonitor / Runtime / IExecutionContext with
`set_tensor_address` + `execute_async_v3`). Device buffers are torch CUDA tensors, so the
features reach the decoder with no host round trip and no pycuda.

Build settings are the seed's: FP16 + INT8 flags (INT8 takes effect through the QDQ nodes of
the ONNX), builder optimisation level 3, 4 GiB workspace. The serialized engine is cached on
disk under a key of the ONNX content hash, the GPU (name, compute capability), the TensorRT
version and these settings; any change rebuilds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import DeviceError, ModelFolderError, UserError
from ..export.atomic import write_bytes_atomic
from .base import BackboneBackend, BackendInfo, describe_device

Progress = Callable[[str, float], bool]  # (phase, fraction done) -> keep going?


@dataclass(frozen=True)
class BuildSettings:
    fp16: bool = True
    int8: bool = True
    optimization_level: int = 3
    workspace_bytes: int = 4 << 30


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise DeviceError(
            "TensorRT is not installed: pip install tensorrt-cu12 (CUDA 12 driver needed), "
            "or choose the .pt2 or PyTorch backend"
        ) from None
    return trt


def file_digest(path: Path) -> str:
    """SHA-256 of the ONNX and its external-data files (a changed weight file means a new engine)."""
    digest = hashlib.sha256()
    for part in [path] + sorted(path.parent.glob(path.name + ".data*")):
        digest.update(part.name.encode())
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()


def engine_cache_key(onnx_digest: str, device: torch.device, trt_version: str, settings: BuildSettings) -> str:
    props = torch.cuda.get_device_properties(device)
    blob = json.dumps({
        "onnx": onnx_digest, "gpu": props.name, "cc": [props.major, props.minor],
        "tensorrt": trt_version, "settings": asdict(settings),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def build_engine(trt, onnx_path: Path, settings: BuildSettings, progress: Progress | None) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external data next to the file
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFolderError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if settings.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    config.builder_optimization_level = settings.optimization_level
    if progress is not None:
        config.progress_monitor = _progress_monitor(trt, progress)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError("TensorRT engine build failed or was cancelled (see the log above)")
    return bytes(serialized)


def _progress_monitor(trt, progress: Progress):
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = max(int(num_steps), 1)

        def step_complete(self, phase_name, step):
            return bool(progress(phase_name, (step + 1) / self.steps.get(phase_name, 1)))

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)

    return Monitor()


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8, trt.int32: torch.int32}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    return table[dtype]


class TensorRTBackbone(BackboneBackend):
    def __init__(self, onnx_path: Path, device: torch.device, cache_dir: Path,
                 settings: BuildSettings = BuildSettings(), progress: Progress | None = None) -> None:
        trt = import_tensorrt()
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise DeviceError("the TensorRT backend needs a CUDA GPU")
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelFolderError(f"backbone ONNX not found: {onnx_path}")
        key = engine_cache_key(file_digest(onnx_path), self.device, trt.__version__, settings)
        engine_path = Path(cache_dir) / f"{onnx_path.stem}-{key}.engine"
        if engine_path.is_file():
            blob = engine_path.read_bytes()
        else:
            blob = build_engine(trt, onnx_path, settings, progress)
            engine_path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(engine_path, blob)
        self.engine_path = engine_path
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise ModelFolderError(f"TensorRT could not load the cached engine {engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFolderError(f"the backbone engine has inputs {inputs} and outputs {outputs}; expected one each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        in_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if -1 in in_shape:  # dynamic batch: we always run one crop
            in_shape = (1,) + in_shape[1:]
            self.context.set_input_shape(self.input_name, in_shape)
        self.input_shape = in_shape
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self.output = torch.empty(out_shape, device=self.device,
                                  dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name)))
        precision = "int8+fp16" if settings.int8 else ("fp16" if settings.fp16 else "fp32")
        self.info = BackendInfo("tensorrt", precision, describe_device(self.device))

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        crop = crop.to(self.input_dtype).contiguous()
        self.context.set_tensor_address(self.input_name, crop.data_ptr())
        self.context.set_tensor_address(self.output_name, self.output.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise UserError("TensorRT inference failed")
        return self.output
