"""Full mode (hand refinement) against upstream's own `run_inference("full")` outputs.

The golden fixture comes from tools/parity/full_mode_parity.py (upstream's code on the CPU, the
tiny synthetic model, our DINOv3 in upstream's backbone slot): three cases, so the rejected-hands
path (no body re-run), the accepted-hands path (prompted re-run, wrist fix, hand replacement) and a
mixed one (one hand accepted) are all pinned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sam3dbody_gui.model import full_mode
from sam3dbody_gui.model.crop_camera import CropCamera
from sam3dbody_gui.model.full_mode import HandChecks, decode_hands, refine_body
from sam3dbody_gui.pipeline.hand_crops import hand_crop_geometry, mirror_box_x
from sam3dbody_gui.synthetic.fingerprint import fingerprint_differences, state_fingerprint

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "full_mode_tiny_golden.pt"
ACCEPT_ALL = HandChecks(wrist_angle=10.0, min_crop_side=0.0, keypoint_extent=1e9, wrist_distance=1e9)
# The parity tool's hand-camera start that puts the wrist at the hand crop's centre (the synthetic
# weights start it where the body camera starts, which leaves every hand keypoint off the crop).
CENTRED_HAND_CAMERA = (-0.4, 0.0, 0.0)
# Tensors of the hand decoder twin that upstream's full mode never reads either: rig data copied
# into both MHR heads (upstream takes the rest rotations from the body head) and the PCA basis
# kept for reference (`hand_pose_comps_ori`; the checkpoint's `hand_pose_comps` is the identity).
HAND_KEYS_UPSTREAM_NEVER_READS = {
    "head_pose_hand.faces", "head_pose_hand.joint_rotation", "head_pose_hand.hand_pose_comps_ori",
}


def run_golden_case(pipeline, spec: dict):
    """The parity photo in full mode as the golden case `spec` ran upstream: its hand camera
    (the synthetic weights' is put back after) and its hand checks."""
    image, box = parity_image()
    hand_camera = pipeline.model.init_camera_hand.weight
    synthetic = hand_camera.detach().clone()
    try:
        with torch.no_grad():
            if spec["hand_camera"] is not None:
                hand_camera.copy_(torch.tensor([spec["hand_camera"]]))
        return pipeline.run(image, box, mode="full", hand_checks=HandChecks(**spec["checks"]))
    finally:
        with torch.no_grad():
            hand_camera.copy_(synthetic)


def parity_image() -> tuple[np.ndarray, list[float]]:
    """The photo and box of tools/parity/decoder_parity.py's `test_image` (a formula, not a file)."""
    height, width = 720, 1280
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (height + width)], -1).astype(np.uint8)
    return img, [460.0, 40.0, 820.0, 700.0]


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


def _rel(got, want) -> float:
    got, want = torch.as_tensor(np.asarray(got)).double(), torch.as_tensor(want).double()
    return ((got - want).abs().max() / want.abs().max().clamp(min=1e-12)).item()


def test_golden_was_made_from_these_weights(golden, tiny_model_dir, tiny_loaded):
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)["state_dict"]
    # Numerically, not by checksum: the rig's geometry rounds differently per CPU instruction set.
    assert not fingerprint_differences(state_fingerprint(state), golden["state_fingerprint"]), \
        "synthetic generator changed: regenerate the golden"
    assert not fingerprint_differences(state_fingerprint(dict(tiny_loaded.model.mhr.named_buffers())),
                                       golden["rig_fingerprint"])
    assert golden["box"] == parity_image()[1]
    # The fixture pins all three paths through the hand checks.
    accepted = {case: g["accepted"].tolist() for case, g in golden["cases"].items()}
    assert accepted == {"as-is": [False, False], "accept": [True, True], "mixed": [True, False]}


