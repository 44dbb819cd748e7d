"""API conformance: the TensorRT backend's build and run paths against TensorRT 10.16 and 11.1.

The `tensorrt` module here is tests/trt_double.py: exactly the names, overloads and enum
members each version's binding sources declare (tests/trt_surface.py, with file:line), and
just enough behaviour to go through a build and an enqueue on the CPU. A name a version lacks
raises AttributeError, arguments no overload takes raise TypeError — so these tests fail if
the backend uses the wrong API for a version. They prove names, arities and call order, not
what TensorRT computes: the backend has still never run on a GPU.
"""

from __future__ import annotations

import sys

import pytest
import torch

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.runtime.backbones import tensorrt_build
from sam3dbody_gui.runtime.backbones.tensorrt_backend import TensorRTBackbone
from sam3dbody_gui.runtime.backbones.tensorrt_callbacks import make_logger
from trt_double import CALLER_STREAM, DEFAULT_STREAM_WARNING, TRT_STREAM, FakePlacement, fake_onnx, make_tensorrt

VERSIONS = ("10.16", "11.1")


@pytest.fixture(params=VERSIONS)
def trt(request, monkeypatch):
    module = make_tensorrt(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def open_backbone(trt, tmp_path, onnx=None, **kwargs) -> TensorRTBackbone:
    onnx = onnx or fake_onnx(tmp_path / "backbone.onnx")
    return TensorRTBackbone(onnx, torch.device("cpu"), tmp_path / "cache", placement=FakePlacement(trt._events),
                            **kwargs)


def calls(trt, name: str | None = None) -> list:
    return [e for e in trt._events if e[0] == "call" and (name is None or e[1] == name)]


def first(trt, name: str) -> int:
    return next(i for i, e in enumerate(trt._events) if e[0] == "call" and e[1] == name)


def test_build_and_run_use_only_declared_names_in_order(trt, tmp_path):
    backbone = open_backbone(trt, tmp_path)
    crop = torch.randn(1, 3, 64, 64)
    features = backbone(crop)
    assert features.shape == (1, 8, 4, 4)
    # the double's enqueue copies the input's first bytes to the output address: both bound
    assert torch.equal(features.flatten(), crop.flatten()[:features.numel()])
    order = ["Builder.__init__", "Builder.create_network", "OnnxParser.parse_from_file",
             "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.add_optimization_profile",
             "Builder.build_serialized_network", "Runtime.deserialize_cuda_engine",
             "ICudaEngine.create_execution_context", "IExecutionContext.set_tensor_address",
             "IExecutionContext.execute_async_v3"]
    assert [first(trt, n) for n in order] == sorted(first(trt, n) for n in order)


def test_every_tensorrt_call_happens_inside_the_device_context(trt, tmp_path):
    backbone = open_backbone(trt, tmp_path)
    backbone(torch.randn(1, 3, 64, 64))
    depth, outside = 0, []
    for event in trt._events:
        depth += {"enter": 1, "exit": -1}.get(event[0], 0)
        if event[0] in ("call", "get", "set") and depth == 0:
            outside.append(event[1])
    assert calls(trt) and outside == []


def test_precision_recipe_and_label_follow_the_version(trt, tmp_path):
    backbone = open_backbone(trt, tmp_path)
    flags = calls(trt, "Builder.create_network")[0][2][0]
    set_flags = [e[2][0] for e in calls(trt, "IBuilderConfig.set_flag")]
    if trt.__version__.startswith("10."):
        assert flags == 0  # weak typing
        assert set_flags == [trt.BuilderFlag.FP16, trt.BuilderFlag.INT8]
        assert backbone.info.precision == "int8+fp16"
    else:
        assert flags == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        assert set_flags == []  # 11.x has no precision flags
        assert backbone.info.precision == "int8+fp32"  # the fake ONNX's float type outside Q/DQ
    assert backbone.info.label().startswith(f"tensorrt {backbone.info.precision} on cuda:1")


def test_the_label_comes_from_the_network_not_the_flags(trt, tmp_path):
    onnx = fake_onnx(tmp_path / "plain.onnx", layers=(("CONVOLUTION", ["HALF"]),))  # no Q/DQ: no int8
    backbone = open_backbone(trt, tmp_path, onnx=onnx)
    assert backbone.info.precision == "fp16"


def test_the_double_rejects_what_a_version_lacks(trt):
    """The seed's recipe (BuilderFlag.FP16) must fail against 11.1, as it does on a real 11.x."""
    builder = trt.Builder(make_logger(trt))
    config = builder.create_builder_config()
    if trt.__version__.startswith("11."):
        with pytest.raises(AttributeError):
            config.set_flag(trt.BuilderFlag.FP16)
        with pytest.raises(AttributeError):
            builder.platform_has_fast_fp16  # noqa: B018 - removed in 11.0
    else:
        config.set_flag(trt.BuilderFlag.FP16)
        with pytest.raises(NotImplementedError):  # declared by 10.16 (not an AttributeError); not emulated
            builder.platform_has_fast_fp16  # noqa: B018
    with pytest.raises(AttributeError):
        config.no_such_setting = 1
    with pytest.raises(TypeError):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)  # pool_size missing
    with pytest.raises(TypeError):
        trt.Builder()  # the logger is required


