"""Warm start (pipeline/warm_start.py): the pipeline answers on the eager path at once, builds the
compiled one in the background, checks it against the eager one and swaps it in between runs;
a failed build keeps eager. And the memory side: the backbone is loaded in its run precision."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sam3dbody_gui.pipeline import warm_start
from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.pipeline.warm_start import BackgroundFastPath, FastStages
from sam3dbody_gui.runtime import cpu_features
from sam3dbody_gui.runtime.backbones import cpu_check
from sam3dbody_gui.runtime.cpu_features import CpuPlan

BUILD_TIMEOUT_S = 600  # a CPU compile of the tiny backbone: ~10 s alone, longer on a busy CI machine


def _deviation_mm(a, b) -> tuple[float, float]:
    mm = np.linalg.norm(a.vertices_camera - b.vertices_camera, axis=1) * 1000.0
    return float(mm.mean()), float(mm.max())


@pytest.fixture()
def held_build(monkeypatch):
    """The background build waits on this event before it builds anything."""
    gate = threading.Event()
    monkeypatch.setattr(warm_start.hooks, "before_build", lambda: gate.wait(BUILD_TIMEOUT_S))
    yield gate
    gate.set()


def test_the_cpu_answers_on_eager_int8_then_swaps_to_the_checked_compiled_int8(tiny_model_dir, tmp_path,
                                                                                monkeypatch, held_build):
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    said: list[str] = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=said.append, warm_start=True)
    item = benchmark_images()[0]
    # The build is held: the pipeline answers anyway, on the eager int8 backbone, before its
    # check against fp32 has run (that check is the build's first step).
    assert pipe.fast_path_status == warm_start.BUILDING and not pipe.fast_path.done
    before = pipe.run(item.image, item.box)
    assert before.backend.startswith("pytorch int8") and not pipe.fast_path.done
    assert not any("checking the" in m for m in said)
    verdicts = sorted(tmp_path.glob("cpu-check-pytorch-int8*.json"))
    assert verdicts == []
    encoder = pipe.backbone.encoder
    held_build.set()
    assert pipe.fast_path.wait(BUILD_TIMEOUT_S), "the background build never finished"
    assert pipe.fast_path_status.startswith("in use (checked: mesh vs eager"), pipe.fast_path_status
    assert any("checking the eager int8" in m for m in said)
    eager_verdict = cpu_check.read_verdict(next(tmp_path.glob("cpu-check-pytorch-int8*.json")))
    assert eager_verdict.ok  # kept: the next start opens the compiled package at once (plan.py)
    assert next(tmp_path.glob("cpu-check-compiled-int8*.json"), None) is not None
    for thread in pipe.cache_writes:  # and, once checked, the int8 weights for the next start
        thread.join(BUILD_TIMEOUT_S)
    assert len(list(tmp_path.glob("int8-weights-*.pt"))) == 1
    assert (pipe.backbone.info.name, pipe.backbone.info.precision) == ("pytorch-compiled", "int8")
    assert pipe.backbone.encoder is encoder  # compiled on the eager one's weights: no second copy
    after = pipe.run(item.image, item.box)
    assert after.backend.startswith("pytorch-compiled int8")
    mean_mm, max_mm = _deviation_mm(after, before)
    assert mean_mm <= cpu_check.FIDELITY_MEAN_MM and max_mm <= cpu_check.FIDELITY_MAX_MM
    assert any("compiling in the background" in m for m in said) and any("is in use" in m for m in said)


def test_an_eager_int8_path_that_misses_its_background_check_is_replaced_by_fp32(tiny_model_dir, tmp_path,
                                                                                 monkeypatch):
    from sam3dbody_gui.runtime.backbones.int8_cpu import Int8DynamicLinear

    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    monkeypatch.setattr(cpu_check, "FIDELITY_MEAN_MM", -1.0)  # no path can pass
    said: list[str] = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=said.append, warm_start=True)
    item = benchmark_images()[0]
    assert pipe.run(item.image, item.box).backend.startswith("pytorch int8")  # answered before the check
    assert pipe.fast_path.wait(BUILD_TIMEOUT_S)
    assert pipe.fast_path_status.startswith("not built: the int8 CPU path missed the fidelity check"), \
        pipe.fast_path_status
    assert pipe.fast_path_status.endswith("fp32 is in use")
    assert pipe.backbone.info.precision == "fp32" and not any("AOTInductor" in m for m in said)
    assert not any(isinstance(m, Int8DynamicLinear) for m in pipe.model.modules())
    assert all(p.dtype == torch.float32 for p in pipe.backbone.encoder.parameters())
    want = _fp32_pipe(tiny_model_dir).run(item.image, item.box)
    np.testing.assert_array_equal(pipe.run(item.image, item.box).vertices, want.vertices)  # the very fp32 weights
    # The verdict is kept: the next start opens fp32 at once, with nothing to check or build.
    again: list[str] = []
    nxt = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=again.append, warm_start=True)
    assert nxt.backbone.info.precision == "fp32" and getattr(nxt, "fast_path", None) is None
    assert not any("checking the" in m for m in again)


def test_a_failing_build_keeps_the_eager_path_with_one_message(tiny_model_dir, tmp_path, monkeypatch):
    from sam3dbody_gui.runtime.backbones import plan as backend_plan

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(backend_plan, "open_compiled", no_compiler)
    said: list[str] = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="int8", backend="compiled", cache_dir=tmp_path,
                          progress=said.append, warm_start=True)
    eager = pipe.backbone
    assert pipe.fast_path.wait(BUILD_TIMEOUT_S)
    assert pipe.fast_path_status == "failed: RuntimeError: no C++ compiler; using the eager path"
    assert pipe.backbone is eager and pipe.backbone.info.name == "pytorch"
    assert sum("unavailable" in m for m in said) == 1
    item = benchmark_images()[0]
    assert np.isfinite(pipe.run(item.image, item.box).vertices).all()


class _Tagging:
    """A backbone / decoder of one generation ("old" or "new"): features carry their maker, and a
    decoder notes every run that got features from the other generation (a half swap). (The
    swap's check, on the build's thread, decodes both backbones with the decoder in use.)"""

    def __init__(self, generation: str, inner, mismatches: list | None = None, scale: float = 1.0) -> None:
        self.generation, self.inner, self.mismatches, self.scale = generation, inner, mismatches, scale
        self.info = getattr(inner, "info", None)

    def __call__(self, *args):
        if self.mismatches is None:  # a backbone
            features = self.inner(*args) * self.scale
            features._made_by = self.generation
            return features
        features = args[0]
        in_a_run = threading.current_thread() is threading.main_thread()  # not the swap's own check
        if in_a_run and getattr(features, "_made_by", self.generation) != self.generation:
            self.mismatches.append((features._made_by, self.generation))
        return self.inner(*args)


def _fp32_pipe(tiny_model_dir):
    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


def _crop(pipe):
    from sam3dbody_gui.pipeline.calibration import calibration_crops

    return lambda: next(iter(calibration_crops(pipe.config, pipe.device)))


def test_no_run_sees_half_a_swap(tiny_model_dir, monkeypatch, held_build):
    pipe = _fp32_pipe(tiny_model_dir)
    mismatches: list = []
    pipe.backbone = _Tagging("old", pipe.backbone)
    pipe.decoder = _Tagging("old", pipe.model.decode_body, mismatches)
    fresh = FastStages(backbone=_Tagging("new", pipe.backbone.inner),
                       decoder=_Tagging("new", pipe.model.decode_body, mismatches))
    swapping = threading.Event()

    def slow_swap():  # widen the swap: without the run lock, runs in the loop below would land inside it
        swapping.set()
        threading.Event().wait(0.3)

    monkeypatch.setattr(warm_start.hooks, "during_swap", slow_swap)
    fast = BackgroundFastPath(pipe, lambda: fresh, _crop(pipe)).start()
    item = benchmark_images()[0]
    runs = 0
    while not fast.done or runs < 3:
        pipe.run(item.image, item.box)
        runs += 1
        held_build.set()  # the build starts once runs are under way
    assert swapping.is_set() and fast.status.startswith("in use"), fast.status
    assert pipe.backbone is fresh.backbone and pipe.decoder is fresh.decoder
    assert mismatches == [], f"runs saw half a swap: {mismatches[:3]}"


def test_a_fast_path_that_misses_the_check_is_not_swapped_in(tiny_model_dir):
    pipe = _fp32_pipe(tiny_model_dir)
    eager = pipe.backbone
    off = FastStages(backbone=_Tagging("new", eager, scale=1.5))  # features off by half: a wrong fast path
    said: list[str] = []
    fast = BackgroundFastPath(pipe, lambda: off, _crop(pipe), said.append).start()
    assert fast.wait(BUILD_TIMEOUT_S)
    assert fast.status.startswith("failed: RuntimeError: it missed the check (mesh vs eager mean"), fast.status
    assert pipe.backbone is eager and fast.verdict is not None and not fast.verdict.ok
    assert len(said) == 1 and "eager path stays in use" in said[0]


def test_a_cancelled_build_swaps_nothing_in(tiny_model_dir, held_build):
    pipe = _fp32_pipe(tiny_model_dir)
    eager = pipe.backbone
    built = []
    fast = BackgroundFastPath(pipe, lambda: built.append(1) or FastStages(backbone=_Tagging("new", eager)),
                              _crop(pipe)).start()
    fast.cancel()
    held_build.set()
    assert fast.wait(BUILD_TIMEOUT_S)
    assert fast.status == "cancelled; using the eager path" and pipe.backbone is eager and built == []


def test_blocking_builds_have_no_background_build(tiny_model_dir):
    pipe = _fp32_pipe(tiny_model_dir)
    assert pipe.fast_path_status == "" and getattr(pipe, "fast_path", None) is None
    # Eager named on the CPU with a warm start: nothing to compile, nothing in the background.
    warm = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", warm_start=True)
    assert warm.fast_path_status == "" and getattr(warm, "fast_path", None) is None
    # `infer`'s warm start: the eager path in the fast precision at once, no build behind it.
    once = build_pipeline(tiny_model_dir, device="cpu", precision="int8", backend="compiled", warm_start=True,
                          background_build=False)
    assert getattr(once, "fast_path", None) is None and once.fast_path_status.startswith("not built")
    assert (once.backbone.info.name, once.backbone.info.precision) == ("pytorch", "int8")


def test_the_env_switch_turns_the_warm_start_off(monkeypatch):
    monkeypatch.setenv(warm_start.WARM_START_ENV, "0")
    assert not warm_start.warm_start_wanted()
    monkeypatch.setenv(warm_start.WARM_START_ENV, "1")
    assert warm_start.warm_start_wanted()
    monkeypatch.delenv(warm_start.WARM_START_ENV)
    assert warm_start.warm_start_wanted()


# -- memory ------------------------------------------------------------------------------------
def test_the_plan_loads_the_backbone_in_its_run_precision():
    from sam3dbody_gui.runtime.backbones.plan import BackendPlan

    def load(precision, checked=False):
        return BackendPlan("compiled", precision, None, "test", checked=checked).load_dtype

    assert load("fp8") == load("bf16") == torch.bfloat16 and load("fp16") == torch.float16
    assert load("fp32") == load("int8") == torch.float32  # int8 quantises from fp32
    assert load("bf16", checked=True) == torch.float32  # a checked plan keeps fp32 for its check


def test_the_backbone_is_loaded_straight_into_bf16_and_no_fp32_copy_is_kept(tiny_model_dir, monkeypatch):
    from sam3dbody_gui.model import model_folder

    asked = []
    real = model_folder.load_model_folder

    def spy(*args, **kwargs):
        asked.append(kwargs.get("backbone_dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(model_folder, "load_model_folder", spy)
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="bf16", backend="pytorch", cuda_graph=False)
    assert asked == [torch.bfloat16]
    encoder = pipe.backbone.encoder
    assert encoder is pipe.model.backbone.encoder  # the one copy the model holds
    assert {t.dtype for t in encoder.parameters()} == {torch.bfloat16}  # (RoPE's periods stay an fp32 buffer)
    assert {p.device.type for p in pipe.model.parameters()} == {"cpu"}
    assert pipe.model.mhr is not None and sum(isinstance(m, torch.jit.ScriptModule) for m in [pipe.model.mhr]) == 1


def test_fp8_weights_from_a_bf16_load_equal_those_from_an_fp32_load(tiny_model_dir):
    """The GPU's fp8 path now quantises a backbone loaded in bf16: the same fp8 weights as
    before (quantize_backbone_fp8 cast the fp32 one to bf16 first)."""
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.runtime.backbones.fp8 import Fp8Linear, quantize_backbone_fp8

    def fp8_weights(dtype):
        encoder = load_model_folder(tiny_model_dir, backbone_dtype=dtype).model.backbone.encoder
        quantize_backbone_fp8(encoder)
        return [m.weight_fp8.view(torch.uint8) for m in encoder.modules() if isinstance(m, Fp8Linear)]

    old, new = fp8_weights(torch.float32), fp8_weights(torch.bfloat16)
    assert len(old) == len(new) > 0
    assert all(torch.equal(a, b) for a, b in zip(old, new))


def test_the_background_build_waits_for_the_first_answer(tiny_model_dir, tmp_path, monkeypatch):
    """The compiler starts once the first run has ended (not beside it: they would share the cores
    and the GIL), or after FIRST_RUN_GRACE_S without one."""
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    started = threading.Event()
    monkeypatch.setattr(warm_start.hooks, "before_build", started.set)
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, warm_start=True)
    assert not started.wait(1.0), "the build started before anything was answered"
    item = benchmark_images()[0]
    pipe.run(item.image, item.box)
    assert started.wait(30), "the build did not start after the first answer"
    assert pipe.fast_path.wait(BUILD_TIMEOUT_S)


def test_with_no_run_the_build_starts_after_the_grace(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    monkeypatch.setattr(warm_start, "FIRST_RUN_GRACE_S", 0.5)
    started = threading.Event()
    monkeypatch.setattr(warm_start.hooks, "before_build", started.set)
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, warm_start=True)
    assert started.wait(30) and pipe.fast_path.wait(BUILD_TIMEOUT_S)


def test_fp8_quantised_on_the_way_to_the_device_gives_the_same_weights_there(tiny_model_dir):
    """The fp8 path loads the backbone on the host and quantises each Linear on its way to the
    device (quantize_backbone_fp8(encoder, device)): the same fp8 weights as quantising in place,
    every tensor of the encoder on the device, and the plan asks for the host load only for fp8."""
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.runtime.backbones.fp8 import Fp8Linear, quantize_backbone_fp8
    from sam3dbody_gui.runtime.backbones.plan import BackendPlan

    def fp8_layers(device):
        loaded = load_model_folder(tiny_model_dir, backbone_dtype=torch.bfloat16, backbone_device="cpu")
        encoder = quantize_backbone_fp8(loaded.model.backbone.encoder, device)
        return encoder, [m for m in encoder.modules() if isinstance(m, Fp8Linear)]

    _, in_place = fp8_layers(None)
    encoder, moved = fp8_layers(torch.device("meta"))  # a device other than the host's, without a GPU
    assert len(in_place) == len(moved) > 0
    assert {t.device.type for t in list(encoder.parameters()) + list(encoder.buffers())} == {"meta"}
    assert all(m.weight_fp8.dtype == torch.float8_e4m3fn and m.weight_fp8.shape == n.weight_fp8.shape
               for m, n in zip(moved, in_place))
    assert not any(isinstance(m, torch.nn.Linear) for b in encoder.blocks for m in b.modules())
    assert BackendPlan("compiled", "fp8", None, "").backbone_on_host
    assert not BackendPlan("compiled", "bf16", None, "").backbone_on_host
    assert not BackendPlan("tensorrt", "fp8", None, "").backbone_on_host


def test_loading_the_backbone_elsewhere_puts_only_the_backbone_there(tiny_model_dir):
    from sam3dbody_gui.model.model_folder import load_model_folder

    model = load_model_folder(tiny_model_dir, device="cpu", backbone_device="meta").model
    assert {p.device.type for p in model.backbone.parameters()} == {"meta"}
    assert {p.device.type for n, p in model.named_parameters() if not n.startswith("backbone.")} == {"cpu"}


def test_the_status_says_when_the_eager_path_is_being_checked(tiny_model_dir):
    """The window's badge shows the status: during a precheck (the eager fast path's check against
    fp32) it says so, then what the build does next."""
    pipe = _fp32_pipe(tiny_model_dir)
    seen: list[str] = []
    build = BackgroundFastPath(pipe, lambda: FastStages(), _crop(pipe),
                               precheck=lambda: seen.append(pipe.fast_path_status))
    assert pipe.fast_path_status == warm_start.BUILDING
    assert build.start().wait(BUILD_TIMEOUT_S)
    assert seen == [warm_start.CHECKING]
    assert pipe.fast_path_status.startswith("in use"), pipe.fast_path_status
