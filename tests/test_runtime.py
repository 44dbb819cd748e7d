"""Backbone backends agree with each other on the same weights; selection and caching behave."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sam3dbody_gui.errors import DeviceError, ModelFolderError, UserError
from sam3dbody_gui.model.model_folder import find_model_files
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.runtime.backbones.compiled_backend import CompileOptions, CompiledBackbone, compile_cache_path
from sam3dbody_gui.runtime.backbones.pt2_backend import ExportedProgramBackbone
from sam3dbody_gui.runtime.backbones.pytorch_backend import PyTorchBackbone
from sam3dbody_gui.runtime.backbones.plan import BackendRequest, plan_backend

ARCH = "sam3dbody_gui_tiny"


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    return torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def eager_features(tiny_loaded, crop) -> torch.Tensor:
    with torch.no_grad():
        return PyTorchBackbone(tiny_loaded.model.backbone.encoder)(crop)


def test_pt2_export_matches_eager(tiny_model_dir, crop, eager_features):
    backend = ExportedProgramBackbone(tiny_model_dir / "exports" / "backbone.pt2", torch.device("cpu"))
    assert backend.input_shape == (1, 3, 512, 512)
    with torch.no_grad():
        assert relative_difference(backend(crop), eager_features) < 1e-5


def test_onnx_export_matches_eager(tiny_model_dir, crop, eager_features):
    """The ONNX file (what TensorRT would build from), run by onnxruntime; names discovered."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tiny_model_dir / "exports" / "backbone.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.shape == [1, 3, 512, 512] and out.shape == [1, 64, 32, 32]
    features = session.run([out.name], {inp.name: crop.numpy()})[0]
    assert relative_difference(torch.from_numpy(features), eager_features) < 1e-5


def test_eager_bf16_within_precision_tolerance(tiny_loaded, crop, eager_features):
    encoder = tiny_loaded.model.backbone.encoder
    bf16 = PyTorchBackbone(type(encoder)(encoder.arch).to(torch.bfloat16))
    bf16.encoder.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        assert relative_difference(bf16(crop), eager_features) < 3e-2


def test_compiled_backbone_matches_eager_and_second_start_loads_from_cache(tiny_model_dir, tiny_loaded, crop,
                                                                           eager_features, tmp_path):
    files = find_model_files(tiny_model_dir)
    req = BackendRequest(kind="compiled", precision="fp32", cache_dir=tmp_path, max_autotune=False)
    plan = plan_backend(req, files, torch.device("cpu"), ARCH, 512)
    assert plan.kind == "compiled" and plan.compile_needed
    cache = compile_cache_path(tmp_path, ARCH, "fp32", torch.device("cpu"), 512, CompileOptions(False))
    first = CompiledBackbone(tiny_loaded.model.backbone.encoder, torch.float32, torch.device("cpu"), 512, cache,
                             CompileOptions(False))
    assert not first.from_cache and cache.is_file()
    torch._dynamo.reset()  # forget in-process compiled code: as a new start would
    second = CompiledBackbone(tiny_loaded.model.backbone.encoder, torch.float32, torch.device("cpu"), 512, cache,
                              CompileOptions(False))
    assert second.from_cache
    with torch.no_grad():
        assert relative_difference(first(crop), eager_features) < 1e-4
        assert relative_difference(second(crop), eager_features) < 1e-4
    assert not plan_backend(req, files, torch.device("cpu"), ARCH, 512).compile_needed


def test_auto_on_cpu_is_eager_in_the_cpu_plans_precision_checked_when_fast(tiny_model_dir, tmp_path):
    from sam3dbody_gui.runtime.cpu_features import this_cpu_plan

    cpu = this_cpu_plan()  # the choice per CPU: tests/test_cpu_fast_path.py
    plan = plan_backend(BackendRequest(cache_dir=tmp_path), find_model_files(tiny_model_dir), torch.device("cpu"), ARCH, 512)
    assert (plan.kind, plan.precision, plan.checked) == ("pytorch", cpu.backbone, cpu.fast)
    assert cpu.reason in plan.reason
    explicit = plan_backend(BackendRequest(precision="fp32", cache_dir=tmp_path), find_model_files(tiny_model_dir),
                            torch.device("cpu"), ARCH, 512)
    assert (explicit.kind, explicit.precision, explicit.checked) == ("pytorch", "fp32", False)