def test_dynamic_batch_builds_with_a_profile_and_sets_the_input_shape(trt, tmp_path):
    onnx = fake_onnx(tmp_path / "dynamic.onnx", input_shape=(-1, 3, 64, 64), output_shape=(-1, 8, 4, 4))
    backbone = open_backbone(trt, tmp_path, onnx=onnx)
    assert backbone.input_shape == (1, 3, 64, 64) and tuple(backbone.output.shape) == (1, 8, 4, 4)
    assert calls(trt, "IOptimizationProfile.set_shape")[0][2][1:] == ((1, 3, 64, 64),) * 3
    assert calls(trt, "IExecutionContext.set_input_shape")
    backbone(torch.randn(1, 3, 64, 64))


def test_without_the_profile_a_dynamic_batch_fails_with_tensorrts_error(trt, tmp_path, monkeypatch):
    """The seed's build (no profile) against the double: it fails, and says why."""
    monkeypatch.setattr(tensorrt_build, "add_profile", lambda *a, **k: None)
    onnx = fake_onnx(tmp_path / "dynamic.onnx", input_shape=(-1, 3, 64, 64), output_shape=(-1, 8, 4, 4))
    with pytest.raises(UserError, match="no optimization profile has been defined"):
        open_backbone(trt, tmp_path, onnx=onnx)


def test_enqueue_is_on_a_dedicated_stream_ordered_both_ways(trt, tmp_path, caplog):
    backbone = open_backbone(trt, tmp_path)
    del trt._events[:]
    backbone(torch.randn(1, 3, 64, 64))
    events = [e[:3] if e[0] == "call" else e for e in trt._events if e[0] in ("wait", "call", "keep")]
    execute = next(i for i, e in enumerate(events) if e[:2] == ("call", "IExecutionContext.execute_async_v3"))
    assert events[execute][2] == (TRT_STREAM,)
    assert ("wait", TRT_STREAM, CALLER_STREAM) in events[:execute]
    assert ("keep", TRT_STREAM) in events[:execute]
    assert events[execute + 1:] == [("wait", CALLER_STREAM, TRT_STREAM)]
    assert DEFAULT_STREAM_WARNING not in caplog.text


def test_second_start_loads_the_cached_engine_without_building(trt, tmp_path):
    first_start = open_backbone(trt, tmp_path)
    assert not first_start.from_cache
    del trt._events[:]
    second = open_backbone(trt, tmp_path)
    assert second.from_cache and second.engine_path == first_start.engine_path
    assert not calls(trt, "Builder.build_serialized_network")
    assert second.info.precision == first_start.info.precision
    second(torch.randn(1, 3, 64, 64))


def test_a_corrupt_cached_engine_is_rebuilt_once(trt, tmp_path, caplog):
    path = open_backbone(trt, tmp_path).engine_path
    path.write_bytes(b"half an engine")
    rebuilt = open_backbone(trt, tmp_path)
    assert not rebuilt.from_cache and "rebuilding" in caplog.text
    assert open_backbone(trt, tmp_path).from_cache  # the rebuilt engine is good
