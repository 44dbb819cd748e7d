"""Full mode's fast path (runtime/decoders/hand_graph.py, compiled_hand_pass.py,
compiled_hand_refine.py) on the CPU: the same plumbing as on a GPU — static inputs, the re-run
split into a decision and a pass per kept-prompt count, the fall-backs — with the CUDA capture
left out (and `aot_eager` for the compiler, which traces and partitions as Inductor does). On the
GPU, tools/gpu/full_mode_speed.py measures it and the CUDA test below captures it.

The numbers are checked against upstream's golden (the same fixture as test_full_mode.py) and
against the eager `refine_body`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam3dbody_gui.model import full_mode
from sam3dbody_gui.model.full_mode import HandChecks, decode_hands, refine_body
from sam3dbody_gui.runtime.decoders import compiled_hand_refine
from sam3dbody_gui.runtime.decoders.compiled_hand_pass import CompiledHandPass, StaticPass, hand_example
from sam3dbody_gui.runtime.decoders.compiled_hand_refine import CompiledRefinement, example_inputs
from sam3dbody_gui.runtime.decoders.hand_graph import LazyHandDecoder
from test_full_mode import ACCEPT_ALL, _rel, parity_image, run_golden_case

CPU = torch.device("cpu")


def lifted(model, compiled: bool = False, backend: str = "aot_eager") -> LazyHandDecoder:
    """A LazyHandDecoder as build_pipeline makes it on a GPU, allowed to run on the CPU."""
    decoder = LazyHandDecoder(model, 512, CPU, graph=False, compiled=False)
    decoder.needs_cuda = False
    decoder.compile_backend = backend
    decoder.want_graph, decoder.compiled = True, compiled
    return decoder


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


@pytest.fixture(scope="module")
def fast(pipeline):
    """The pipeline with full mode's graphs (uncompiled: the CPU runs them as plain calls)."""
    from sam3dbody_gui.pipeline.pipeline import Pipeline

    decoder = lifted(pipeline.model)
    assert decoder.prepare() and decoder.status == "CUDA graph" and decoder.refine_status == "CUDA graphs"
    return Pipeline(pipeline.loaded, pipeline.backbone, hand_decoder=decoder)


@pytest.fixture(scope="module")
def golden():
    from test_full_mode import GOLDEN

    return torch.load(GOLDEN, weights_only=True)


@pytest.mark.parametrize("case", ["as-is", "accept", "mixed"])
def test_the_fast_path_matches_upstream(case, golden, fast):
    """Rejected hands (no re-run), both accepted, one: the graphs' decision and numbers as upstream's."""
    spec = golden["cases"][case]
    result = run_golden_case(fast, spec)
    assert result.hands.accepted.tolist() == spec["accepted"].tolist()
    assert result.hands.body_rerun == spec["body_rerun"] and result.hands.prompts_used == spec["prompts_used"]
    ours = {"final pred_vertices": result.vertices, "final pred_keypoints_3d": result.keypoints_3d,
            "final pred_keypoints_2d": result.keypoints_2d, "final pred_cam_t": result.cam_t}
    for key in ("body_pose", "hand", "scale", "shape"):
        ours[f"final {key}"] = result.params[key]
    for name, got in ours.items():
        assert _rel(got, spec["outputs"][name]) <= 1e-4, f"{case}: {name}"


def _person(model, seed: int = 0, accept: bool = True):
    """One person's refine_body inputs from the eager passes (hands moved onto the body's wrists
    so the checks and the crop test let prompts through)."""
    inputs = example_inputs(model, 512, CPU, seed)
    with torch.inference_mode():
        features, cam = inputs["features"], compiled_hand_refine.CropCamera(crop_size=512, **inputs["cam"])
        body = model.decode_body(features, cam)
        hand_features, hand_cams = hand_example(model, 512, CPU, seed)
        hands = decode_hands(model, hand_features, hand_cams)
    return body, features, cam, hands, hand_cams


@pytest.mark.parametrize("user", [None, 1, 2])
def test_the_graphed_re_run_gives_refine_body_for_every_prompt_count(tiny_loaded, user):
    """Every kept subset of the 4 prompts (forced through `rerun_prompts`), with and without the
    user's keypoints: counts made at load and counts captured on first use give refine_body's numbers."""
    model = tiny_loaded.model
    refiner = CompiledRefinement(model, 512, CPU, None, compile_backend=None)
    body, features, cam, hands, hand_cams = _person(model)
    user_prompts = None if user is None else torch.tensor([[[0.4, 0.6, 9.0], [0.55, 0.45, 12.0]][:user]])
    original = full_mode.rerun_prompts
    for mask in (0b1111, 0b0101, 0b0010, 0b0000, 0b1011):
        def forced(prompts, accepted, user_prompts=None, mask=mask):
            prompt, usable = original(prompts, accepted, user_prompts)
            wanted = torch.tensor([[bool(mask >> i & 1) for i in range(4)]])
            return prompt, wanted.expand_as(usable).clone()

        full_mode.rerun_prompts = forced
        try:
            with torch.inference_mode():
                want = refine_body(model, body, features, cam, hands, hand_cams, 1280, ACCEPT_ALL, user_prompts)
                got = refiner(model, body, features, cam, hands, hand_cams, 1280, ACCEPT_ALL, user_prompts)
        finally:
            full_mode.rerun_prompts = original
        assert set(want) <= set(got)
        for key in want:
            assert torch.equal(got[key], want[key]), (mask, key)
        assert int(got["hand_prompts_used"]) == bin(mask).count("1")
        assert int(got["body_rerun"]) == int(bool(mask) or user is not None)
    made_at_load = {(HandChecks(), count, 0) for count in compiled_hand_refine.LOAD_COUNTS}
    assert made_at_load < set(refiner._rerun)  # the other counts were captured on first use


