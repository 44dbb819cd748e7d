"""The CPU's fast backbone paths (issue 15): which one `auto` picks from the CPU's units, that it
stays within the fidelity limit against fp32, and that a failed check falls back to fp32."""

from __future__ import annotations

import copy
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import (the Settings dialog test), as test_ui.py

import numpy as np
import pytest
import torch
from torch import nn

from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.runtime import cpu_features
from sam3dbody_gui.runtime.backbones import cpu_check
from sam3dbody_gui.runtime.backbones.int8_cpu import Int8DynamicLinear
from sam3dbody_gui.runtime.cpu_features import CpuFeatures, CpuPlan, cpu_plan

ZEN5 = {"avx2", "avx_vnni", "avx512_vnni", "avx512_bf16"}  # this session's CPU (AMD EPYC, no AMX)
SAPPHIRE_RAPIDS = {"avx2", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_bf16"}
# machine, hardware, ATen capability, oneDNN, ONEDNN_MAX_CPU_ISA → precision, the unit the reason names
MACHINES = {
    "AMX (Sapphire Rapids)": ("x86_64", SAPPHIRE_RAPIDS, "AVX512", True, "", "bf16", "AMX-BF16"),
    "AVX-512 VNNI + BF16 (Zen 4/5)": ("x86_64", ZEN5, "AVX512", True, "", "int8", "AVX512-VNNI"),
    "AVX512-BF16 without VNNI": ("x86_64", {"avx2", "avx512_bf16"}, "AVX512", True, "", "bf16", "AVX512-BF16"),
    "AVX-VNNI on AVX2 (Alder Lake)": ("x86_64", {"avx2", "avx_vnni"}, "AVX2", True, "", "int8", "AVX-VNNI"),
    "AVX2 only (Haswell)": ("x86_64", {"avx2"}, "AVX2", True, "", "int8", "AVX2"),
    "Zen 5 run as AVX2 (CI's golden re-run)": ("x86_64", ZEN5, "AVX2", True, "AVX2", "int8", "AVX2"),
    "AMX capped below AMX by oneDNN": ("x86_64", SAPPHIRE_RAPIDS, "AVX512", True, "AVX512_CORE_VNNI", "int8",
                                       "AVX512-VNNI"),
    "SSE only": ("x86_64", set(), "DEFAULT", True, "", "fp32", "no bf16 or int8 matrix units"),
    "no oneDNN": ("x86_64", ZEN5, "AVX512", False, "", "fp32", "oneDNN"),
    "Apple silicon": ("arm64", set(), "DEFAULT", True, "", "fp32", "arm64"),
    "ARM server": ("aarch64", set(), "SVE256", True, "", "fp32", "aarch64"),
}


@pytest.mark.parametrize("machine", list(MACHINES))
def test_the_plan_follows_the_cpu_units_and_names_the_one_it_rests_on(machine):
    arch, units, capability, onednn, cap, precision, named = MACHINES[machine]
    features = CpuFeatures(arch, frozenset(units), capability, onednn, cap)
    plan = cpu_plan(features)
    assert plan == cpu_plan(CpuFeatures(arch, frozenset(units), capability, onednn, cap))  # deterministic
    assert (plan.backbone, plan.decoder) == (precision, "fp32")
    assert plan.reason.startswith(f"{precision}: ") and named in plan.reason
    assert "\n" not in plan.reason and plan.fast == (precision != "fp32")


def test_detection_never_raises_and_an_unknown_cpu_gets_fp32(monkeypatch):
    here = cpu_features.detect()
    assert here.usable() <= here.hardware and cpu_plan(here).backbone in ("fp32", "int8", "bf16")
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "riscv64")
    assert cpu_plan(cpu_features.detect()).backbone == "fp32"


