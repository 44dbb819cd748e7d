"""The CPU's compiled backbone as an AOTInductor package (runtime/backbones/aoti_backend.py):
built once, loaded from the cache on later starts, run on the encoder's own weights, and what
`auto` and a warm start do once one is cached."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sam3dbody_gui.model.model_folder import find_model_files
from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.runtime import cpu_features
from sam3dbody_gui.runtime.backbones import aoti_backend, plan as backend_plan
from sam3dbody_gui.runtime.backbones.aoti_backend import AotiBackbone, aoti_package_path
from sam3dbody_gui.runtime.backbones.int8_cpu import quantize_backbone_int8
from sam3dbody_gui.runtime.backbones.plan import BackendRequest, plan_backend, warm_start_plans
from sam3dbody_gui.runtime.cpu_features import CpuPlan

ARCH, CROP = "sam3dbody_gui_tiny", 512
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def aoti_on(monkeypatch):
    monkeypatch.setenv(aoti_backend.AOTI_ENV, "1")  # the suite's default is torch.compile (conftest.py)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aoti-cache")


def _int8_encoder(encoder, seed: int | None = None):
    """An int8 copy of the tiny encoder; `seed`: with other (random) weights of the same shapes."""
    other = copy.deepcopy(encoder)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in other.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * p.detach().float().std().clamp(min=1e-3))
    quantize_backbone_int8(other)
    return other.eval()


def _crop(seed: int) -> torch.Tensor:
    return torch.randn(1, 3, CROP, CROP, generator=torch.Generator().manual_seed(seed))


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def test_the_package_is_built_once_then_loaded_and_runs_like_the_eager_encoder(tiny_loaded, package_dir):
    encoder = _int8_encoder(tiny_loaded.model.backbone.encoder)
    package = aoti_package_path(package_dir, ARCH, "int8", CROP)
    said: list[str] = []
    first = AotiBackbone(encoder, torch.float32, CROP, package, "int8", said.append)
    assert not first.from_cache and package.is_file() and not list(package_dir.glob(".*partial*"))
    assert any("AOTInductor" in m and "one time" in m for m in said)
    with torch.inference_mode():
        want_a, want_b = encoder(_crop(1)), encoder(_crop(2))
    got_a = first(_crop(1))
    kept = got_a.clone()
    got_b = first(_crop(2))
    assert torch.equal(got_a, kept)  # a later call does not overwrite an earlier result
    # int8 with per-token scales: a fused kernel may round a value to the next level (as torch.compile does)
    assert _relative(got_a, want_a) < 0.05 and _relative(got_b, want_b) < 0.05
    again = AotiBackbone(encoder, torch.float32, CROP, package, "int8", said.append)
    assert again.from_cache and torch.equal(again(_crop(1)), got_a)
    assert again.info.name == "pytorch-compiled" and again.info.precision == "int8"
    with pytest.raises(ValueError, match="one crop at a time"):
        again(torch.zeros(2, 3, CROP, CROP))


def test_the_package_runs_on_the_weights_it_is_given_not_the_ones_it_was_built_with(tiny_loaded, package_dir):
    built_with = _int8_encoder(tiny_loaded.model.backbone.encoder)
    package = aoti_package_path(package_dir, ARCH, "int8", CROP)
    if not package.is_file():
        AotiBackbone(built_with, torch.float32, CROP, package, "int8")
    other = _int8_encoder(tiny_loaded.model.backbone.encoder, seed=7)
    backend = AotiBackbone(other, torch.float32, CROP, package, "int8")
    assert backend.from_cache
    with torch.inference_mode():
        want, first_weights = other(_crop(3)), built_with(_crop(3))
    got = backend(_crop(3))
    assert _relative(got, want) < 0.05
    assert _relative(got, first_weights) > 0.5  # not the weights the package was compiled with


def test_a_damaged_cached_package_is_built_again_once(tiny_loaded, tmp_path):
    encoder = _int8_encoder(tiny_loaded.model.backbone.encoder)
    package = aoti_package_path(tmp_path, ARCH, "int8", CROP)
    package.parent.mkdir(parents=True, exist_ok=True)
    package.write_bytes(b"PK\x03\x04 not really a package")
    said: list[str] = []
    backend = AotiBackbone(encoder, torch.float32, CROP, package, "int8", said.append)
    assert not backend.from_cache and sum("could not be used" in m for m in said) == 1
    with torch.inference_mode():
        assert _relative(backend(_crop(4)), encoder(_crop(4))) < 0.05


def test_weights_made_in_inference_mode_still_build_a_package(tiny_loaded, tmp_path):
    """bench opens backends inside torch.inference_mode: the int8 weights are inference tensors,
    which torch.export refuses; the package is built from plain copies and runs on the originals."""
    with torch.inference_mode():
        encoder = _int8_encoder(tiny_loaded.model.backbone.encoder)
        assert any(t.is_inference() for t in encoder.buffers())
        backend = AotiBackbone(encoder, torch.float32, CROP, aoti_package_path(tmp_path, ARCH, "int8", CROP), "int8")
        want = encoder(_crop(5))
    assert any(t.is_inference() for t in encoder.buffers())  # the originals are back in place
    assert _relative(backend(_crop(5)), want) < 0.05


def test_a_package_built_for_another_tensor_layout_is_built_again(tiny_loaded, package_dir, tmp_path):
    """Same key, other weights' layout (e.g. a quantisation that changed without a version bump):
    the kernels would misread them, so the package is rebuilt, never handed them."""
    import shutil

    package = aoti_package_path(package_dir, ARCH, "int8", CROP)
    if not package.is_file():
        AotiBackbone(_int8_encoder(tiny_loaded.model.backbone.encoder), torch.float32, CROP, package, "int8")
    stale = tmp_path / package.name
    shutil.copy(package, stale)
    other_layout = copy.deepcopy(tiny_loaded.model.backbone.encoder).eval()  # fp32 Linears, not int8
    said: list[str] = []
    backend = AotiBackbone(other_layout, torch.float32, CROP, stale, "int8", said.append)
    assert not backend.from_cache and any("another layout" in m for m in said)
    with torch.inference_mode():
        assert _relative(backend(_crop(6)), other_layout(_crop(6))) < 1e-4


def test_the_key_covers_the_cpus_vector_instructions(tmp_path, monkeypatch):
    here = aoti_package_path(tmp_path, ARCH, "int8", CROP)
    monkeypatch.setattr(aoti_backend, "vector_isa", lambda: "AVX2/avx2")
    assert aoti_package_path(tmp_path, ARCH, "int8", CROP) != here
    assert aoti_package_path(tmp_path, ARCH, "bf16", CROP) != aoti_package_path(tmp_path, ARCH, "int8", CROP)


def test_a_failed_package_falls_back_to_torch_compile_with_one_message(tiny_loaded, tmp_path, monkeypatch):
    def no_export(*args, **kwargs):
        raise RuntimeError("export refused")

    monkeypatch.setattr(aoti_backend, "_compile_package", no_export)
    said: list[str] = []
    encoder = _int8_encoder(tiny_loaded.model.backbone.encoder)
    backend = backend_plan.open_compiled(encoder, torch.float32, CPU, CROP, BackendRequest(cache_dir=tmp_path),
                                         ARCH, "int8", said.append)
    assert type(backend).__name__ == "CompiledBackbone"
    assert sum("AOTInductor package unavailable (RuntimeError: export refused)" in m for m in said) == 1


def test_once_a_warm_start_has_checked_the_package_auto_opens_it_at_once(tiny_model_dir, tiny_loaded, tmp_path,
                                                                          monkeypatch):
    """First start: eager int8 answers, the package is built in the background, checked against
    eager and swapped in, and its verdict against fp32 is kept (bounded from the two checks).
    Next start: `auto` opens the package itself, with no eager phase and no fp32 pass."""
    from sam3dbody_gui.runtime.backbones import cpu_check

    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    files, request = find_model_files(tiny_model_dir), BackendRequest(cache_dir=tmp_path)
    plan = plan_backend(request, files, CPU, ARCH, CROP)
    assert (plan.kind, plan.opens_quickly) == ("pytorch", False)
    first = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, warm_start=True)
    item = benchmark_images()[0]
    first.run(item.image, item.box)
    assert first.fast_path.wait(600) and first.fast_path_status.startswith("in use (checked"), first.fast_path_status
    assert aoti_package_path(tmp_path, ARCH, "int8", CROP).is_file()
    eager = cpu_check.read_verdict(backend_plan.cpu_verdict_file(request, files, "pytorch", "int8", ARCH, CROP))
    kept = cpu_check.read_verdict(backend_plan.cpu_verdict_file(request, files, "compiled", "int8", ARCH, CROP))
    swap = first.fast_path.verdict
    assert kept == cpu_check.chained(eager, swap) and kept.ok

    plan = plan_backend(request, files, CPU, ARCH, CROP)
    assert (plan.kind, plan.precision, plan.checked, plan.opens_quickly) == ("compiled", "int8", True, True)
    assert "AOTInductor" in plan.reason and warm_start_plans(plan, request, CPU) == (plan, None)
    said: list[str] = []
    second = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, warm_start=True, progress=said.append)
    assert getattr(second, "fast_path", None) is None
    assert (second.backbone.info.name, second.backbone.info.precision) == ("pytorch-compiled", "int8")
    assert any("from cache, AOTInductor" in m for m in said) and not any("against fp32 (once" in m for m in said)
    result = second.run(item.image, item.box)
    assert result.backend.startswith("pytorch-compiled int8") and np.isfinite(result.vertices).all()
    monkeypatch.setenv(aoti_backend.AOTI_ENV, "0")  # AOTInductor switched off: the package is not used
    assert not plan_backend(request, files, CPU, ARCH, CROP).opens_quickly


def test_the_fp32_bound_of_two_checks_adds_them_up():
    from sam3dbody_gui.runtime.backbones.cpu_check import FidelityVerdict, chained

    assert chained(FidelityVerdict(0.7, 1.8), FidelityVerdict(0.2, 0.6)) == FidelityVerdict(0.7 + 0.2, 1.8 + 0.6)


def test_a_background_builds_export_waits_for_the_pipelines_runs(tiny_loaded, tmp_path, monkeypatch):
    """torch.export patches module calls for the whole process: a run on another thread during
    its trace broke both (seen on the CPU). So the trace holds the run lock a build registered."""
    import threading

    from sam3dbody_gui.runtime.cuda_graph import captures_guarded_by

    run_lock, seen = threading.Lock(), []

    def export_that_looks(*args, **kwargs):
        seen.append(run_lock.locked())
        raise RuntimeError("stopped after the look")

    monkeypatch.setattr(torch.export, "export", export_that_looks)
    with captures_guarded_by(run_lock), pytest.raises(RuntimeError, match="stopped after the look"):
        aoti_backend._compile_package(tiny_loaded.model.backbone.encoder, _crop(0), tmp_path / "p.pt2")
    assert seen == [True] and not run_lock.locked() and not list(tmp_path.iterdir())



def test_a_cached_package_opens_through_the_direct_loader_and_falls_back_if_it_must(tiny_loaded, package_dir,
                                                                                     monkeypatch):
    """The public aoti_load_package spent 1.0 s reading the archive on its first call; the
    cached package goes through torch's C++ loader directly, and through the public call where
    that loader is not as expected — the same features either way."""
    package = aoti_package_path(package_dir, ARCH, "int8", CROP)
    encoder = _int8_encoder(tiny_loaded.model.backbone.encoder)
    if not package.is_file():
        AotiBackbone(encoder, torch.float32, CROP, package, "int8")
    library = aoti_backend._Library
    direct = AotiBackbone(encoder, torch.float32, CROP, package, "int8")
    assert isinstance(direct.runner, library) and direct.from_cache

    def refuse(*args, **kwargs):
        raise TypeError("another torch's loader")

    monkeypatch.setattr(aoti_backend, "_Library", refuse)
    public = AotiBackbone(encoder, torch.float32, CROP, package, "int8")
    assert not isinstance(public.runner, library) and public.from_cache
    assert torch.equal(public(_crop(8)), direct(_crop(8)))