def test_several_people_each_get_their_own_result(fast, pipeline):
    """The graphs' outputs are overwritten by the next person's replay: each person still gets
    what the eager pipeline gives them."""
    image, _ = parity_image()
    boxes = [[460.0, 40.0, 820.0, 700.0], [100.0, 80.0, 420.0, 690.0]]
    got = fast.run_people(image, boxes, mode="full", hand_checks=ACCEPT_ALL)
    want = pipeline.run_people(image, boxes, mode="full", hand_checks=ACCEPT_ALL)
    assert not np.allclose(got[0].vertices, got[1].vertices)
    for g, w in zip(got, want):
        assert np.allclose(g.vertices, w.vertices, rtol=0, atol=1e-5)
        assert g.hands.accepted.tolist() == w.hands.accepted.tolist()


def test_a_failing_compile_falls_back_to_the_captured_pass(tiny_loaded):
    """The compiled pass unavailable (an unknown compiler backend): the captured one is used and
    the status says why; with `fallback` False it raises (benchmarks)."""
    decoder = lifted(tiny_loaded.model, compiled=True, backend="no-such-backend")
    messages = []
    decoder.progress = messages.append
    assert decoder.prepare()
    assert decoder.status.startswith("CUDA graph (compiled failed") and decoder.refine_status.startswith("CUDA graphs")
    assert any("compiled hand decoder unavailable" in m for m in messages)
    strict = lifted(tiny_loaded.model, compiled=True, backend="no-such-backend")
    strict.fallback = False
    with pytest.raises(Exception):
        strict.prepare()


def test_a_pass_whose_numbers_differ_is_refused(tiny_loaded):
    """The load-time check: a pass that does not reproduce the eager one (here: features baked in)."""
    model = tiny_loaded.model
    features, cams = hand_example(model, 512, CPU)
    graph = StaticPass(lambda f, c: decode_hands(model, f, cams), (features, {}), CPU)
    other = hand_example(model, 512, CPU, seed=1)[0]
    graph.check((other, {}), ("pred_vertices",), 1e-3, "test pass")  # the honest pass passes
    graph.fn = lambda f, c: decode_hands(model, features, cams)  # as if the capture had baked its input in
    with pytest.raises(RuntimeError, match="differs from the eager one"):
        graph.check((other, {}), ("pred_vertices",), 1e-3, "test pass")


def test_compiled_passes_match_eager(tiny_loaded):
    """What the GPU compiles, traced on the CPU (aot_eager): the hand pass and the re-run of both
    hands (4 prompts) against the eager steps, and compiling nothing more when called again."""
    from torch._dynamo.utils import counters

    model = tiny_loaded.model
    torch._dynamo.reset()
    try:
        hand = CompiledHandPass(model, 512, CPU, None, compile_backend="aot_eager")  # checked against eager inside
        refiner = CompiledRefinement(model, 512, CPU, None, compile_backend="aot_eager", load_counts=(4,))
        made = counters["stats"]["unique_graphs"]
        features, cams = hand_example(model, 512, CPU, seed=2)
        with torch.inference_mode():
            got, want = hand(features, cams), decode_hands(model, features, cams)
        assert _rel(got["pred_vertices"], want["pred_vertices"]) <= 1e-5
        inputs = example_inputs(model, 512, CPU, seed=2)
        keep = refiner._keep[(0, 1, 2, 3)]
        with torch.inference_mode():
            got = refiner._rerun[(HandChecks(), 4, 0)](inputs, keep, None)
            want = compiled_hand_refine.refine_step(model, HandChecks(), 512, inputs, keep, None)
        for key in ("pred_vertices", "pred_keypoints_2d", "body_pose"):
            assert _rel(got[key], want[key]) <= 1e-5, key
        assert counters["stats"]["unique_graphs"] == made  # nothing compiled after "load"
    finally:
        torch._dynamo.reset()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA capture needs a GPU")
def test_full_mode_graphs_on_a_gpu_match_eager(tiny_model_dir, tmp_path):
    from sam3dbody_gui.pipeline.build import build_pipeline

    image = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    eager = build_pipeline(tiny_model_dir, "cuda", "fp32", backend="pytorch", cuda_graph=False)
    fast = build_pipeline(tiny_model_dir, "cuda", "fp32", backend="pytorch", cache_dir=tmp_path)
    assert fast.hand_decoder.prepare() and fast.hand_decoder.refine_status.startswith("CUDA graphs")
    for checks in (HandChecks(), ACCEPT_ALL):
        got = fast.run(image, (100, 50, 400, 470), mode="full", hand_checks=checks)
        want = eager.run(image, (100, 50, 400, 470), mode="full", hand_checks=checks)
        assert got.hands.accepted.tolist() == want.hands.accepted.tolist()
        assert np.abs(got.vertices - want.vertices).max() < 1e-3
