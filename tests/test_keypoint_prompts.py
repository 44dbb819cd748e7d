"""Keypoint prompts: names, the model's limit, photo → crop coordinates, the prompted decoder
against upstream's (golden from tools/parity/prompt_parity.py), re-decoding on cached features,
batches, the command line and params.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from sam3dbody_gui.bundled import sample_image_path
from sam3dbody_gui.cli import EXIT_USER_ERROR, main
from sam3dbody_gui.errors import UserError
from sam3dbody_gui.model.crop_camera import CropCamera
from sam3dbody_gui.pipeline.image_io import load_image
from sam3dbody_gui.pipeline.keypoint_prompts import (
    MHR70_NAMES, KeypointPrompt, keypoint_index, prompt_tensor, read_prompts)
from sam3dbody_gui.pipeline.preprocess import crop_geometry
from sam3dbody_gui.pipeline.prompted_decode import prompted_pass, query_estimate
from sam3dbody_gui.pipeline.result import CACHED_DECODER_STAGE
from sam3dbody_gui.synthetic.fingerprint import fingerprint_differences, state_fingerprint

GOLDEN = Path(__file__).parent / "fixtures" / "prompt_tiny_golden.pt"
BOXES = [(20.0, 10.0, 370.0, 512.0), (200.0, 40.0, 470.0, 500.0), (5.0, 250.0, 160.0, 505.0)]
WRIST = KeypointPrompt.at("left_wrist", 300.0, 200.0)  # inside the first box's crop
ANKLE = KeypointPrompt.at("right_ankle", 150.0, 480.0)
KNEE = KeypointPrompt.at("right_knee", 100.0, 450.0)  # inside the third box's crop
ARRAYS = ("vertices", "keypoints_2d", "keypoints_3d", "joints", "cam_t", "hand_boxes")


def _rel(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def _same_person(a, b, tol: float) -> None:
    for name in ARRAYS:
        assert _rel(getattr(a, name), getattr(b, name)) <= tol, name
    for name, value in b.params.items():
        assert _rel(a.params[name], value) <= tol, name


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


@pytest.fixture(scope="module")
def image():
    return load_image(sample_image_path())


# ------------------------------------------------------------------------------------ names --
def test_names_are_upstreams_and_agree_with_the_indices_the_model_uses():
    from sam3dbody_gui.model import full_mode
    from sam3dbody_gui.model.sam3d_body import PELVIS_KEYPOINTS

    assert len(MHR70_NAMES) == 70 and len(set(MHR70_NAMES)) == 70
    # Indices the model code takes from upstream's run_inference / pelvis_idx, by name here.
    assert keypoint_index("right_wrist") == full_mode.RIGHT_WRIST_KP == 41
    assert keypoint_index("left_wrist") == full_mode.LEFT_WRIST_KP == 62
    assert (keypoint_index("left_elbow"), keypoint_index("right_elbow")) == (full_mode.LEFT_ELBOW_KP,
                                                                           full_mode.RIGHT_ELBOW_KP)
    assert (keypoint_index("left_hip"), keypoint_index("right_hip")) == PELVIS_KEYPOINTS
    for i, name in enumerate(MHR70_NAMES):
        assert keypoint_index(name) == i
        assert keypoint_index(name.replace("_", "-").upper()) == i  # upstream's mhr_names spelling
        assert keypoint_index(str(i)) == i


@pytest.mark.parametrize("typo, suggested", [("left_wirst", "left_wrist"), ("wrist", "right_wrist"),
                                             ("rigth_knee", "right_knee")])
def test_an_unknown_name_is_a_user_error_naming_close_matches(typo, suggested):
    with pytest.raises(UserError, match="did you mean") as err:
        KeypointPrompt.at(typo, 1.0, 2.0)
    assert suggested in str(err.value) and repr(typo) in str(err.value)
    with pytest.raises(UserError, match="0 to 69"):
        keypoint_index("70")
    with pytest.raises(UserError, match="finite"):
        KeypointPrompt.at("nose", float("nan"), 2.0)


# ---------------------------------------------------------------------------------- geometry --
def test_photo_pixels_become_the_crops_unit_square_as_an_independent_computation_says():
    """The crop is the square of side max(1.25 h, 1.25 w / 0.75) centred on the box; [0, 1] spans it."""
    rng = np.random.default_rng(3)
    for box in BOXES + [(-40.0, 100.0, 600.0, 300.0)]:
        geom = crop_geometry(box, (512, 512))
        x1, y1, x2, y2 = box
        side = max(1.25 * (y2 - y1), 1.25 * (x2 - x1) / 0.75)
        corner = np.array([(x1 + x2) / 2 - side / 2, (y1 + y2) / 2 - side / 2])
        uv = rng.uniform(0.02, 0.98, size=(2, 2))
        pixels = corner + uv * side
        prompts = [KeypointPrompt.at("nose", *pixels[0]), KeypointPrompt.at("neck", *pixels[1])]
        rows = prompt_tensor(prompts, geom, limit=2)[0].numpy()
        np.testing.assert_allclose(rows[:, :2], uv, atol=2e-6)
        assert rows[:, 2].tolist() == [0.0, 69.0]


def test_a_point_outside_the_crop_is_refused_with_the_crops_extent():
    geom = crop_geometry(BOXES[0], (512, 512))
    side = 1.25 * (512 - 10)
    left = 195.0 - side / 2
    inside = prompt_tensor([KeypointPrompt.at("nose", left + 0.01, 261.0)], geom, limit=2)
    assert 0.0 <= float(inside[0, 0, 0]) < 1e-4
    with pytest.raises(UserError, match="outside the person's crop") as err:
        prompt_tensor([KeypointPrompt.at("nose", left - 1.0, 261.0)], geom, limit=2)
    assert f"x {left:.1f} to {left + side:.1f}" in str(err.value)
    with pytest.raises(UserError, match="twice"):
        prompt_tensor([WRIST, dataclasses.replace(WRIST, x=310.0)], geom, limit=2)


# ------------------------------------------------------------------------------------ limit --
def test_the_limit_is_the_configs_max_num_clicks(tiny_model_dir, tmp_path, image):
    """A folder whose model_config.yaml says MAX_NUM_CLICKS 3 takes 3 prompts; one that says 1
    refuses 2; the message names the limit and where it comes from."""
    from sam3dbody_gui.model.config import load_model_config, save_model_config
    from sam3dbody_gui.pipeline.build import build_pipeline

    config = load_model_config(tiny_model_dir / "model_config.yaml")
    assert config.max_num_clicks == 2
    three = [WRIST, ANKLE, KeypointPrompt.at("nose", 200.0, 60.0)]
    pipes = {}
    for clicks in (1, 3):
        folder = tmp_path / f"clicks{clicks}"
        (folder / "assets").mkdir(parents=True)
        (folder / "model.ckpt").symlink_to(tiny_model_dir / "model.ckpt")
        (folder / "assets" / "mhr_model.pt").symlink_to(tiny_model_dir / "assets" / "mhr_model.pt")
        save_model_config(dataclasses.replace(config, max_num_clicks=clicks), folder / "model_config.yaml")
        pipes[clicks] = build_pipeline(folder, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    result = pipes[3].run(image, BOXES[0], prompts=three)
    assert [p.name for p in result.prompts] == ["left_wrist", "right_ankle", "nose"]
    with pytest.raises(UserError, match="at most 1 per person") as err:
        pipes[1].run(image, BOXES[0], prompts=[WRIST, ANKLE])
    assert "PROMPT_ENCODER.MAX_NUM_CLICKS" in str(err.value)
    with pytest.raises(UserError, match="at most 1 per person"):
        pipes[1].redecode(pipes[1].run(image, BOXES[0]), [WRIST, ANKLE])


# ------------------------------------------------------------------------ upstream's oracle --
def _golden():
    if not GOLDEN.exists():
        pytest.skip("prompt golden not made yet: run tools/parity/prompt_parity.py --golden-out ...")
    return torch.load(GOLDEN, weights_only=True)


def test_golden_was_made_from_these_synthetic_weights(tiny_model_dir, tiny_loaded):
    golden = _golden()
    assert GOLDEN.stat().st_size < 300_000
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)["state_dict"]
    pinned = {k: state[k] for k in golden["state_fingerprint"] if k in state}
    assert not fingerprint_differences(state_fingerprint(pinned), golden["state_fingerprint"]), \
        "synthetic generator changed: regenerate the golden"
    assert not fingerprint_differences(state_fingerprint(dict(tiny_loaded.model.mhr.named_buffers())),
                                       golden["rig_fingerprint"])


def _golden_inputs(golden):
    cam = CropCamera(crop_size=golden["crop_size"], **golden["camera"])
    geom = crop_geometry(golden["box_xyxy"], tuple(golden["image_hw"]), crop_size=golden["crop_size"])
    return golden["features_fp16"].float(), cam, geom


@pytest.mark.parametrize("case", ["one", "two"])
def test_prompted_decoder_matches_upstreams_run_keypoint_prompt(tiny_loaded, case):
    """Our prompt rows and prompted pass from the box query's estimate: upstream's within 1e-5."""
    golden = _golden()
    features, cam, geom = _golden_inputs(golden)
    want = golden["cases"][case]
    prompts = [KeypointPrompt.at(name, x, y) for name, x, y in want["prompts"]]
    rows = prompt_tensor(prompts, geom, limit=len(prompts))
    assert (rows - want["prompt"]).abs().max() <= 1e-6
    model = tiny_loaded.model
    with torch.no_grad():
        got = prompted_pass(model, features, cam, rows, query_estimate(model.decode_body(features, cam)))
    for key, expected in want["outputs"].items():
        rel = (got[key].float() - expected).abs().max() / expected.abs().max().clamp(min=1e-12)
        assert rel <= 1e-5, f"{case} {key}: relative error {rel:.2e}"


def test_the_golden_tells_a_wrong_prompted_pass_apart(tiny_loaded):
    """The golden's tolerance (1e-5) would catch a pass from the initial estimate instead of the
    box query's (upstream's run_keypoint_prompt), and the prompts' effect (vs the box query)."""
    golden = _golden()
    features, cam, _ = _golden_inputs(golden)
    model = tiny_loaded.model

    def worst(got: dict, want: dict) -> float:
        return max(float((got[k].float() - e).abs().max() / e.abs().max().clamp(min=1e-12)) for k, e in want.items())

    for case in golden["cases"].values():
        with torch.no_grad():
            feats = model.prompt_encoder.add_no_mask(features)
            from_init = model.run_decoder(model.body_branch(), feats, cam, case["prompt"])
            box_query = model.decode_body(features, cam)
        assert worst(from_init, case["outputs"]) > 1e-4
        assert worst(box_query, case["outputs"]) > 1e-3


