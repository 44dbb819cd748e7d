"""Several people in one file: a GLB scene with a named mesh per person, OBJ objects, PLY with a
per-vertex person index, one file per person; read back through trimesh."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from sam3dbody_gui.bundled import sample_image_path
from sam3dbody_gui.errors import UserError
from sam3dbody_gui.export.scene import people_json, save_each_person, save_scene
from sam3dbody_gui.pipeline.image_io import load_image

BOXES = [(20.0, 10.0, 370.0, 512.0), (200.0, 40.0, 470.0, 500.0)]


@pytest.fixture(scope="module")
def people(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    return pipe.run_people(load_image(sample_image_path()), BOXES)


def _verts(people):
    return [p.vertices_camera for p in people], [p.faces for p in people]


def test_glb_scene_has_one_named_mesh_per_person_in_the_camera_frame(people, tmp_path):
    verts, faces = _verts(people)
    scene = trimesh.load(save_scene(tmp_path / "scene.glb", verts, faces))
    assert isinstance(scene, trimesh.Scene) and sorted(scene.geometry) == ["person_0", "person_1"]
    for i, v in enumerate(verts):
        node = f"person_{i}"
        transform, geometry = scene.graph[node]
        placed = trimesh.transform_points(scene.geometry[geometry].vertices, transform)
        np.testing.assert_allclose(placed, v, atol=1e-5)


def test_obj_and_ply_keep_the_people_apart(people, tmp_path):
    verts, faces = _verts(people)
    obj = save_scene(tmp_path / "scene.obj", verts, faces, frame="upright")
    assert [line for line in obj.read_text().splitlines() if line.startswith("o ")] == ["o person_0", "o person_1"]
    ply = trimesh.load(save_scene(tmp_path / "scene.ply", verts, faces), process=False)
    person = np.asarray(ply.metadata["_ply_raw"]["vertex"]["data"]["person"]).reshape(-1)
    assert np.bincount(person).tolist() == [len(v) for v in verts]
    np.testing.assert_allclose(ply.vertices[person == 1], verts[1], atol=1e-5)


def test_upright_scene_has_one_floor_and_keeps_where_people_stood(people, tmp_path):
    verts, faces = _verts(people)
    paths = save_each_person(tmp_path, verts, faces, frame="upright", suffix=".obj")
    assert [p.name for p in paths] == ["person_0.obj", "person_1.obj"]
    loaded = [trimesh.load(p, process=False).vertices for p in paths]
    assert abs(min(v[:, 1].min() for v in loaded)) < 1e-6  # the group stands on y = 0
    # Relative placement is the camera frame's, turned: offsets between the people are kept.
    offset_camera = verts[1].mean(0) - verts[0].mean(0)
    offset_upright = loaded[1].mean(0) - loaded[0].mean(0)
    np.testing.assert_allclose(offset_upright, offset_camera * [1, -1, -1], atol=1e-5)


def test_people_json_holds_each_person_and_where_their_box_came_from(people):
    data = json.loads(json.dumps(people_json(people, ["user", "detector"], [None, 0.87])))
    assert data["num_people"] == 2 and [p["name"] for p in data["people"]] == ["person_0", "person_1"]
    assert data["people"][0]["source"] == "user" and data["people"][0]["score"] is None
    assert data["people"][1]["score"] == pytest.approx(0.87)
    assert data["people"][1]["box_xyxy"] == pytest.approx(list(BOXES[1]))
    assert "keypoints_3d" in data["people"][0] and "frames" in data


def test_nobody_and_unknown_formats_are_user_errors(people, tmp_path):
    with pytest.raises(UserError, match="nobody"):
        save_scene(tmp_path / "s.glb", [], [])
    verts, faces = _verts(people)
    with pytest.raises(UserError, match=r"\.glb, \.obj, \.ply"):
        save_scene(tmp_path / "s.stl", verts, faces)
    assert list(tmp_path.iterdir()) == []