def test_int8_linear_is_close_to_fp32_and_keeps_the_masked_key_bias():
    from sam3dbody_gui.model.backbone import LinearKeyMaskedBias

    g = torch.Generator().manual_seed(0)
    linear = LinearKeyMaskedBias(96, 3 * 96)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(288, 96, generator=g) * 0.05)
        linear.bias.copy_(torch.randn(288, generator=g))
    x = torch.randn(2, 37, 96, generator=g) * torch.logspace(-1, 1, 37)[None, :, None]  # tokens of mixed scale
    want = linear(x)
    got = Int8DynamicLinear(linear)(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    rel = (got - want).norm(dim=-1) / want.norm(dim=-1)
    assert rel.max() < 0.02  # per-token scales: the small tokens keep their precision (measured ~0.5 %)
    bias_only = Int8DynamicLinear(linear)(torch.zeros(1, 96))
    assert torch.allclose(bias_only, linear.bias * linear.bias_mask)  # the key third of the bias stays 0


@pytest.mark.parametrize("levels", [127.0, 63.0])
def test_int8_weights_worked_in_place_are_the_plain_formula_to_the_bit(levels):
    """Int8DynamicLinear quantises in a reused buffer (opening the backbone faster): the same
    int8 weights and scales as round(w / (max|w| / levels)), clamped — with the shared buffer,
    without one, and with one too small to use; a zero row keeps its floor scale."""
    g = torch.Generator().manual_seed(3)
    linear = torch.nn.Linear(160, 96)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(96, 160, generator=g) * 0.05)
        linear.weight[5].zero_()
        linear.weight[7, 3] = 1.0  # one large weight: its row's scale comes from it
    w = linear.weight.detach()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / levels
    want = torch.round(w / scale[:, None]).clamp(-levels, levels).to(torch.int8)
    for scratch in (None, torch.full((96 * 160 + 5,), float("nan")), torch.empty(10)):
        got = Int8DynamicLinear(linear, levels, scratch)
        assert torch.equal(got.weight_int8, want) and torch.equal(got.weight_scale, scale)
    assert int(want[7].abs().max()) == int(levels) and not want[5].any()


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_fast_backbone_features_stay_close_and_undo_restores_fp32_exactly(tiny_loaded, precision):
    encoder = tiny_loaded.model.backbone.encoder
    copy = type(encoder)(encoder.arch)
    copy.load_state_dict(encoder.state_dict())
    before = {k: v.clone() for k, v in copy.state_dict().items()}
    crop = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = copy(crop)
        fast = cpu_check.FastEncoder(copy, precision)
        got = copy(crop.to(fast.input_dtype)).float()
    # Measured on the tiny model: 0.8 % (int8), 0.6 % (bf16); the full-size model 3.2 % / 1.6 %.
    assert ((got - want).norm() / want.norm()) < 0.05
    fast.undo()
    after = copy.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) and after[k].dtype == before[k].dtype
                                             for k in before)


def _mesh_deviation_mm(pipe, reference, items) -> tuple[float, float]:
    means, maxes = [], []
    for item in items:
        got, want = pipe.run(item.image, item.box), reference.run(item.image, item.box)
        mm = np.linalg.norm(got.vertices_camera - want.vertices_camera, axis=1) * 1000.0
        means.append(mm.mean())
        maxes.append(mm.max())
    return float(np.mean(means)), float(np.max(maxes))


@pytest.fixture(scope="module")
def fp32_pipe(tiny_model_dir):
    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


def test_auto_on_this_cpu_opens_its_fast_path_within_the_fidelity_limit(tiny_model_dir, fp32_pipe, tmp_path):
    plan = cpu_features.this_cpu_plan()
    if not plan.fast:
        pytest.skip(f"this CPU has no fast path: {plan.reason}")
    said = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=said.append)
    assert pipe.backbone.info.precision == plan.backbone
    assert any(plan.reason in m for m in said) and any("checking the" in m for m in said)
    # The int8 path includes the decoder's image-token k/v projections (and the check measured them).
    assert ("int8 image k/v" in pipe.decoder_label) == (plan.backbone == "int8")
    mean_mm, max_mm = _mesh_deviation_mm(pipe, fp32_pipe, benchmark_images()[:2])
    assert mean_mm <= cpu_check.FIDELITY_MEAN_MM and max_mm <= cpu_check.FIDELITY_MAX_MM
    # The verdict is kept: a second start does not run the fp32 reference again.
    again = []
    build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=again.append)
    assert not any("checking the" in m for m in again)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_auto_falls_back_to_fp32_when_the_check_fails(tiny_model_dir, fp32_pipe, tmp_path, monkeypatch, precision):
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan(precision, "fp32", f"{precision}: forced by the test"))
    monkeypatch.setattr(cpu_check, "FIDELITY_MEAN_MM", -1.0)  # no path can pass
    said = []
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path, progress=said.append)
    assert pipe.backbone.info.precision == "fp32"
    assert any("missed the fidelity check" in m for m in said)
    encoder = pipe.backbone.encoder
    assert not any(isinstance(m, Int8DynamicLinear) for m in [*encoder.modules(), *pipe.model.modules()])
    assert all(p.dtype == torch.float32 for p in encoder.parameters())
    item = benchmark_images()[0]
    got, want = pipe.run(item.image, item.box), fp32_pipe.run(item.image, item.box)
    np.testing.assert_array_equal(got.vertices, want.vertices)  # the very fp32 weights, not a round trip
    # The failed verdict is kept too: the next start goes straight to fp32.
    again = []
    assert build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path,
                          progress=again.append).backbone.info.precision == "fp32"
    assert not any("checking the" in m for m in again)


def test_an_explicit_precision_is_not_checked(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_check, "FIDELITY_MEAN_MM", -1.0)
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="int8", backend="pytorch", cache_dir=tmp_path)
    assert pipe.backbone.info.precision == "int8"
    assert any(isinstance(m, Int8DynamicLinear) for m in pipe.backbone.encoder.modules())
    assert "int8 image k/v" in pipe.decoder_label


