"""The synthetic INT8 QDQ `.pt2` (the published `.pt2`'s kind) and the fast `.pt2` paths: lowered
onto int8 GEMMs, compiled — each checked against the program run as it is."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch

from sam3dbody_gui.errors import ModelFolderError
from sam3dbody_gui.runtime.backbones import pt2_fast, pt2_lowering
from sam3dbody_gui.runtime.backbones.pt2_backend import ExportedProgramBackbone
from sam3dbody_gui.synthetic.backbone_exports import (INT8_WEIGHT_LEVELS, QdqLinear, export_backbone_pt2_int8,
                                                      quantize_backbone_qdq_int8, synthetic_calibration_crops)

CPU = torch.device("cpu")
QD = torch.ops.quantized_decomposed


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).pow(2).mean().sqrt() / b.float().pow(2).mean().sqrt())


@pytest.fixture(scope="module")
def encoder(tiny_loaded):
    return tiny_loaded.model.backbone.encoder


@pytest.fixture(scope="module")
def int8_pt2(encoder, tmp_path_factory):
    return export_backbone_pt2_int8(encoder, tmp_path_factory.mktemp("pt2") / "backbone_int8.pt2", 512)


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    return synthetic_calibration_crops(512, count=1, seed=7)[0]  # not one of the calibration crops


@pytest.fixture(scope="module")
def as_is(int8_pt2, crop) -> torch.Tensor:
    return ExportedProgramBackbone(int8_pt2, CPU)(crop).clone()


def test_int8_pt2_round_trips_with_the_qdq_graph_pt2e_writes(int8_pt2, encoder):
    program = torch.export.load(str(int8_pt2))
    ops = Counter(n.target for n in program.graph.nodes if n.op == "call_function")
    linears = sum(isinstance(m, torch.nn.Linear) for b in encoder.blocks for m in b.modules())
    assert ops[QD.quantize_per_tensor.default] == ops[QD.dequantize_per_tensor.default] == linears
    assert ops[QD.dequantize_per_channel.default] == linears
    int8 = {k: v for k, v in program.state_dict.items() if v.dtype == torch.int8}
    assert len(int8) == linears and all(int(v.abs().max()) <= INT8_WEIGHT_LEVELS for v in int8.values())
    # The patch embedding and the norms stay float, as in the published export.
    assert program.state_dict["patch_embed.proj.weight"].dtype == torch.float32
    assert program.state_dict["blocks.0.norm1.weight"].dtype == torch.float32


def test_int8_pt2_tracks_the_float_backbone(encoder, as_is, crop):
    with torch.no_grad():
        want = copy.deepcopy(encoder).float()(crop)
    assert as_is.shape == want.shape
    assert 0 < relative(as_is, want) < 0.1  # quantised (not identical), yet close


def test_qdq_linear_quantises_like_its_formula():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 48)
    qdq = QdqLinear(linear)
    qdq.input_scale = 0.02
    x = torch.randn(5, 32)
    q = torch.clamp(torch.round(x / 0.02), -128, 127) * 0.02
    w = qdq.weight_int8.float() * qdq.weight_scale[:, None]
    assert torch.allclose(qdq(x), q @ w.t() + linear.bias.detach(), atol=1e-5)
    assert float((w - linear.weight.detach()).abs().max()) <= float(qdq.weight_scale.max()) / 2 + 1e-7


def test_lowered_pt2_equals_the_program_and_puts_every_linear_on_int8_gemms(int8_pt2, as_is, crop):
    """Whole network: level flips only (see pt2_fast.py), far below the int8 error itself."""
    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered")
    assert fast.fast.steps == ["lowered"] and "lowered" in fast.info.precision
    assert fast.fast.checks["lowered"].ok and "int8 GEMMs" in fast.fast.describe()
    got = fast(crop)
    assert relative(got, as_is) < pt2_fast.MAX_TOLERANCE and rms(got, as_is) < pt2_fast.RMS_TOLERANCE


def test_one_lowered_linear_equals_its_qdq_linear_to_fp32_rounding():
    """Same int8 values on both sides; the int32 sum is exact where the fp32 one rounds."""
    torch.manual_seed(2)
    qdq = QdqLinear(torch.nn.Linear(256, 96))
    x = torch.randn(40, 256) * 3
    qdq.input_scale = float(x.abs().max()) / 127
    program = torch.export.export(qdq, (x,)).module()
    lowered, report = pt2_lowering.lower_qdq_linears(program, CPU)
    assert (report.lowered, report.left) == (1, 0)
    assert not any("quantize" in str(n.target) for n in lowered.graph.nodes)  # no QDQ left in the graph
    want = program(x)
    assert relative(lowered(x), want) < 1e-5


def test_lowering_leaves_float_linears_and_says_so(tiny_model_dir):
    program = torch.export.load(str(tiny_model_dir / "exports" / "backbone.pt2"))  # the fp32 export
    lowered, report = pt2_lowering.lower_qdq_linears(program.module(), CPU)
    assert report.lowered == 0 and report.left > 0 and "input not dequantized" in report.describe()
    fast = ExportedProgramBackbone(tiny_model_dir / "exports" / "backbone.pt2", CPU, speed="lowered")
    assert fast.fast.steps == [] and "no int8 QDQ linears" in fast.fast.describe()


def test_int8_gemm_linear_handles_a_zero_point():
    torch.manual_seed(1)
    weight = torch.randint(-127, 128, (24, 16), dtype=torch.int8)
    scale_w = torch.rand(24) * 0.01 + 1e-3
    x = torch.randn(20, 16)
    layer = pt2_lowering.Int8GemmLinear(weight, scale_w, 0.03, 5, -128, 127, torch.float32)
    q = torch.clamp(torch.round(x * (1 / 0.03)) + 5, -128, 127)
    want = ((q - 5) * 0.03) @ (weight.float() * scale_w[:, None]).t()
    assert torch.allclose(layer(x), want, atol=1e-5)


def test_bf16_attention_runs_every_attention_in_bf16_and_stays_close(int8_pt2, as_is, crop):
    program = torch.export.load(str(int8_pt2)).module()
    changed, count = pt2_lowering.attention_in_bf16(program)
    sdpa = [n for n in changed.graph.nodes if n.target == pt2_lowering.SDPA]
    assert count == len(sdpa) == 2  # the tiny backbone's two blocks
    assert all(a.meta.get("val") is None and a.target == "to" and a.args[1] == torch.bfloat16 for n in sdpa
               for a in n.args[:3])
    with torch.no_grad():
        assert rms(changed(crop), as_is) < 0.05  # bf16 rounding through a random tiny model
    # Through the backend it is kept exactly when its check passes, and said either way.
    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", half_attention=True)
    assert ("bf16 attention" in fast.fast.steps) == fast.fast.checks["bf16 attention"].ok
    assert "bf16" in fast.fast.describe()


def test_a_wrong_rewrite_is_dropped_with_a_message(int8_pt2, as_is, crop, monkeypatch):
    real = pt2_lowering.Int8GemmLinear.forward
    monkeypatch.setattr(pt2_lowering.Int8GemmLinear, "forward", lambda self, x, bias=None: real(self, x, bias) * 1.5)
    said = []
    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", progress=said.append)
    assert fast.fast.steps == [] and any("lowered dropped" in m for m in said)
    assert torch.equal(fast(crop), as_is)  # the program as it is runs instead


def test_a_failing_rewrite_falls_back(int8_pt2, as_is, crop, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no int8 kernel here")

    monkeypatch.setattr(pt2_fast, "lower_qdq_linears", broken)
    said = []
    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="compiled", progress=said.append)
    assert fast.fast.steps == ["compiled"] and any("no int8 kernel here" in m for m in said)
    assert relative(fast(crop), as_is) < 1e-4  # the program itself, compiled: fp32 rounding only


def test_compiled_lowered_pt2_equals_the_program(int8_pt2, as_is, crop):
    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="compiled")
    assert fast.fast.steps == ["lowered", "compiled"]
    eager_lowered = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered")
    for image in (crop, torch.roll(crop, 64, dims=-1)):  # the compiled run follows each new input
        got = fast(image).clone()
        assert rms(got, eager_lowered(image)) < pt2_fast.RMS_TOLERANCE
        assert relative(got, as_is if image is crop else ExportedProgramBackbone(int8_pt2, CPU)(image)) \
            < pt2_fast.MAX_TOLERANCE


def test_unknown_speed_and_corrupt_file_are_clear_messages(int8_pt2, tmp_path):
    with pytest.raises(ValueError, match="unknown .pt2 speed"):
        ExportedProgramBackbone(int8_pt2, CPU, speed="warp")
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(int8_pt2.read_bytes()[:1000])  # a truncated archive
    with pytest.raises(ModelFolderError, match="not a loadable"):
        ExportedProgramBackbone(bad, CPU, speed="compiled")


def test_calibration_sets_one_scale_per_linear(encoder):
    quantized = quantize_backbone_qdq_int8(copy.deepcopy(encoder), synthetic_calibration_crops(512, count=2))
    layers = [m for m in quantized.modules() if isinstance(m, QdqLinear)]
    assert layers and all(m.input_scale and m.input_scale > 0 for m in layers)
    assert len({m.input_scale for m in layers}) > 1


def test_the_backbone_built_alone_is_the_synthetic_models_backbone(encoder):
    from sam3dbody_gui.synthetic.backbone_exports import build_synthetic_backbone
    from tests.conftest import TINY_SEED

    from sam3dbody_gui.synthetic.make import synthetic_config

    alone = build_synthetic_backbone(synthetic_config("tiny").backbone_type, TINY_SEED).state_dict()
    folder = encoder.state_dict()
    assert alone.keys() == folder.keys()
    assert all(torch.equal(alone[k].float(), folder[k].float()) for k in folder)


@pytest.fixture(scope="module")
def mesh_check(tiny_loaded):
    from sam3dbody_gui.pipeline.calibration import mesh_check_for

    return mesh_check_for(tiny_loaded)


def test_with_the_pipelines_mesh_check_each_step_is_judged_by_the_mesh(int8_pt2, mesh_check, monkeypatch):
    from sam3dbody_gui.runtime.backbones.cpu_check import FidelityVerdict

    fast = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", mesh_check=mesh_check)
    verdict = fast.fast.checks["lowered"]
    assert isinstance(verdict, FidelityVerdict) and verdict.ok and fast.fast.steps == ["lowered"]
    assert "mesh vs the program" in fast.fast.describe()
    # A wrong rewrite moves the mesh far past the limits and is dropped under this judge too.
    real = pt2_lowering.Int8GemmLinear.forward
    monkeypatch.setattr(pt2_lowering.Int8GemmLinear, "forward", lambda self, x, bias=None: real(self, x, bias) * 1.5)
    wrong = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", mesh_check=mesh_check)
    assert wrong.fast.steps == [] and not wrong.fast.checks["lowered"].ok
    assert wrong.fast.checks["lowered"].mean_mm > 10 * verdict.mean_mm


def test_the_cpu_pipeline_runs_an_int8_pt2_lowered(tiny_model_dir, int8_pt2):
    from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
    from sam3dbody_gui.pipeline.build import build_pipeline

    said: list[str] = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", backend="pt2", backbone_file=int8_pt2, progress=said.append)
    assert pipe.backbone.info.name == "pt2" and pipe.backbone.info.precision.endswith("(lowered)")
    item = benchmark_images()[0]
    assert np.isfinite(pipe.run(item.image, item.box).vertices).all()


def test_a_later_start_applies_the_steps_as_judged_before(int8_pt2, mesh_check, crop, tmp_path, monkeypatch):
    from sam3dbody_gui.runtime.backbones.cpu_check import FidelityVerdict

    store = pt2_fast.StepVerdicts(tmp_path / "pt2-check.json")
    first = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", mesh_check=mesh_check, verdicts=store)
    assert store.get("lowered") == first.fast.checks["lowered"] and store.get("lowered").ok
    # The next start needs no reference run of the program: the judge is never called.
    monkeypatch.setattr(pt2_fast, "_judge", lambda *a, **k: pytest.fail("checked again"))
    later = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", mesh_check=mesh_check, verdicts=store)
    assert later.fast.steps == ["lowered"] and "checked at an earlier start" in later.fast.describe()
    assert torch.equal(later(crop), first(crop))
    # A step that missed is left out without trying it again.
    store.put("lowered", FidelityVerdict(9.0, 40.0))
    missed = ExportedProgramBackbone(int8_pt2, CPU, speed="lowered", mesh_check=mesh_check, verdicts=store)
    assert missed.fast.steps == [] and "missed its check at an earlier start" in missed.fast.describe()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_the_pt2_named_plain_cuda_compiles(int8_pt2, as_is, crop):
    """The H200 (session 9): a program moved to plain `cuda` kept that name in its device
    asserts, fake tensors compared it with `cuda:0`, and every compile failed (the speed-up then
    ran uncompiled and said so). The backend moves it to the indexed device."""
    fast = ExportedProgramBackbone(int8_pt2, torch.device("cuda"), speed="compiled")
    assert fast.fast.steps == ["lowered", "compiled"], fast.fast.describe()
    assert relative(fast(crop.cuda()).cpu(), as_is) < pt2_fast.MAX_TOLERANCE


def test_the_device_a_program_moves_to_is_indexed():
    from sam3dbody_gui.runtime.backbones.pt2_backend import indexed_device

    assert indexed_device(torch.device("cpu")) == torch.device("cpu")
    assert indexed_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    if torch.cuda.is_available():
        assert indexed_device(torch.device("cuda")) == torch.device("cuda", torch.cuda.current_device())