# ---------------------------------------------------------------------------- the pipeline --
@pytest.mark.parametrize("mode", ["body", "full"])
def test_prompts_change_the_result_and_are_kept_with_it(pipeline, image, mode):
    plain = pipeline.run(image, BOXES[0], mode=mode)
    prompted = pipeline.run(image, BOXES[0], mode=mode, prompts=[WRIST])
    assert prompted.prompts == [WRIST] and plain.prompts == []
    assert _rel(prompted.vertices, plain.vertices) > 1e-4
    np.testing.assert_array_equal(prompted.features, plain.features)  # the backbone saw the same crop
    np.testing.assert_array_equal(prompted.hand_boxes, plain.hand_boxes)  # the box query's, as upstream


@pytest.mark.parametrize("mode", ["body", "full"])
def test_redecode_gives_what_run_people_gives_with_the_same_prompts(pipeline, image, mode):
    plain = pipeline.run(image, BOXES[0], mode=mode)
    for prompts in ([WRIST], [WRIST, ANKLE]):
        want = pipeline.run(image, BOXES[0], mode=mode, prompts=prompts)
        got = pipeline.redecode(plain, prompts, mode=mode)
        _same_person(got, want, 1e-6)
        assert got.prompts == prompts
        if mode == "full":
            assert got.hands.accepted.tolist() == want.hands.accepted.tolist()
            assert got.hands.prompts_used == want.hands.prompts_used
    # Prompts removed: the plain result again, from a prompted one.
    _same_person(pipeline.redecode(want, [], mode=mode), plain, 1e-6)