def test_bench_cpu_table_shows_fp32_and_the_fast_path(tiny_model_dir, tmp_path):
    import json

    from sam3dbody_gui.bench_cpu import run_cpu_paths

    out = tmp_path / "cpu.json"
    text = run_cpu_paths(tiny_model_dir, out, progress=lambda m: None, images=2,
                         configs=["pytorch:fp32", "pytorch:int8"], cache_dir=tmp_path)
    rows = {r["config"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["pytorch:fp32"]["mesh_max_mm"] == 0.0
    assert 0.0 < rows["pytorch:int8"]["mesh_mean_mm"] <= cpu_check.FIDELITY_MEAN_MM
    assert cpu_features.this_cpu_plan().reason in text
    for r in rows.values():
        assert f"{r['config']:24s} {r['backbone_ms']:9.0f}" in text


def test_settings_dialog_says_what_auto_picks_on_this_cpu(qtbot, monkeypatch):
    from sam3dbody_gui.ui.settings_dialog import SettingsDialog
    from sam3dbody_gui.ui.state import Settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: this CPU has AVX512-VNNI (test)"))
    d = SettingsDialog(Settings(device="cpu"))
    qtbot.addWidget(d)
    assert "int8: this CPU has AVX512-VNNI (test)" in d.precision_note.text()
    assert "checked against fp32" in d.precision_note.text()
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("fp32", "fp32", "fp32: no bf16 or int8 matrix units (x)"))
    d.device.setCurrentIndex(d.device.findData("auto"))
    d._update_precision_note()
    assert "fp32: no bf16 or int8 matrix units" in d.precision_note.text()
    assert "checked" not in d.precision_note.text()


def test_linear_layers_outside_the_blocks_stay_fp32(tiny_loaded):
    from sam3dbody_gui.runtime.backbones.int8_cpu import quantize_backbone_int8, restore_linears

    encoder = tiny_loaded.model.backbone.encoder
    copy = type(encoder)(encoder.arch)
    copy.load_state_dict(encoder.state_dict())
    swaps = quantize_backbone_int8(copy)
    per_block = sum(isinstance(m, nn.Linear) for m in encoder.blocks[0].modules())
    assert len(swaps) == per_block * len(encoder.blocks) and isinstance(copy.patch_embed.proj, nn.Conv2d)
    restore_linears(swaps)
    assert not any(isinstance(m, Int8DynamicLinear) for m in copy.modules())


def test_auto_on_the_cpu_takes_the_compiled_fast_path_once_one_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    from sam3dbody_gui.model.model_folder import find_model_files
    from sam3dbody_gui.runtime.backbones.compiled_backend import CompileOptions, compile_cache_path
    from sam3dbody_gui.runtime.backbones.plan import BackendRequest, plan_backend

    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    files, cpu, arch = find_model_files(tiny_model_dir), torch.device("cpu"), "sam3dbody_gui_tiny"
    eager = plan_backend(BackendRequest(cache_dir=tmp_path), files, cpu, arch, 512)
    assert (eager.kind, eager.precision, eager.checked) == ("pytorch", "int8", True)
    cache = compile_cache_path(tmp_path, arch, "int8", cpu, 512, CompileOptions())
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"only its presence is checked here")
    compiled = plan_backend(BackendRequest(cache_dir=tmp_path), files, cpu, arch, 512)
    assert (compiled.kind, compiled.precision, compiled.checked) == ("compiled", "int8", True)
    assert "int8: forced by the test" in compiled.reason and "cached" in compiled.reason


def test_without_vnni_the_int8_weights_use_seven_bits(monkeypatch):
    from sam3dbody_gui.runtime.backbones import int8_cpu

    linear = nn.Linear(64, 32)
    monkeypatch.setattr(cpu_features, "detect", lambda: CpuFeatures("x86_64", frozenset({"avx2"}), "AVX2"))
    assert int(Int8DynamicLinear(linear).weight_int8.abs().max()) == int8_cpu.INT7_MAX  # no saturating pairs
    monkeypatch.setattr(cpu_features, "detect", lambda: CpuFeatures("x86_64", frozenset(ZEN5), "AVX512"))
    assert int(Int8DynamicLinear(linear).weight_int8.abs().max()) == int8_cpu.INT8_MAX


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_the_weight_sharing_copy_holds_no_second_copy_and_outlives_changes_to_the_original(tiny_loaded, precision):
    """What a check run later compares against (cpu_check.PendingCheck): the fp32 model as it was
    when the fast path opened, on the same storage, unchanged by the fast path's in-place changes."""
    from sam3dbody_gui.runtime.backbones.cpu_check import FastEncoder, weight_sharing_copy

    encoder = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    crop = torch.randn(1, 3, tiny_loaded.config.crop_size, tiny_loaded.config.crop_size,
                       generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        want = encoder(crop)
    twin = weight_sharing_copy(encoder)
    original = {n: p.data_ptr() for n, p in encoder.named_parameters()}
    assert {n: p.data_ptr() for n, p in twin.named_parameters()} == original  # no weight copied
    fast = FastEncoder(encoder, precision)
    with torch.inference_mode():
        changed = encoder(crop.to(fast.input_dtype)).float()
        got = twin(crop)
    assert not torch.equal(changed, want)  # the original did change
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # the copy did not