@pytest.mark.parametrize("case", ["as-is", "accept", "mixed"])
def test_full_mode_matches_upstream(case, golden, pipeline, monkeypatch):
    """Final body, hand boxes and both hand passes within 1e-4 of upstream's (fp32, CPU)."""
    spec = golden["cases"][case]
    captured = {}
    original = full_mode.decode_hands

    def capture(*args, **kwargs):
        captured["hands"] = out = original(*args, **kwargs)
        return out

    monkeypatch.setattr(full_mode, "decode_hands", capture)
    result = run_golden_case(pipeline, spec)
    hands = captured["hands"]
    assert result.mode == "full"
    assert result.hands.accepted.tolist() == spec["accepted"].tolist()
    assert result.hands.body_rerun == spec["body_rerun"]
    assert result.hands.prompts_used == spec["prompts_used"]
    ours = {
        "final pred_vertices": result.vertices, "final pred_keypoints_3d": result.keypoints_3d,
        "final pred_keypoints_2d": result.keypoints_2d, "final pred_cam_t": result.cam_t,
        "final pred_joint_coords": result.joints,
        "hand boxes xyxy": result.hands.boxes_xyxy, "hand crop boxes xyxy": result.hands.crop_boxes_xyxy,
    }
    for key in ("global_rot", "body_pose", "hand", "scale", "shape", "mhr_model_params", "pred_cam", "pred_pose_raw"):
        ours[f"final {key}"] = result.params[key]
    for side, name in enumerate(("left", "right")):
        for key in ("hand", "scale", "shape", "pred_cam_t", "pred_keypoints_3d", "pred_keypoints_2d", "pred_vertices"):
            ours[f"{name} hand pass {key}"] = hands[key][side]
    assert set(ours) == set(spec["outputs"])
    for name, want in spec["outputs"].items():
        assert _rel(ours[name], want) <= 1e-4, f"{case}: {name}"


def test_body_mode_is_unchanged_and_the_default(pipeline):
    image, box = parity_image()
    body = pipeline.run(image, box)
    assert body.mode == "body" and body.hands is None
    assert list(body.timings_ms) == ["preprocess", "backbone", "decoder+MHR", "total"]
    full = pipeline.run(image, box, mode="full")  # upstream's checks reject both hands here
    assert list(full.timings_ms) == ["preprocess", "backbone", "decoder+MHR", "hand crops", "hand backbone",
                                     "hand decoder", "body re-run", "total"]
    assert all(v >= 0 for v in full.timings_ms.values())
    # Rejected hands, no re-run: the mesh is the body pass's (the rig only runs once more).
    np.testing.assert_allclose(full.vertices, body.vertices, atol=1e-6)
    assert not full.params["pred_pose_raw"].any()  # no longer describes the pose, as upstream
    doc = full.to_json_dict()
    assert doc["mode"] == "full" and doc["hands"]["accepted"] == [False, False]
    with pytest.raises(ValueError):
        pipeline.run(image, box, mode="hands")


def test_accepted_hands_change_the_body(pipeline):
    image, box = parity_image()
    body = pipeline.run(image, box)
    full = pipeline.run(image, box, mode="full", hand_checks=ACCEPT_ALL)
    assert full.hands.accepted.all() and full.hands.body_rerun
    assert np.abs(full.vertices - body.vertices).max() > 1e-3
    assert not np.allclose(full.params["hand"], body.params["hand"])


def test_hand_crop_geometry_follows_upstreams_float32_arithmetic():
    from sam3dbody_gui.pipeline.preprocess import crop_geometry

    box = np.array([400.3, 150.7, 455.1, 199.9], dtype=np.float32)
    ours = hand_crop_geometry(box, (480, 640), 512)
    ref = crop_geometry(box.astype(np.float64), (480, 640), padding=0.9)  # float64 path: same up to rounding
    np.testing.assert_allclose(ours.center, ref.center, rtol=1e-6)
    np.testing.assert_allclose(ours.scale, ref.scale, rtol=1e-6)
    assert ours.scale[0] == ours.scale[1] and ours.center.dtype == np.float64
    assert ours.center[0] == np.float32(np.float32(box[0] + box[2]) * np.float32(0.5))
    one, width = np.float32(1), np.float32(640)
    np.testing.assert_array_equal(mirror_box_x(box, 640),
                                  [width - box[2] - one, box[1], width - box[0] - one, box[3]])
    # A hand box off the photo is not an error (its crop is just black there).
    hand_crop_geometry(np.array([-90.0, -90.0, -10.0, -10.0], np.float32), (480, 640), 512)