def test_redecode_runs_no_backbone_and_says_the_features_were_cached(pipeline, image, monkeypatch):
    results = {mode: pipeline.run(image, BOXES[0], mode=mode) for mode in ("body", "full")}
    assert "backbone" in results["body"].timings_ms

    def no_backbone(*args, **kwargs):
        raise AssertionError("the crop or the backbone ran")

    monkeypatch.setattr(pipeline, "backbone", no_backbone)
    monkeypatch.setattr(pipeline, "_crop", no_backbone)
    for mode, result in results.items():
        again = pipeline.redecode(result, [WRIST], mode=mode)
        assert set(again.timings_ms) == {CACHED_DECODER_STAGE, "total"}
        assert not any("backbone" in s or "preprocess" in s for s in again.timings_ms)
        assert _rel(again.vertices, result.vertices) > 1e-4


def test_full_mode_redecode_needs_a_full_mode_run(pipeline, image):
    with pytest.raises(UserError, match="full mode first"):
        pipeline.redecode(pipeline.run(image, BOXES[0]), [WRIST], mode="full")


@pytest.mark.parametrize("mode", ["body", "full"])
def test_a_batch_with_prompts_equals_each_person_alone(pipeline, image, mode):
    prompts = [[WRIST], [], [KNEE]]  # two people with one prompt share a prompted batch
    together = pipeline.run_people(image, BOXES, mode=mode, prompts=prompts)
    for box, mine, person in zip(BOXES, prompts, together):
        alone = pipeline.run(image, box, mode=mode, prompts=mine)
        _same_person(person, alone, 1e-5)
        assert person.prompts == mine
    with pytest.raises(UserError, match="person 2's crop"):
        pipeline.run_people(image, BOXES, prompts=[[], [], [WRIST]])
    with pytest.raises(UserError, match="prompts for 2 people, but there are 3"):
        pipeline.run_people(image, BOXES, prompts=[[], []])


