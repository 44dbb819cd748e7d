"""`infer` with several people: --bbox given more than once → a scene, a file each, a JSON of people;
the contact sheet and turntable from the CLI; `bench --people`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from sam3dbody_gui.bundled import sample_image_path
from sam3dbody_gui.cli import EXIT_USER_ERROR, main

BOXES = [("20", "10", "370", "512"), ("200", "40", "470", "500")]


def _infer(capsys, *args) -> tuple[int, str, str]:
    rc = main(["infer", str(sample_image_path()), "--device", "cpu", "--backend", "pytorch", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_two_boxes_give_a_scene_of_two_named_meshes_and_two_people_in_the_json(capsys, tiny_model_dir, tmp_path):
    rc, out, err = _infer(capsys, "--bbox", *BOXES[0], "--bbox", *BOXES[1], "--model", tiny_model_dir,
                          "--out", tmp_path / "scene.glb", "--json", tmp_path / "p.json", "--out-dir", tmp_path,
                          "--overlay", tmp_path / "o.png", "--pca", tmp_path / "pca.png")
    assert rc == 0, err
    assert "people: 2" in out
    scene = trimesh.load(tmp_path / "scene.glb")
    assert isinstance(scene, trimesh.Scene) and sorted(scene.geometry) == ["person_0", "person_1"]
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["num_people"] == 2 and [p["source"] for p in data["people"]] == ["user", "user"]
    assert data["people"][1]["box_xyxy"] == pytest.approx([float(v) for v in BOXES[1]])
    each = [trimesh.load(tmp_path / f"person_{i}.glb", force="mesh") for i in range(2)]
    for i, mesh in enumerate(each):  # the files hold the scene's people
        transform, geometry = scene.graph[f"person_{i}"]
        placed = trimesh.transform_points(scene.geometry[geometry].vertices, transform)
        np.testing.assert_allclose(mesh.vertices, placed, atol=1e-5)
    with Image.open(tmp_path / "pca.png") as pca:
        assert pca.width == 2 * pca.height  # one map per person, side by side


def test_several_people_in_a_one_object_format_are_refused_before_any_work(capsys, tiny_model_dir, tmp_path):
    rc, _, err = _infer(capsys, "--bbox", *BOXES[0], "--bbox", *BOXES[1], "--model", tiny_model_dir,
                        "--out", tmp_path / "m.stl")
    assert rc == EXIT_USER_ERROR and "2 people cannot go in one .stl file" in err
    assert list(tmp_path.iterdir()) == []


def test_sheet_and_turntable_from_the_command_line(capsys, tiny_model_dir, tmp_path):
    import av

    rc, _, err = _infer(capsys, "--bbox", *BOXES[0], "--model", tiny_model_dir, "--sheet", tmp_path / "sheet.png",
                        "--turntable", tmp_path / "spin.mp4")
    assert rc == 0, err
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.size == (4 * 512, 512 + 28)
    with av.open(str(tmp_path / "spin.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 36


def test_bench_people_prints_persons_per_second(capsys, tiny_model_dir, tmp_path):
    rc = main(["bench", "--model", str(tiny_model_dir), "--device", "cpu", "--configs", "none", "--e2e",
               "pytorch:fp32", "--people", "1,3", "--iterations", "1", "--json", str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "several people per photo" in out and "persons/s" in out
    rows = json.loads((tmp_path / "b.json").read_text())["people"]
    assert [r["people"] for r in rows] == [1, 3]
    for r in rows:
        assert r["persons_per_s"] == pytest.approx(1000 * r["people"] / r["ms_per_photo"])


def test_rigged_glb_and_bvh_from_the_command_line(capsys, tiny_model_dir, tmp_path):
    import pygltflib

    rc, out, err = _infer(capsys, "--bbox", *BOXES[0], "--model", tiny_model_dir, "--out", tmp_path / "rig.glb",
                          "--rigged", "--bvh", tmp_path / "pose.bvh")
    assert rc == 0, err
    glb = pygltflib.GLTF2().load(str(tmp_path / "rig.glb"))
    assert len(glb.skins) == 1 and len(glb.skins[0].joints) == 127
    attributes = glb.meshes[0].primitives[0].attributes
    assert attributes.JOINTS_0 is not None and attributes.WEIGHTS_0 is not None
    text = (tmp_path / "pose.bvh").read_text()
    assert text.startswith("HIERARCHY") and text.count("JOINT ") + text.count("ROOT ") == 127
    assert "Frames: 1" in text
    rc, _, err = _infer(capsys, "--bbox", *BOXES[0], "--model", tiny_model_dir, "--out", tmp_path / "rig.obj",
                        "--rigged")
    assert rc == EXIT_USER_ERROR and "skinned glTF" in err


def test_detect_finds_people_with_the_synthetic_detector(capsys, tiny_model_dir, tmp_path):
    pytest.importorskip("transformers")
    detector = tmp_path / "detector"
    assert main(["make-synthetic", str(detector), "--detector"]) == 0
    capsys.readouterr()
    rc, out, err = _infer(capsys, "--detect", "--detector", detector, "--max-people", "3", "--model", tiny_model_dir,
                          "--out", tmp_path / "scene.glb", "--json", tmp_path / "p.json")
    assert rc == 0, err
    assert "detector: 3 people" in out and "kept the 3 most confident" in out  # the cap bit, and it says so
    data = json.loads((tmp_path / "p.json").read_text())
    assert [p["source"] for p in data["people"]] == ["detector"] * 3
    assert all(0 < p["score"] <= 1 for p in data["people"])
    assert sorted(trimesh.load(tmp_path / "scene.glb").geometry) == ["person_0", "person_1", "person_2"]
    rc, _, err = _infer(capsys, "--detect", "--bbox", *BOXES[0], "--model", tiny_model_dir, "--out", tmp_path / "x.obj")
    assert rc == EXIT_USER_ERROR and "not both" in err


def test_hundreds_of_boxes_are_capped_with_a_message(capsys, tiny_model_dir, tmp_path):
    many = []
    for i in range(200):
        many += ["--bbox", str(i), "0", str(i + 300), "500"]
    rc, out, err = _infer(capsys, *many, "--max-people", "3", "--model", tiny_model_dir, "--json", tmp_path / "p.json")
    assert rc == 0, err
    assert "kept the first 3 of 200 boxes" in out
    assert json.loads((tmp_path / "p.json").read_text())["num_people"] == 3
