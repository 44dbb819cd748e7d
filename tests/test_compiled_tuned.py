"""The compiled backbone's tuning candidates (compiled_backend.TUNINGS): valid Inductor options,
checked against eager when they open with the default compile as the fallback, cache keys that
leave the default's unchanged, and static-shape batch buckets."""

from __future__ import annotations

import copy

import torch

from sam3dbody_gui.runtime.backbones import compiled_backend
from sam3dbody_gui.runtime.backbones.compiled_backend import TUNINGS, CompileOptions, CompiledBackbone

CPU = torch.device("cpu")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def test_default_options_keep_their_old_cache_key_and_tunings_get_new_ones(tmp_path):
    assert CompileOptions().cache_key() == {"max_autotune": False}  # as before the new fields existed
    assert CompileOptions(max_autotune=True).cache_key() == {"max_autotune": True}
    paths = {compiled_backend.compile_cache_path(tmp_path, "a", "fp8", CPU, 512, o) for o in TUNINGS.values()}
    assert len(paths) == len(TUNINGS)
    assert not CompileOptions().tuned and not CompileOptions(max_autotune=True).tuned
    assert all(o.tuned for name, o in TUNINGS.items() if name not in ("default", "autotune"))


def test_compile_kwargs_are_a_mode_or_inductor_options_never_both():
    assert CompileOptions().compile_kwargs() == {"mode": None}
    assert CompileOptions(max_autotune=True).compile_kwargs() == {"mode": "max-autotune-no-cudagraphs"}
    tuned = TUNINGS["tuned"].compile_kwargs()
    assert set(tuned) == {"options"}
    assert tuned["options"]["max_autotune_gemm_backends"] == "ATEN,TRITON"
    assert tuned["options"]["triton.cudagraphs"] is False  # our own CUDA graph, not Inductor's
    import torch._inductor.config as inductor_config

    for key in tuned["options"]:  # every name is a real Inductor setting (a typo fails only at compile)
        obj = inductor_config
        for part in key.split("."):
            obj = getattr(obj, part)


def test_tuned_compile_opens_checked_against_eager(tiny_loaded, tmp_path):
    encoder = tiny_loaded.model.backbone.encoder
    crop = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(4))
    said = []
    backend = CompiledBackbone(encoder, torch.float32, CPU, 512, tmp_path / "t.cc", TUNINGS["tuned"], said.append)
    assert backend.options == TUNINGS["tuned"] and backend.check is not None and backend.check < 1e-4
    assert any("matches eager" in m for m in said)
    with torch.no_grad():
        assert relative(backend(crop), encoder(crop)) < 1e-4


def test_a_tuned_compile_that_misses_falls_back_to_the_default(tiny_loaded, tmp_path, monkeypatch):
    encoder = tiny_loaded.model.backbone.encoder
    real_compile = torch.compile

    def compile_wrong_when_tuned(module, **kwargs):  # a template with a wrong epilogue, say
        if "options" in kwargs:
            return lambda x: module(x) * 1.5
        return real_compile(module, **kwargs)

    monkeypatch.setattr(compiled_backend.torch, "compile", compile_wrong_when_tuned)
    said = []
    backend = CompiledBackbone(encoder, torch.float32, CPU, 512, tmp_path / "w.cc", TUNINGS["tuned"], said.append)
    assert backend.options == CompileOptions() and backend.check > 0.4
    assert any("missed its check" in m and "default kernels" in m for m in said)
    crop = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert relative(backend(crop), encoder(crop)) < 1e-4


class _ReplayedCall:
    """A CPU stand-in for a captured CUDA graph: replay runs the call into the same buffer."""

    def __init__(self, run):
        self.run = run
        self.output = run().clone()

    def replay(self):
        self.output.copy_(self.run())

    def pool(self):
        return ("pool of", id(self))


def test_static_batch_buckets_give_each_crop_its_own_features(tiny_loaded, tmp_path, monkeypatch):
    captured = []  # (batch size, pool asked for): the buckets share the first (largest) one's pool

    def fake_capture(run, device, pool=None):
        graph = _ReplayedCall(run)
        captured.append((graph.output.shape[0], pool))
        return graph, graph.output

    monkeypatch.setattr(compiled_backend, "capture", fake_capture)
    monkeypatch.setattr(compiled_backend.torch.cuda, "synchronize", lambda *a: None)
    encoder = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    backend = CompiledBackbone(encoder, torch.float32, CPU, 512, tmp_path / "s.cc", TUNINGS["static-batches"],
                               batch_buckets=(2, 4))
    crops = torch.randn(3, 3, 512, 512, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got = backend(crops)  # padded into the bucket of 4
        want = torch.cat([encoder(c[None]) for c in crops])
    assert got.shape == want.shape and relative(got, want) < 1e-4
    first = backend._bucket_graphs[4][0]
    assert captured == [(4, None), (2, first.pool())]
