"""Mesh files read back through trimesh: OBJ with normals, PLY, GLB, STL; the upright frame."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.export.mesh_file import mesh_in_frame, save_mesh
from sam3dbody_gui.mesh_math import vertex_normals


@pytest.fixture(scope="module")
def body(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    image = np.full((480, 360, 3), 128, np.uint8)
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    return pipe.run(image, (40, 20, 320, 460))


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb", ".stl"])
def test_every_format_round_trips_through_trimesh(body, tmp_path, suffix):
    verts = mesh_in_frame(body.vertices_camera, "upright")
    path = save_mesh(tmp_path / f"body{suffix}", verts, body.faces)
    back = trimesh.load(path, force="mesh", process=False)
    if suffix == ".stl":  # STL stores triangles, not shared vertices
        assert len(back.faces) == len(body.faces)
        assert np.allclose(back.vertices[back.faces], verts[body.faces], atol=1e-5)
    else:
        assert back.vertices.shape == verts.shape and np.allclose(back.vertices, verts, atol=1e-5)
        assert np.array_equal(back.faces, body.faces)


def test_obj_carries_the_vertex_normals(body, tmp_path):
    verts = mesh_in_frame(body.vertices_camera, "upright")
    path = save_mesh(tmp_path / "body.obj", verts, body.faces)
    lines = path.read_text().splitlines()
    normals = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("vn ")])
    assert normals.shape == verts.shape
    assert np.allclose(normals, vertex_normals(verts, body.faces), atol=1e-5)
    assert any(line.startswith("f ") and "//" in line for line in lines)  # faces reference them


def test_upright_frame_stands_the_body_on_the_floor(body):
    cam = body.vertices_camera
    up = mesh_in_frame(cam, "upright")
    assert abs(up[:, 1].min()) < 1e-9  # feet on y = 0
    lo, hi = up.min(0), up.max(0)
    assert abs(lo[0] + hi[0]) < 1e-9 and abs(lo[2] + hi[2]) < 1e-9  # centred in x and z
    # Head up: the vertex highest in the photo (smallest camera y) is the highest upright.
    assert np.argmin(cam[:, 1]) == np.argmax(up[:, 1])
    # A rotation, not a mirror: distances and the winding (signed volume) are kept.
    tri = cam[body.faces]
    tri_up = up[body.faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
    vol_up = np.einsum("ij,ij->i", tri_up[:, 0], np.cross(tri_up[:, 1], tri_up[:, 2])).sum()
    assert np.isclose(vol, vol_up, rtol=1e-4)  # a mirror would flip its sign


def test_unknown_suffix_is_a_user_error(body, tmp_path):
    with pytest.raises(UserError, match=r"\.obj, \.ply, \.glb, \.stl"):
        save_mesh(tmp_path / "body.fbx", body.vertices, body.faces)
    assert not (tmp_path / "body.fbx").exists()


def test_vertex_normals_equal_the_scatter_add_to_the_bit():
    """The weighted-bincount sum adds each vertex's face normals in np.add.at's order: the same
    normals to the last bit (a vertex no face uses has a zero normal, not a NaN)."""
    from sam3dbody_gui.mesh_math import face_normals, vertex_normals

    rng = np.random.default_rng(5)
    vertices = rng.normal(size=(500, 3))
    faces = rng.integers(0, 490, size=(900, 3))  # vertices 490..499 belong to no face
    weighted = face_normals(vertices, faces, unit=False)
    want = np.zeros((500, 3))
    for k in range(3):
        np.add.at(want, faces[:, k], weighted)
    want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    got = vertex_normals(vertices, faces, dtype=np.float64)
    assert np.array_equal(got, want)
    assert np.all(got[490:] == 0)
