"""Building a TensorRT engine from the backbone ONNX: the recipe per TensorRT version, and the build.

The precision recipe depends on the major version (binding sources of NVIDIA/TensorRT, file:line):

- 10.x, weak typing, FP16 + INT8 builder flags (the model card's settings): the builder picks
  each layer's precision among fp32, fp16 and (where the ONNX has Q/DQ nodes) int8.
  `BuilderFlag.FP16`/`INT8` exist there (python/src/infer/pyCore.cpp:1671, :1673 at v10.16;
  deprecated since 10.12 in favour of strong typing).
- 11.x, strongly typed, no precision flags: 11 removed them (the BuilderFlag enum at
  pyCore.cpp:1599-1621, v11.1) and every network is strongly typed (include/NvInfer.h:11464-11471,
  v11.1: kSTRONGLY_TYPED "is always enabled ... retained for API compatibility but is ignored";
  we still pass it, pyCore.cpp:1773, to say what we mean). Each layer then runs in the type its
  tensors have in the ONNX: the Q/DQ pairs in int8, everything outside them in the ONNX's own
  float type — fp32 for a float32 QDQ export, with TF32 tensor-core math allowed for fp32
  convolutions and matmuls because BuilderFlag.TF32 is on by default (NvInfer.h:9973-9976).

So the precision label is read from what was built: the Q/DQ layers and tensor types of the
parsed network and the flags of the config, never assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ...errors import ModelFolderError, UserError
from .tensorrt_callbacks import Progress, failure_message, make_monitor
from .tensorrt_import import tensorrt_major

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    optimization_level: int = 3
    workspace_bytes: int = 4 << 30
    batch: int = 1  # the optimisation profile is min = opt = max at this batch (buckets when batches come)


@dataclass(frozen=True)
class Recipe:
    strongly_typed: bool
    builder_flags: tuple[str, ...]  # BuilderFlag member names


def recipe_for(trt) -> Recipe:
    if tensorrt_major(trt.__version__) == 10:
        return Recipe(strongly_typed=False, builder_flags=("FP16", "INT8"))
    return Recipe(strongly_typed=True, builder_flags=())


# TensorRT DataType module attributes (python/src/infer/pyFoundationalTypes.cpp:194-205) → label names
_QUANTISED = (("int8", "int8"), ("fp8", "fp8"), ("int4", "int4"), ("fp4", "fp4"))
_FLOATS = (("float16", "fp16"), ("bfloat16", "bf16"), ("float32", "fp32"))


def precision_label(trt, network, config, recipe: Recipe) -> str:
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    has_qdq = any(layer.type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE) for layer in layers)
    if not recipe.strongly_typed:
        # weak typing: the flags say what the builder may use; INT8 acts only through Q/DQ nodes
        # (no calibrator here), so without them it is not part of the label
        parts = ["int8"] if has_qdq and config.get_flag(trt.BuilderFlag.INT8) else []
        parts.append("fp16" if config.get_flag(trt.BuilderFlag.FP16) else "fp32")
        return "+".join(parts)
    types = {layer.get_output(i).dtype for layer in layers for i in range(layer.num_outputs)}
    parts = [label for attr, label in _QUANTISED + _FLOATS if getattr(trt, attr) in types]
    return "+".join(parts) or "unknown"


def _fixed_shape(name: str, shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    if any(d < 0 for d in shape[1:]):
        raise ModelFolderError(f"the backbone ONNX input {name!r} has shape {list(shape)}: only the batch "
                               "dimension may be dynamic (export it at the model's crop size)")
    return (batch if shape and shape[0] < 0 else shape[0],) + shape[1:]


def add_profile(builder, network, config, batch: int) -> None:
    """One optimisation profile, min = opt = max; without one a dynamic batch cannot build."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = _fixed_shape(tensor.name, tuple(tensor.shape), batch)
        try:  # the binding raises RuntimeError when a shape is refused (pyCore.cpp:36-44, v10.16 and v11.1)
            profile.set_shape(tensor.name, shape, shape, shape)
        except RuntimeError as exc:
            raise ModelFolderError(f"TensorRT refused input shape {list(shape)} for {tensor.name!r}: {exc}") from None
    if config.add_optimization_profile(profile) < 0:
        raise ModelFolderError("TensorRT refused the optimisation profile for the backbone ONNX input")


def build_engine(trt, logger, onnx_path: Path, settings: BuildSettings, recipe: Recipe,
                 progress: Progress | None = None):
    """Parse and build; returns (the serialized engine as TensorRT's IHostMemory, precision label)."""
    logger.take_errors()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if recipe.strongly_typed else 0
    network = builder.create_network(flags)  # 10.x and 11.x networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves external data next to the file
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] + logger.take_errors()
        raise ModelFolderError(failure_message(f"TensorRT could not parse {onnx_path}", errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    for flag in recipe.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    config.builder_optimization_level = settings.optimization_level
    add_profile(builder, network, config, settings.batch)
    monitor = None
    if progress is not None:
        monitor = make_monitor(trt, progress)
        config.progress_monitor = monitor
    precision = precision_label(trt, network, config, recipe)
    log.info("building a TensorRT %s engine (%s typing, precision %s) from %s", trt.__version__,
             "strong" if recipe.strongly_typed else "weak", precision, onnx_path)
    serialized = builder.build_serialized_network(network, config)
    if monitor is not None:
        monitor.raise_if_stopped()
    if serialized is None:
        raise UserError(failure_message("TensorRT could not build the engine", logger.take_errors()))
    return serialized, precision