def _hand_inputs(model, batch: int = 1):
    """Random hand-crop features and plausible hand cameras: rows [left × batch, right × batch]."""
    torch.manual_seed(0)
    n = 2 * batch
    features = torch.randn(n, model.feature_dim, 32, 32)
    k = torch.tensor([[1468.6, 0.0, 640.0], [0.0, 1468.6, 360.0], [0.0, 0.0, 1.0]])
    side = torch.linspace(150.0, 260.0, n)
    centre = torch.stack([torch.linspace(500.0, 800.0, n), torch.linspace(300.0, 420.0, n)], -1)
    scale = 512.0 / side
    affine = torch.zeros(n, 2, 3)
    affine[:, 0, 0] = affine[:, 1, 1] = scale
    affine[:, :, 2] = 256.0 - scale[:, None] * centre
    return features, CropCamera(centre, side, affine, k.expand(n, 3, 3).clone(), 512)


def test_every_hand_twin_tensor_drives_the_hand_pass(tiny_model_dir):
    """Every `*_hand` tensor of the checkpoint (the hand decoder twin) changes full mode's hand
    pass, except the three rig copies upstream never reads either."""
    from sam3dbody_gui.model.model_folder import load_model_folder

    model = load_model_folder(tiny_model_dir, device="cpu", with_backbone=False).model
    with torch.no_grad():  # hand keypoints inside the crops, so their 2-D tokens take part
        model.init_camera_hand.weight.copy_(torch.tensor([CENTRED_HAND_CAMERA]))
    state = model.state_dict(keep_vars=True)
    hand_keys = sorted(k for k in state if any(part.endswith("_hand") for part in k.split(".")) or
                       k.startswith("hand_pe_layer."))
    released = [line.split(" ", 1)[0] for line in (FIXTURES / "sam3dbody_checkpoint_keys.txt").read_text().splitlines()]
    assert hand_keys == sorted(k for k in released if any(p.endswith("_hand") for p in k.split(".")) or
                               k.startswith("hand_pe_layer."))  # the real checkpoint's hand twin: 238 tensors
    features, cams = _hand_inputs(model)

    def outputs() -> torch.Tensor:
        out = decode_hands(model, features, cams)
        return torch.cat([out[k].flatten() for k in ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "hand",
                                                      "scale", "shape", "wrist_rotation")])

    floats = [k for k in hand_keys if state[k].is_floating_point() and k not in HAND_KEYS_UPSTREAM_NEVER_READS]
    for key in floats:
        state[key].requires_grad_(True)
    weights = torch.randn(outputs().shape, generator=torch.Generator().manual_seed(1))
    (outputs() * weights).sum().backward()
    unused = [k for k in floats if state[k].grad is None or not state[k].grad.abs().sum() > 0]
    assert unused == []
    for key in floats:
        state[key].requires_grad_(False)

    with torch.no_grad():
        base = outputs()
        integer_perturbations = {  # index tables: point them elsewhere and the pass must change
            "head_pose_hand.hand_joint_idxs_left": lambda t: torch.arange(t.numel()),
            "head_pose_hand.hand_joint_idxs_right": lambda t: t.flip(0),
            "head_pose_hand.nonhand_param_idxs": lambda t: torch.zeros_like(t),
        }
        integers = [k for k in hand_keys if not state[k].is_floating_point() and k not in HAND_KEYS_UPSTREAM_NEVER_READS]
        assert sorted(integers) == sorted(integer_perturbations)
        for key, perturb in integer_perturbations.items():
            saved = state[key].clone()
            state[key].copy_(perturb(saved))
            assert not torch.allclose(outputs(), base), key
            state[key].copy_(saved)


def test_batched_refinement_keeps_static_shapes(tiny_loaded):
    """Several persons: prompts of rejected hands become 'invalid' points (fixed shape), as
    upstream's batched rule; a person alone gives the same hand checks."""
    model = tiny_loaded.model
    torch.manual_seed(0)
    body_features = torch.randn(2, model.feature_dim, 32, 32)
    k = torch.tensor([[1468.6, 0.0, 640.0], [0.0, 1468.6, 360.0], [0.0, 0.0, 1.0]])
    cam = CropCamera(torch.tensor([[640.0, 370.0]] * 2), torch.tensor([880.0] * 2),
                     torch.tensor([[[0.5818, 0.0, -116.4], [0.0, 0.5818, 40.7]]] * 2), k.expand(2, 3, 3).clone(), 512)
    features, cams = _hand_inputs(model, batch=2)
    with torch.no_grad():
        body = model.decode_body(body_features, cam)
        hands = decode_hands(model, features, cams)
        both = refine_body(model, body, body_features, cam, hands, cams, 1280, ACCEPT_ALL)
        rows = [0, 2]  # person 0: its left and right hand rows
        one = refine_body(model, {k: v[:1] for k, v in body.items()}, body_features[:1],
                          CropCamera(cam.box_center[:1], cam.box_size[:1], cam.affine[:1], cam.intrinsics[:1], 512),
                          {k: v[rows] for k, v in hands.items()},
                          CropCamera(cams.box_center[rows], cams.box_size[rows], cams.affine[rows],
                                     cams.intrinsics[rows], 512), 1280, ACCEPT_ALL)
    assert both["pred_vertices"].shape[0] == 2 and torch.isfinite(both["pred_vertices"]).all()
    assert both["body_rerun"].tolist() == [1, 1]
    assert torch.equal(both["hand_passed_checks"][:1], one["hand_passed_checks"])


