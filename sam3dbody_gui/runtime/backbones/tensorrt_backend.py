"""Backbone backend: a TensorRT engine built from a backbone ONNX (e.g. the published INT8 QDQ).

NEVER RUN: TensorRT cannot be installed where this project is built and tested. The code is
checked against the declared Python surface of the bindings of TensorRT 10.16 and 11.1
(tests/trt_surface.py, tests/test_tensorrt_conformance.py): names, arities and call order,
not behaviour.

Steps (each its own module): `tensorrt_import` (is a supported TensorRT importable?),
`tensorrt_cache` (key, digest memo, lock, blob I/O), `tensorrt_build` (recipe per version,
profile, build), `tensorrt_callbacks` (logger, progress monitor); this file opens the engine and
runs it. Device buffers are torch CUDA tensors, so the features reach the decoder with no host
round trip and no pycuda.

Every TensorRT call happens inside the requested device's context (`torch.cuda.device(N)`):
TensorRT uses the thread's current CUDA device, and the window loads on a worker thread. The
engine runs on its own stream, ordered after the caller's stream and before it again
(`wait_stream` both ways) — a dedicated stream as Polygraphy's runner has
(tools/Polygraphy/polygraphy/backend/trt/runner.py:229, v11.1), without its host sync — not
on the legacy default stream, which TensorRT warns about and synchronises around.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from ...errors import DeviceError, ModelFolderError, UserError
from .base import BackboneBackend, BackendInfo, describe_device
from .tensorrt_build import BuildSettings, build_engine, recipe_for
from .tensorrt_cache import discard, engine_cache_key, file_lock, mapped, onnx_digest, read_meta, write_engine
from .tensorrt_callbacks import Progress, failure_message, make_logger
from .tensorrt_import import import_tensorrt

log = logging.getLogger(__name__)

__all__ = ["BuildSettings", "CudaPlacement", "TensorRTBackbone", "import_tensorrt"]


class CudaPlacement:
    """Where TensorRT's work happens: the device context and the streams (torch.cuda).

    The one seam between this backend and CUDA, so tests can run the build and run paths on
    the CPU with a stand-in that records what was asked."""

    def __init__(self, device: torch.device) -> None:
        device = torch.device(device)
        if device.type != "cuda":
            raise DeviceError("the TensorRT backend needs a CUDA GPU")
        if not torch.cuda.is_available():
            raise DeviceError("the TensorRT backend needs a CUDA GPU, and torch sees none")
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", index)

    def activate(self) -> AbstractContextManager:
        return torch.cuda.device(self.device)

    def gpu(self) -> tuple[str, tuple[int, int]]:
        props = torch.cuda.get_device_properties(self.device)
        return props.name, (props.major, props.minor)

    def new_stream(self):
        return torch.cuda.Stream(self.device)

    def current_stream(self):
        return torch.cuda.current_stream(self.device)

    def keep_until_done(self, tensor: torch.Tensor, stream) -> None:
        tensor.record_stream(stream)  # the caching allocator must not reuse it before TensorRT read it

    def describe(self) -> str:
        return describe_device(self.device)


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16,
             trt.int8: torch.int8, trt.int32: torch.int32, trt.int64: torch.int64, trt.bool: torch.bool,
             trt.uint8: torch.uint8}
    if dtype not in table:
        raise ModelFolderError(f"the backbone engine uses tensor type {dtype}, which this backend cannot hold "
                               "in a torch tensor; export the backbone with float inputs and outputs")
    return table[dtype]


class TensorRTBackbone(BackboneBackend):
    def __init__(self, onnx_path: Path, device: torch.device, cache_dir: Path,
                 settings: BuildSettings = BuildSettings(), progress: Progress | None = None,
                 placement: CudaPlacement | None = None) -> None:
        trt = import_tensorrt()
        self.placement = placement if placement is not None else CudaPlacement(device)
        self.device = self.placement.device
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelFolderError(f"backbone ONNX not found: {onnx_path}")
        with self.placement.activate():
            self._open(trt, onnx_path, Path(cache_dir), settings, progress)

    def _open(self, trt, onnx_path: Path, cache_dir: Path, settings: BuildSettings, progress: Progress | None) -> None:
        self.logger = make_logger(trt)
        recipe = recipe_for(trt)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = engine_cache_key(onnx_digest(onnx_path, cache_dir), self.placement.gpu(), trt.__version__,
                               settings, recipe)
        self.engine_path = cache_dir / f"{onnx_path.stem}-{key}.engine"
        self.runtime = trt.Runtime(self.logger)

        def waiting() -> None:
            if progress is not None:
                progress("waiting for another process building this engine", 0.0)

        with file_lock(self.engine_path.with_name(self.engine_path.name + ".lock"), waiting):
            self.engine, precision = self._load_cached()
            self.from_cache = self.engine is not None
            if self.engine is None:
                serialized, precision = build_engine(trt, self.logger, onnx_path, settings, recipe, progress)
                try:
                    write_engine(self.engine_path, serialized, {"precision": precision, "tensorrt": trt.__version__})
                except UserError as exc:  # an unwritable cache costs a rebuild next start, not this one
                    log.warning("could not cache the TensorRT engine: %s", exc)
                self.engine = self.runtime.deserialize_cuda_engine(serialized)
                if self.engine is None:
                    discard(self.engine_path)
                    raise UserError(failure_message("TensorRT built an engine it cannot load",
                                                    self.logger.take_errors()))
        self._bind(trt)
        self.info = BackendInfo("tensorrt", precision, self.placement.describe())

    def _load_cached(self):
        """(engine, precision) from the cache, or (None, None). A damaged entry (engine that will
        not deserialise, missing or stale metadata) is removed, so the caller rebuilds it once."""
        meta = read_meta(self.engine_path)
        if meta is None:
            if self.engine_path.exists():
                log.warning("TensorRT engine cache entry %s is incomplete; rebuilding it", self.engine_path)
                discard(self.engine_path)
            return None, None
        self.logger.take_errors()
        try:
            with mapped(self.engine_path) as blob:
                engine = self.runtime.deserialize_cuda_engine(blob)
        except (OSError, ValueError) as exc:
            engine, errors = None, [str(exc)]
        else:
            errors = self.logger.take_errors()
        if engine is None:
            log.warning("cached TensorRT engine %s does not load (%s); rebuilding it", self.engine_path,
                        "; ".join(errors) or "no error logged")
            discard(self.engine_path)
            return None, None
        return engine, meta["precision"]

    def _bind(self, trt) -> None:
        engine = self.engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise UserError(failure_message("TensorRT could not create an execution context (GPU memory?)",
                                            self.logger.take_errors()))
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFolderError(f"the backbone engine has inputs {inputs} and outputs {outputs}; expected one each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = _torch_dtype(trt, engine.get_tensor_dtype(self.input_name))
        in_shape = tuple(engine.get_tensor_shape(self.input_name))
        if any(d < 0 for d in in_shape):  # dynamic batch: the profile was built min = opt = max
            in_shape = tuple(engine.get_tensor_profile_shape(self.input_name, 0)[1])
            if not self.context.set_input_shape(self.input_name, in_shape):
                raise UserError(failure_message(f"TensorRT refused input shape {list(in_shape)}",
                                                self.logger.take_errors()))
        self.input_shape = in_shape
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        if any(d < 0 for d in out_shape):
            raise ModelFolderError(f"the backbone engine's output shape {list(out_shape)} is not fixed by its input")
        self.output = torch.empty(out_shape, device=self.device,
                                  dtype=_torch_dtype(trt, engine.get_tensor_dtype(self.output_name)))
        self.stream = self.placement.new_stream()

    def check_input(self, crop: torch.Tensor) -> None:
        """TensorRT reads the crop by address: a wrong shape or device would read out of bounds."""
        if tuple(crop.shape) != self.input_shape:
            raise UserError(f"the TensorRT engine takes a crop of shape {list(self.input_shape)}, got "
                            f"{list(crop.shape)}: the engine was built for another crop size")
        if crop.device != self.device:
            raise UserError(f"the TensorRT engine runs on {self.device}, the crop is on {crop.device}")
        if not crop.dtype.is_floating_point:
            raise UserError(f"the TensorRT backbone takes a normalised float crop, got {crop.dtype}")

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        self.check_input(crop)
        with self.placement.activate():
            crop = crop.to(self.input_dtype).contiguous()
            caller = self.placement.current_stream()
            self.stream.wait_stream(caller)  # the crop is written on the caller's stream
            self.placement.keep_until_done(crop, self.stream)
            if not (self.context.set_tensor_address(self.input_name, crop.data_ptr())
                    and self.context.set_tensor_address(self.output_name, self.output.data_ptr())):
                raise UserError(failure_message("TensorRT refused a tensor address", self.logger.take_errors()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise UserError(failure_message("TensorRT inference failed", self.logger.take_errors()))
            caller.wait_stream(self.stream)  # the decoder, on the caller's stream, reads the features
        return self.output