def test_tensorrt_missing_is_a_clear_message(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where it is installed
    from sam3dbody_gui.runtime.backbones.tensorrt_backend import import_tensorrt

    with pytest.raises(DeviceError, match="pip install tensorrt-cu12"):
        import_tensorrt()
    with pytest.raises(DeviceError):
        build_pipeline(tiny_model_dir, "cpu", backend="tensorrt")


def test_missing_or_corrupt_pt2_is_a_clear_message(tiny_model_dir, tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        ExportedProgramBackbone(tmp_path / "nope.pt2", torch.device("cpu"))
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFolderError, match="not a loadable"):
        ExportedProgramBackbone(bad, torch.device("cpu"))


def test_unknown_backend_name_is_refused(tiny_model_dir):
    with pytest.raises(UserError, match="unknown backend"):
        build_pipeline(tiny_model_dir, "cpu", backend="magic")


def test_pipeline_with_pt2_backend_gives_the_same_mesh(tiny_model_dir, tiny_loaded):
    from sam3dbody_gui.pipeline.pipeline import Pipeline

    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    box = (50, 20, 300, 290)
    eager = Pipeline(tiny_loaded, PyTorchBackbone(tiny_loaded.model.backbone.encoder)).run(image, box)
    pt2 = build_pipeline(tiny_model_dir, "cpu", backend="pt2").run(image, box)
    assert pt2.backend.startswith("pt2")
    deviation_mm = np.linalg.norm(pt2.vertices_camera - eager.vertices_camera, axis=1) * 1000
    assert deviation_mm.max() < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_decoder_matches_eager_and_follows_new_inputs(tiny_model_dir):
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.runtime.decoders.decoder_graph import graph_body_decoder

    loaded = load_model_folder(tiny_model_dir, device="cuda")
    graphed = graph_body_decoder(loaded.model, 512, torch.device("cuda"))
    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    eager_pipe = build_pipeline(tiny_model_dir, "cuda", "fp32", backend="pytorch", cuda_graph=False)
    graph_pipe = build_pipeline(tiny_model_dir, "cuda", "fp32", backend="pytorch", cuda_graph=True)
    for box in ((100, 50, 400, 470), (300, 10, 600, 300)):  # replays must follow each new input
        a, b = eager_pipe.run(image, box), graph_pipe.run(image, box)
        assert np.abs(a.vertices_camera - b.vertices_camera).max() < 1e-4
    assert graph_pipe.decoder_label == "CUDA graph" and graphed is not None


def test_fp8_linear_tracks_the_bf16_linear():
    """Per-channel weight / per-token activation e4m3 scaling: a few % error, never a blow-up."""
    from sam3dbody_gui.runtime.backbones.fp8 import Fp8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 512)
    x = torch.randn(7, 33, 256) * torch.logspace(-2, 2, 33)[None, :, None]  # tokens of very different scales
    try:
        got = Fp8Linear(linear)(x.to(torch.bfloat16)).float()
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"torch._scaled_mm unavailable here: {exc}")
    want = linear(x)
    per_token = (got - want).norm(dim=-1) / want.norm(dim=-1)
    assert per_token.max() < 0.08


def test_fp8_refused_without_a_capable_gpu(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceError, match="fp8 needs"):
        build_pipeline(tiny_model_dir, "cpu", "fp8", backend="pytorch")


def test_fp8_calibration_fixes_one_scale_per_layer_close_to_per_token_scaling(tiny_loaded):
    """Static (calibrated) FP8 activation scales: every layer gets one, and the features stay
    close to the per-token-scaled ones on a crop that was not in the calibration set."""
    import copy

    from sam3dbody_gui.runtime.backbones.fp8 import Fp8Linear, calibrate_fp8_, quantize_backbone_fp8
    from sam3dbody_gui.pipeline.calibration import calibration_crops

    encoder = quantize_backbone_fp8(copy.deepcopy(tiny_loaded.model.backbone.encoder))
    crop = next(iter(calibration_crops(tiny_loaded.config, torch.device("cpu"))))
    other = torch.roll(crop, shifts=100, dims=-1)
    try:
        with torch.inference_mode():
            per_token = encoder(other.to(torch.bfloat16)).float()
            used = calibrate_fp8_(encoder, calibration_crops(tiny_loaded.config, torch.device("cpu")))
            static = encoder(other.to(torch.bfloat16)).float()
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"torch._scaled_mm unavailable here: {exc}")
    layers = [m for m in encoder.modules() if isinstance(m, Fp8Linear)]
    assert used == 8 and layers and all(m.calibrated for m in layers)
    assert relative_difference(static, per_token) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled decoder pass is captured on CUDA")