def test_cli_infer_full_mode(tiny_model_dir, tmp_path, capsys):
    import json

    from PIL import Image

    from sam3dbody_gui import cli

    image, box = parity_image()
    photo = tmp_path / "photo.png"
    Image.fromarray(image).save(photo)
    out = tmp_path / "params.json"
    code = cli.main(["infer", str(photo), "--model", str(tiny_model_dir), "--device", "cpu", "--backend", "pytorch",
                     "--mode", "full", "--bbox", *map(str, box), "--json", str(out), "--out", str(tmp_path / "m.obj")])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["mode"] == "full"
    assert list(data["timings_ms"])[3:7] == ["hand crops", "hand backbone", "hand decoder", "body re-run"]
    assert np.asarray(data["hands"]["crop_boxes_xyxy"]).shape == (2, 4)
    assert "hand crops" in capsys.readouterr().out
    assert cli.build_parser().parse_args(["infer", str(photo)]).mode == "body"  # the default


def test_bench_end_to_end_table_has_a_full_mode_row(tiny_model_dir):
    from sam3dbody_gui.bench import run_bench

    text = run_bench(tiny_model_dir, torch.device("cpu"), [], ["pytorch:fp32", "pytorch:fp32+full"], None,
                     iterations=1, progress=lambda m: None)
    header = next(line for line in text.splitlines() if line.startswith("configuration"))
    assert header.split()[1:4] == ["preprocess", "backbone", "decoder+MHR"] and "re-run" in header
    body_row = next(line for line in text.splitlines() if line.startswith("pytorch:fp32 "))
    full_row = next(line for line in text.splitlines() if line.startswith("pytorch:fp32+full"))
    assert "–" in body_row and "–" not in full_row


def test_hand_decoder_graph_falls_back_to_eager(tiny_loaded):
    """The pipeline's hand pass: a CUDA graph on GPUs; a failed capture (here: no CUDA) runs eager."""
    from sam3dbody_gui.runtime.decoders.hand_graph import LazyHandDecoder

    model = tiny_loaded.model
    features, cams = _hand_inputs(model)
    eager = LazyHandDecoder(model, 512, torch.device("cpu"), graph=True)
    assert not eager.want_graph and eager.status == "eager"  # no CUDA here: never tries
    failing = LazyHandDecoder(model, 512, torch.device("cpu"), graph=False)
    failing.want_graph = True  # as on a GPU: the capture is attempted, fails, and eager takes over
    with torch.no_grad():
        got = failing(features, cams)
        want = decode_hands(model, features, cams)
    assert failing.status.startswith("eager (CUDA graph capture failed") and not failing.want_graph
    assert torch.equal(got["pred_vertices"], want["pred_vertices"])
    assert not failing.prepare() and not eager.prepare()  # prepare (the window's, at load) is as safe


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the hand-decoder CUDA graph needs a GPU")
def test_full_mode_with_a_bf16_decoder_captures_the_hand_pass_on_a_gpu(tiny_model_dir):
    """bf16 decoders once sampled keypoint features at indices rounded in bf16 (out of range:
    a device assert that killed the CUDA context in the hand pass's capture)."""
    from sam3dbody_gui.pipeline.build import build_pipeline

    image = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    pipe = build_pipeline(tiny_model_dir, "cuda", "bf16", backend="pytorch", decoder_precision="bf16")
    assert pipe.hand_decoder.prepare() and pipe.hand_decoder.status == "CUDA graph"  # the window captures at load
    graphed = pipe.hand_decoder._graphed
    result = pipe.run(image, (100, 50, 400, 470), mode="full")
    assert np.isfinite(result.vertices).all() and pipe.hand_decoder._graphed is graphed  # no capture on first use