def test_full_mode_sends_the_users_keypoint_instead_of_the_hands():
    """The re-run's prompts: the hands' wrists and elbows, but the user's place for a keypoint
    the user prompted (here the left wrist), and the user's prompt added."""
    from sam3dbody_gui.model import full_mode

    sent = {}

    class Spy:
        prompt_encoder = type("P", (), {"add_no_mask": staticmethod(lambda f: f)})()
        decoder_dtype = torch.float32

        def body_branch(self):
            return None

        def run_decoder(self, branch, features, cam, prompt, prev=None):
            sent["prompt"] = prompt
            return {}

    crop = torch.tensor([[[0.1, 0.1, 41.0], [0.2, 0.2, 62.0], [-0.1, 0.3, 8.0], [0.0, -0.2, 7.0]]])
    body = {k: torch.zeros(1, n) for k, n in (("pred_pose_raw", 266), ("shape", 45), ("scale", 28),
                                               ("hand", 108), ("face", 72), ("pred_cam", 3))}
    user = torch.tensor([[[0.75, 0.25, 62.0]]])
    accepted = torch.ones(1, 2, dtype=torch.bool)
    _, used = full_mode._rerun_body(Spy(), body, torch.zeros(1, 1, 1, 1), None, crop, accepted, user)
    labels = sent["prompt"][0, :, 2].tolist()
    assert sorted(labels) == [7.0, 8.0, 41.0, 62.0] and int(used) == 3
    assert sent["prompt"][0, labels.index(62.0), :2].tolist() == [0.75, 0.25]
    _, used = full_mode._rerun_body(Spy(), body, torch.zeros(1, 1, 1, 1), None, crop, accepted)
    assert sorted(sent["prompt"][0, :, 2].tolist()) == [7.0, 8.0, 41.0, 62.0] and int(used) == 4


# ------------------------------------------------------------------------------------- JSON --
def test_prompts_round_trip_through_params_json(pipeline, image):
    from sam3dbody_gui.export.scene import people_json

    one = pipeline.run(image, BOXES[0], prompts=[WRIST, ANKLE])
    data = json.loads(json.dumps(one.to_json_dict()))
    assert data["prompts"][0] == {"name": "left_wrist", "index": 62, "x": 300.0, "y": 200.0}
    assert read_prompts(data) == [[WRIST, ANKLE]]
    several = pipeline.run_people(image, BOXES[:2], prompts=[[], [dataclasses.replace(WRIST, x=320.0)]])
    data = json.loads(json.dumps(people_json(several, ["user"] * 2, [None] * 2)))
    assert read_prompts(data) == [[], [dataclasses.replace(WRIST, x=320.0)]]
    data["people"][1]["prompts"][0]["index"] = 41
    with pytest.raises(UserError, match="MHR70 numbers it 62"):
        read_prompts(data)


