"""The TensorRT backend's parts that need no TensorRT: errors reaching the user, fallback
reasons, input checks, and the engine cache (key, digest memo, rebuild, lock, blob I/O).

Where a part needs a `tensorrt` module (a logger base class, a build to fail) it gets the
test double (tests/trt_double.py, TensorRT 11.1's surface)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest
import torch

from sam3dbody_gui.errors import DeviceError, ModelFolderError, UserError
from sam3dbody_gui.runtime.backbones import plan as backend_plan, tensorrt_cache
from sam3dbody_gui.runtime.backbones.tensorrt_backend import TensorRTBackbone, _torch_dtype
from sam3dbody_gui.runtime.backbones.tensorrt_build import BuildSettings, Recipe
from sam3dbody_gui.runtime.backbones.tensorrt_cache import (engine_cache_key, file_lock, mapped, onnx_digest, read_meta,
                                                  write_engine)
from sam3dbody_gui.runtime.backbones.tensorrt_callbacks import EngineBuildCancelled, make_logger, make_monitor
from sam3dbody_gui.runtime.backbones.tensorrt_import import import_tensorrt, tensorrt_status
from trt_double import FakePlacement, fake_onnx, make_tensorrt

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def trt(monkeypatch):
    module = make_tensorrt("11.1")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def open_backbone(trt, tmp_path, **kwargs) -> TensorRTBackbone:
    onnx = fake_onnx(tmp_path / "backbone.onnx")
    return TensorRTBackbone(onnx, torch.device("cpu"), tmp_path / "cache", placement=FakePlacement(trt._events),
                            **kwargs)


# --- 3: errors the window would never see --------------------------------------------------

def test_logger_keeps_error_lines_and_routes_everything_to_python_logging(trt, caplog):
    logger = make_logger(trt)
    caplog.set_level("DEBUG", logger="sam3dbody_gui.runtime.backbones.tensorrt_callbacks")
    severity = trt.ILogger.Severity
    logger.log(severity.WARNING, "a warning")
    logger.log(severity.ERROR, "parse failed at node 7")
    logger.log(severity.INTERNAL_ERROR, "assertion failed")
    logger.log(severity.INFO, "building")
    assert logger.take_errors() == ["parse failed at node 7", "assertion failed"] and logger.take_errors() == []
    assert "a warning" in caplog.text and "building" in caplog.text
    for i in range(100):
        logger.log(severity.ERROR, f"e{i}")
    assert logger.take_errors()[-1] == "e99" and len(logger.errors) == 0


def test_build_failure_message_carries_tensorrts_error_lines(trt, tmp_path, monkeypatch):
    monkeypatch.setattr(trt.Builder, "_fail_with", "Error Code 2: Internal Error (out of GPU memory)")
    with pytest.raises(UserError, match="could not build the engine: Error Code 2: .*out of GPU memory"):
        open_backbone(trt, tmp_path)


def test_an_exception_in_the_progress_callback_is_re_raised_not_reported_as_cancel(trt, tmp_path, capsys):
    def progress(phase, fraction):
        raise ValueError("the window's progress bar is gone")

    with pytest.raises(ValueError, match="progress bar is gone"):
        open_backbone(trt, tmp_path, progress=progress)
    assert "Exception caught" not in capsys.readouterr().err  # kept by us, never reached the binding


def test_a_cancel_is_told_apart_from_a_failure(trt, tmp_path):
    with pytest.raises(EngineBuildCancelled, match="cancelled"):
        open_backbone(trt, tmp_path, progress=lambda phase, fraction: False)
    assert not list((tmp_path / "cache").glob("*.engine"))  # nothing half-built was cached


def test_progress_messages_are_throttled(trt):
    now = [0.0]
    seen = []
    monitor = make_monitor(trt, lambda phase, f: seen.append((phase, f)) or True, clock=lambda: now[0], interval_s=0.5)
    monitor.phase_start("tactics", None, 1000)
    for step in range(1000):
        now[0] += 0.001
        assert monitor.step_complete("tactics", step)
    assert len(seen) == 3  # at 0 s, 0.5 s and 1.0 s — not 1001 messages
    assert seen[0] == ("tactics", 0.0) and seen[-1][1] == pytest.approx(1.0, abs=0.01)


# --- 4: broken installs fall back with a reason --------------------------------------------

def fake_package(tmp_path: Path, monkeypatch, body: str) -> None:
    (tmp_path / "pkgs" / "tensorrt").mkdir(parents=True)
    (tmp_path / "pkgs" / "tensorrt" / "__init__.py").write_text(textwrap.dedent(body))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))


@pytest.mark.parametrize("body, reason", [
    ("raise OSError('libnvinfer.so.10: cannot open shared object file')", r"cannot be loaded \(OSError: libnvinfer"),
    ("raise FileNotFoundError('Could not find: nvinfer_10.dll. Is it on your PATH?')", r"FileNotFoundError"),
    ("import tensorrt_bindings_missing", r"incomplete"),
    ("__version__ = '8.6.1'", r"TensorRT 8\.6\.1 is not supported"),
    ("__version__ = '12.0.0'", r"TensorRT 12\.0\.0 is not supported"),
])
def test_broken_or_unsupported_installs_are_unusable_with_a_reason(tmp_path, monkeypatch, body, reason):
    fake_package(tmp_path, monkeypatch, body)
    status = tensorrt_status()
    assert not status.usable
    assert re.search(reason, status.reason), status.reason
    with pytest.raises(DeviceError, match="pip install tensorrt-cu12"):
        import_tensorrt()


def test_a_supported_install_is_usable(trt):
    assert tensorrt_status().usable and tensorrt_status().reason == "TensorRT 11.1.0"


def test_not_installed_is_said_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert tensorrt_status().reason == "TensorRT is not installed"


def plan_on_fake_gpu(tmp_path, monkeypatch):
    (tmp_path / "model" / "exports").mkdir(parents=True)
    (tmp_path / "model" / "exports" / "backbone.onnx").write_bytes(b"onnx")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    files = types.SimpleNamespace(folder=tmp_path / "model")
    return backend_plan.plan_backend(backend_plan.BackendRequest(cache_dir=tmp_path / "cache"), files, torch.device("cuda"),
                               "sam3dbody_gui_tiny", 512)


def test_auto_falls_back_from_a_broken_tensorrt_and_says_why(tmp_path, monkeypatch):
    fake_package(tmp_path, monkeypatch, "raise OSError('libcudart.so.12: cannot open shared object file')")
    plan = plan_on_fake_gpu(tmp_path, monkeypatch)
    assert plan.kind == "pytorch" and "libcudart.so.12" in plan.reason
    assert not backend_plan.tensorrt_available()


def test_auto_picks_a_usable_tensorrt(trt, tmp_path, monkeypatch):
    plan = plan_on_fake_gpu(tmp_path, monkeypatch)
    assert (plan.kind, plan.precision) == ("tensorrt", "as built") and "TensorRT 11.1.0" in plan.reason


# --- 7: the crop is checked before TensorRT reads it by address -----------------------------

def test_wrong_crop_shape_device_or_dtype_is_a_clear_error(trt, tmp_path):
    backbone = open_backbone(trt, tmp_path)
    with pytest.raises(UserError, match=r"shape \[1, 3, 64, 64\], got \[1, 3, 512, 512\]"):
        backbone(torch.zeros(1, 3, 512, 512))
    with pytest.raises(UserError, match="the crop is on meta"):
        backbone(torch.zeros(1, 3, 64, 64, device="meta"))
    with pytest.raises(UserError, match="float crop"):
        backbone(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert not [e for e in trt._events if e[:2] == ("call", "IExecutionContext.execute_async_v3")]
    backbone(torch.zeros(1, 3, 64, 64, dtype=torch.float64))  # any float dtype is converted


def test_unknown_engine_dtype_is_a_clear_error(trt):
    with pytest.raises(ModelFolderError, match="tensor type DataType.FP8"):
        _torch_dtype(trt, trt.fp8)


# --- 8: the cache ---------------------------------------------------------------------------

def test_cache_key_covers_schema_settings_recipe_gpu_and_version(monkeypatch):
    args = ("ab" * 32, ("H100", (9, 0)), "11.1.0", BuildSettings(), Recipe(True, ()))
    key = engine_cache_key(*args)
    assert key == engine_cache_key(*args)
    changed = [engine_cache_key(args[0], ("H200", (9, 0)), *args[2:]),
               engine_cache_key(*args[:2], "10.16.0", *args[3:]),
               engine_cache_key(*args[:3], BuildSettings(batch=2), args[4]),
               engine_cache_key(*args[:4], Recipe(False, ("FP16", "INT8")))]
    monkeypatch.setattr(tensorrt_cache, "ENGINE_SCHEMA", tensorrt_cache.ENGINE_SCHEMA + 1)
    changed.append(engine_cache_key(*args))
    assert len({key, *changed}) == 6


def test_onnx_digest_is_memoised_by_size_and_mtime(tmp_path, monkeypatch):
    onnx = tmp_path / "b.onnx"
    onnx.write_bytes(b"A" * 1000)
    (tmp_path / "b.onnx.data").write_bytes(b"weights")
    first = onnx_digest(onnx, tmp_path / "cache")
    stat = onnx.stat()
    onnx.write_bytes(b"B" * 1000)  # same size; put the old mtime back: the memo answers, no re-hash
    os.utime(onnx, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reads = []
    monkeypatch.setattr("builtins.open", lambda *a, _open=open, **k: reads.append(a[0]) or _open(*a, **k))
    assert onnx_digest(onnx, tmp_path / "cache") == first
    assert not [r for r in reads if str(r).endswith((".onnx", ".data"))]
    os.utime(onnx, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert onnx_digest(onnx, tmp_path / "cache") != first
    (tmp_path / "b.onnx.data").write_bytes(b"other weights")  # an external-data change is a new engine
    assert len({first, onnx_digest(onnx, tmp_path / "cache")}) == 2


def test_a_damaged_digest_memo_is_rebuilt(tmp_path):
    onnx = tmp_path / "b.onnx"
    onnx.write_bytes(b"model")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / tensorrt_cache.DIGEST_MEMO).write_text("{not json")
    digest = onnx_digest(onnx, tmp_path / "cache")
    assert digest in json.loads((tmp_path / "cache" / tensorrt_cache.DIGEST_MEMO).read_text()).values()


class HostMemory(bytearray):  # what write_engine needs of IHostMemory: the buffer protocol and nbytes
    nbytes = property(len)


def test_engine_blob_and_metadata_round_trip(tmp_path):
    path = tmp_path / "e.engine"
    data = bytes(range(256)) * 40
    write_engine(path, HostMemory(data), {"precision": "int8+fp32"})
    assert read_meta(path)["precision"] == "int8+fp32"
    with mapped(path) as blob:
        assert blob[:] == data
    tensorrt_cache.meta_path(path).unlink()
    assert read_meta(path) is None  # an engine without its metadata is not trusted


def test_the_engine_lock_excludes_another_process(tmp_path):
    lock = tmp_path / "e.engine.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from sam3dbody_gui.runtime.backbones.tensorrt_cache import file_lock
            with file_lock(Path({str(lock)!r})):
                print("held", flush=True)
                sys.stdin.readline()
        """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waited, acquired = threading.Event(), threading.Event()

        def take():
            with file_lock(lock, on_wait=waited.set):
                acquired.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert waited.wait(10) and not acquired.wait(0.3)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert acquired.wait(10)
        thread.join(10)
    finally:
        holder.kill()
        holder.wait()


def test_the_engine_lock_excludes_another_thread(tmp_path):
    lock, order = tmp_path / "e.engine.lock", []

    def take():
        with file_lock(lock, on_wait=lambda: order.append("waited")):
            order.append("in")

    with file_lock(lock):
        thread = threading.Thread(target=take)
        thread.start()
        time.sleep(0.2)
        order.append("released")
    thread.join(10)
    assert order == ["waited", "released", "in"]