def test_compiled_decoder_matches_eager_and_loads_from_its_cache(tiny_model_dir, tmp_path):
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.runtime.decoders.compiled_decoder import CompiledBodyDecoder
    from sam3dbody_gui.runtime.decoders.decoder_graph import plausible_camera

    loaded = load_model_folder(tiny_model_dir, device="cuda")
    dev = torch.device("cuda")
    first = CompiledBodyDecoder(loaded.model, 512, dev, tmp_path)
    assert not first.from_cache and first.cache_file.is_file()
    features = torch.randn(1, loaded.model.feature_dim, 32, 32, device=dev)
    cam = plausible_camera(512, dev)
    cam.box_center[0] += 30.0
    with torch.inference_mode():
        want = loaded.model.decode_body(features, cam)
        got = first(features, cam)
        for key in ("pred_vertices", "pred_keypoints_2d", "pred_cam_t"):
            assert relative_difference(got[key], want[key]) < 1e-4
    assert CompiledBodyDecoder(loaded.model, 512, dev, tmp_path).from_cache
    pipe = build_pipeline(tiny_model_dir, "cuda", "fp32", backend="pytorch", compile_decoder=True, cache_dir=tmp_path)
    assert pipe.decoder_label == "compiled + CUDA graph, bf16" and pipe.cropper.status == "compiled"


def test_agreement_check_accepts_equal_passes_and_names_the_key_that_differs():
    from sam3dbody_gui.runtime.decoders.decoder_graph import check_agreement

    want = {"a": torch.ones(3), "b": torch.tensor([1.0, -2.0])}
    check_agreement({"a": torch.ones(3) * (1 + 1e-6), "b": want["b"].clone()}, want, ("a", "b"), 1e-4, "pass")
    with pytest.raises(RuntimeError, match=r"the compiled decoder differs from the eager one \(b: rel"):
        check_agreement({"a": want["a"], "b": torch.tensor([1.0, float("nan")])}, want, ("a", "b"), 1e-4,
                        "compiled decoder")


def test_auto_plan_on_cuda_is_covered_on_the_cpu(tiny_model_dir, tmp_path, monkeypatch):
    """The CUDA branch of `auto`, with the GPU's answers forced: no TensorRT and nothing compiled
    → eager bf16; a cached compiled backbone → compiled, fp8 where the GPU has FP8 tensor cores."""
    from sam3dbody_gui.model.model_folder import find_model_files
    from sam3dbody_gui.runtime.backbones import plan as backend_plan
    from sam3dbody_gui.runtime.backbones.tensorrt_import import TensorRTStatus

    files = find_model_files(tiny_model_dir)
    cuda = torch.device("cuda")
    monkeypatch.setattr(backend_plan, "tensorrt_status", lambda: TensorRTStatus(None, None, "TensorRT is not installed"))
    monkeypatch.setattr(backend_plan, "fp8_supported", lambda device: True)
    cache_files = {}
    monkeypatch.setattr(backend_plan, "_compile_cache",
                        lambda req, device, arch, precision, crop: cache_files.setdefault(
                            precision, tmp_path / f"backbone-{precision}.compile-cache"))
    req = backend_plan.BackendRequest(cache_dir=tmp_path)
    plan = backend_plan.plan_backend(req, files, cuda, "sam3dbody_gui_tiny", 512)
    assert (plan.kind, plan.precision) == ("pytorch", "bf16")
    assert "CUDA without TensorRT or a cached compiled backbone" in plan.reason and "not installed" in plan.reason
    (tmp_path / "backbone-fp8.compile-cache").write_bytes(b"x")
    plan = backend_plan.plan_backend(req, files, cuda, "sam3dbody_gui_tiny", 512)
    assert (plan.kind, plan.precision) == ("compiled", "fp8") and "cached" in plan.reason
    monkeypatch.setattr(backend_plan, "fp8_supported", lambda device: False)  # e.g. an A100: bf16
    (tmp_path / "backbone-bf16.compile-cache").write_bytes(b"x")
    plan = backend_plan.plan_backend(req, files, cuda, "sam3dbody_gui_tiny", 512)
    assert (plan.kind, plan.precision) == ("compiled", "bf16")