# -------------------------------------------------------------------------------------- CLI --
def _infer(capsys, *args):
    rc = main(["infer", str(sample_image_path()), "--device", "cpu", "--backend", "pytorch", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_keypoint_is_recorded_in_the_json_and_changes_the_mesh(capsys, tiny_model_dir, tmp_path):
    runs = {}
    for name, extra in (("plain", ()), ("prompted", ("--keypoint", "left_wrist", "300", "200"))):
        rc, out, err = _infer(capsys, "--bbox", *BOXES[0], "--model", tiny_model_dir, *extra,
                              "--out", tmp_path / f"{name}.obj", "--json", tmp_path / f"{name}.json")
        assert rc == 0, err
        runs[name] = (trimesh.load(tmp_path / f"{name}.obj", process=False, force="mesh"),
                      json.loads((tmp_path / f"{name}.json").read_text()))
    assert "keypoint prompts: left_wrist at (300, 200)" in out
    assert runs["prompted"][1]["prompts"] == [{"name": "left_wrist", "index": 62, "x": 300.0, "y": 200.0}]
    assert runs["plain"][1]["prompts"] == []
    assert np.abs(runs["prompted"][0].vertices - runs["plain"][0].vertices).max() > 1e-5


def test_cli_keypoint_for_one_of_several_people(capsys, tiny_model_dir, tmp_path):
    boxes = ("--bbox", *BOXES[0], "--bbox", *BOXES[1])
    rc, out, err = _infer(capsys, *boxes, "--model", tiny_model_dir, "--keypoint", "1:left-wrist", "320", "200",
                          "--json", tmp_path / "p.json")
    assert rc == 0, err
    people = json.loads((tmp_path / "p.json").read_text())["people"]
    assert [p["prompts"] for p in people] == [[], [{"name": "left_wrist", "index": 62, "x": 320.0, "y": 200.0}]]
    rc, out, err = _infer(capsys, *boxes, "--model", tiny_model_dir, "--keypoint", "left_wrist", "320", "200",
                          "--json", tmp_path / "q.json")
    assert rc == EXIT_USER_ERROR and "say whose keypoint it is" in err and "0:left_wrist" in err
    assert not (tmp_path / "q.json").exists()


def test_cli_refuses_more_prompts_than_the_config_allows_before_loading(capsys, tiny_model_dir, tmp_path):
    from sam3dbody_gui.model.config import load_model_config, save_model_config

    folder = tmp_path / "one_click"
    (folder / "assets").mkdir(parents=True)
    (folder / "model.ckpt").write_bytes(b"not loaded: the limit is checked first")
    (folder / "assets" / "mhr_model.pt").symlink_to(tiny_model_dir / "assets" / "mhr_model.pt")
    config = load_model_config(tiny_model_dir / "model_config.yaml")
    save_model_config(dataclasses.replace(config, max_num_clicks=1), folder / "model_config.yaml")
    rc, out, err = _infer(capsys, "--bbox", *BOXES[0], "--model", folder, "--json", tmp_path / "p.json",
                          "--keypoint", "left_wrist", "300", "200", "--keypoint", "nose", "200", "60")
    assert rc == EXIT_USER_ERROR
    assert "at most 1 per person" in err and "MAX_NUM_CLICKS" in err and "loading the model" not in out
    rc, out, err = _infer(capsys, "--bbox", *BOXES[0], "--model", tiny_model_dir, "--json", tmp_path / "p.json",
                          "--keypoint", "left_wirst", "300", "200")
    assert rc == EXIT_USER_ERROR and "did you mean left_wrist" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_the_captured_prompted_pass_equals_the_eager_one(tiny_model_dir, image):
    from sam3dbody_gui.pipeline.build import build_pipeline

    pipe = build_pipeline(tiny_model_dir, device="cuda", precision="fp32", backend="pytorch", compile_decoder=False)
    eager = build_pipeline(tiny_model_dir, device="cuda", precision="fp32", backend="pytorch", cuda_graph=False)
    plain = pipe.run(image, BOXES[0])
    for prompts in ([WRIST], [WRIST, ANKLE]):
        got = pipe.redecode(plain, prompts)
        assert pipe.prompted_decoder.status == "CUDA graph per prompt count"
        _same_person(got, eager.redecode(plain, prompts), 1e-4)
        _same_person(got, pipe.run(image, BOXES[0], prompts=prompts), 1e-6)
