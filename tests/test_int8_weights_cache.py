"""The int8 CPU backbone's weights kept between starts (runtime/backbones/int8_weights_cache.py):
a later start leaves the checkpoint's fp32 block weights unloaded and maps the int8 ones, with
the very same results; a file that does not fit is not used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sam3dbody_gui.model.backbone import block_linears
from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
from sam3dbody_gui.pipeline.build import build_pipeline
from sam3dbody_gui.runtime import cpu_features
from sam3dbody_gui.runtime.backbones import cpu_check
from sam3dbody_gui.runtime.backbones.int8_cpu import Int8DynamicLinear
from sam3dbody_gui.runtime.cpu_features import CpuPlan

WRITE_TIMEOUT_S = 120


def _int8(tiny_model_dir, cache_dir, said=None, **kwargs):
    return build_pipeline(tiny_model_dir, device="cpu", precision="int8", backend="pytorch", cache_dir=cache_dir,
                          progress=(said.append if said is not None else lambda m: None), **kwargs)


def _written(pipe) -> None:
    for thread in pipe.cache_writes:
        thread.join(WRITE_TIMEOUT_S)
        assert not thread.is_alive()


def _files(cache_dir):
    return sorted(cache_dir.glob("int8-weights-*.pt"))


def test_a_later_start_maps_the_kept_int8_weights_and_answers_the_same(tiny_model_dir, tmp_path):
    item = benchmark_images()[0]
    first = _int8(tiny_model_dir, tmp_path)
    assert _files(tmp_path) == []  # written after the first answer, not before
    want = first.run(item.image, item.box)
    _written(first)
    assert len(_files(tmp_path)) == 1
    said: list[str] = []
    later = _int8(tiny_model_dir, tmp_path, said)
    assert any("int8 backbone weights from the cache" in m for m in said)
    encoder = later.backbone.encoder
    # The fp32 block weights were never loaded: no Linear is left in the blocks, and the report says so.
    assert list(block_linears(encoder)) == [] and later.loaded.report.left_unloaded
    assert all(n.endswith(".weight") and ".blocks." in n for n in later.loaded.report.left_unloaded)
    assert sum(isinstance(m, Int8DynamicLinear) for m in encoder.modules()) == \
        sum(isinstance(m, Int8DynamicLinear) for m in first.backbone.encoder.modules())
    got = later.run(item.image, item.box)
    np.testing.assert_array_equal(got.vertices, want.vertices)
    assert later.cache_writes == []  # nothing new to keep


def test_a_damaged_file_is_not_used_and_the_checkpoint_is_quantised_again(tiny_model_dir, tmp_path):
    item = benchmark_images()[0]
    first = _int8(tiny_model_dir, tmp_path)
    want = first.run(item.image, item.box)
    _written(first)
    (path,) = _files(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    said: list[str] = []
    again = _int8(tiny_model_dir, tmp_path, said)
    assert sum("could not be used" in m for m in said) == 1
    assert again.loaded.report.left_unloaded == ()
    np.testing.assert_array_equal(again.run(item.image, item.box).vertices, want.vertices)
    _written(again)  # and a good file replaces it
    assert len(_files(tmp_path)) == 1 and torch.load(_files(tmp_path)[0], weights_only=True)["version"] == 1


def test_a_file_for_another_layout_is_refused_and_leaves_the_encoder_alone(tiny_loaded, tmp_path):
    from sam3dbody_gui.runtime.backbones.int8_weights_cache import save_cached, swap_in_cached

    import copy

    encoder = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    from sam3dbody_gui.runtime.backbones.int8_cpu import quantize_backbone_int8

    quantize_backbone_int8(encoder)
    path = tmp_path / "w.pt"
    save_cached(path, encoder)
    tensors = torch.load(path, weights_only=True)
    name = next(k for k in tensors if k.endswith(".weight_int8"))
    tensors[name] = tensors[name][:, :-1]  # one input column short
    torch.save(tensors, path)
    fresh = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    before = [type(m) for m in fresh.modules()]
    with pytest.raises(ValueError, match="does not match"):
        swap_in_cached(path, fresh)
    assert [type(m) for m in fresh.modules()] == before
    assert isinstance(next(iter(block_linears(fresh)))[2], nn.Linear)


def test_an_auto_int8_path_keeps_its_weights_only_once_its_check_passed(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_features, "_PLAN", CpuPlan("int8", "fp32", "int8: forced by the test"))
    item = benchmark_images()[0]
    # Blocking (`bench`, `infer`'s first start): the check runs at open; then the weights are kept.
    pipe = build_pipeline(tiny_model_dir, device="cpu", cache_dir=tmp_path)
    pipe.run(item.image, item.box)
    _written(pipe)
    assert len(_files(tmp_path)) == 1
    # A check that misses keeps nothing (and fp32 answers).
    other = tmp_path / "other"
    monkeypatch.setattr(cpu_check, "FIDELITY_MEAN_MM", -1.0)
    missed = build_pipeline(tiny_model_dir, device="cpu", cache_dir=other)
    missed.run(item.image, item.box)
    _written(missed)
    assert missed.backbone.info.precision == "fp32" and _files(other) == []
