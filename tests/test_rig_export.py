"""Rigged export round trips: the GLB read back with pygltflib and skinned here (numpy linear
blend skinning) gives the pipeline's vertices and joints; the BVH read back with a parser written
here gives the pipeline's joints by forward kinematics."""

from __future__ import annotations

import re

import numpy as np
import pygltflib as gl
import pytest
import trimesh

from sam3dbody_gui.export.bvh import save_bvh
from sam3dbody_gui.export.mesh_file import mesh_in_frame
from sam3dbody_gui.export.rigged_gltf import save_rigged_gltf
from sam3dbody_gui.export.rigged_person import rigged_people
from sam3dbody_gui.model.rig_fit import rig_skeleton

BOXES = [(40.0, 20.0, 320.0, 460.0), (150.0, 60.0, 350.0, 470.0)]
MM = 1e-3  # metres


@pytest.fixture(scope="module")
def run(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (480, 360, 3), dtype=np.uint8)  # random weights: any photo poses the body
    return pipe, pipe.run_people(image, BOXES)


@pytest.fixture(scope="module")
def skeleton(run):
    return rig_skeleton(run[0].model.mhr)


def _upright(result, points):
    """Points like result.vertices (camera frame, relative to cam_t) in the result's upright frame."""
    up = mesh_in_frame(result.vertices_camera, "upright")
    shift = up[0] - (result.vertices_camera[0] * [1, -1, -1])
    return (np.asarray(points, np.float64) + result.cam_t) * [1, -1, -1] + shift


# --- a small glTF reader: accessors, node transforms, skinning ---------------------------------
_COMPONENTS = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_BYTE: np.uint8,
               gl.UNSIGNED_INT: np.uint32}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _accessor(doc: gl.GLTF2, index: int) -> np.ndarray:
    acc = doc.accessors[index]
    view = doc.bufferViews[acc.bufferView]
    blob = doc.binary_blob()
    dtype = np.dtype(_COMPONENTS[acc.componentType])
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    data = np.frombuffer(blob, dtype, count=acc.count * _WIDTH[acc.type], offset=start)
    return data.reshape(acc.count, _WIDTH[acc.type]).astype(np.float64)


def _trs(node) -> np.ndarray:
    x, y, z, w = node.rotation or [0, 0, 0, 1]
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3] = r * np.asarray(node.scale or [1, 1, 1])
    m[:3, 3] = node.translation or [0, 0, 0]
    return m


def _node_worlds(doc: gl.GLTF2) -> dict[int, np.ndarray]:
    out = {}

    def visit(i, parent):
        out[i] = parent @ _trs(doc.nodes[i])
        for c in doc.nodes[i].children:
            visit(c, out[i])

    for root in doc.scenes[doc.scene].nodes:
        visit(root, np.eye(4))
    return out


def _skinned(doc: gl.GLTF2, mesh_node: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh of `mesh_node` skinned as a glTF viewer does; and its joints' world positions."""
    node = doc.nodes[mesh_node]
    prim = doc.meshes[node.mesh].primitives[0]
    skin = doc.skins[node.skin]
    worlds = _node_worlds(doc)
    ibm = _accessor(doc, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    joint_mats = np.stack([worlds[j] for j in skin.joints]) @ ibm
    pos = _accessor(doc, prim.attributes.POSITION)
    joints = _accessor(doc, prim.attributes.JOINTS_0).astype(int)
    weights = _accessor(doc, prim.attributes.WEIGHTS_0)
    per_vertex = np.einsum("vk,vkij->vij", weights, joint_mats[joints])
    posed = np.einsum("vij,vj->vi", per_vertex[:, :3, :3], pos) + per_vertex[:, :3, 3]
    return posed, np.stack([worlds[j][:3, 3] for j in skin.joints])


def test_rigged_glb_skins_back_onto_the_pipelines_body(run, skeleton, tmp_path):
    pipe, results = run
    result = results[0]
    path = save_rigged_gltf(tmp_path / "rig.glb", rigged_people([result], skeleton, pipe.model.mhr))
    doc = gl.GLTF2().load(str(path))
    assert len(doc.skins) == 1 and len(doc.skins[0].joints) == 127
    mesh_node = next(i for i, n in enumerate(doc.nodes) if n.skin is not None)
    prim = doc.meshes[doc.nodes[mesh_node].mesh].primitives[0]
    weights = _accessor(doc, prim.attributes.WEIGHTS_0)
    assert weights.shape == (len(result.vertices), 4) and (weights >= 0).all()
    assert np.abs(weights.sum(axis=1) - 1).max() < 1e-6
    assert [doc.nodes[j].name for j in doc.skins[0].joints] == list(skeleton.names)
    posed, joint_pos = _skinned(doc, mesh_node)
    want = mesh_in_frame(result.vertices_camera, "upright")
    assert np.linalg.norm(posed - want, axis=1).max() < 1 * MM
    assert np.linalg.norm(joint_pos - _upright(result, result.joints), axis=1).max() < 1 * MM
    assert abs(want[:, 1].min()) < 1e-9  # upright: feet on y = 0
    # The bind mesh is not the posed one: the skin does the posing.
    bind = _accessor(doc, prim.attributes.POSITION)
    assert np.linalg.norm(bind - want, axis=1).max() > 0.05


def test_several_people_get_a_skin_each_in_one_file(run, skeleton, tmp_path):
    from sam3dbody_gui.export.scene import people_in_frame

    pipe, results = run
    path = save_rigged_gltf(tmp_path / "two.glb", rigged_people(results, skeleton, pipe.model.mhr))
    doc = gl.GLTF2().load(str(path))
    mesh_nodes = [i for i, n in enumerate(doc.nodes) if n.skin is not None]
    assert len(doc.skins) == len(mesh_nodes) == 2
    assert not set(doc.skins[0].joints) & set(doc.skins[1].joints)
    want = people_in_frame([r.vertices_camera for r in results], "upright")
    for node, v in zip(mesh_nodes, want):
        assert np.linalg.norm(_skinned(doc, node)[0] - v, axis=1).max() < 1 * MM
    # A plain glTF consumer reads the meshes (in the bind pose: trimesh does not skin).
    scene = trimesh.load(path, force="scene", process=False)
    assert sorted(len(g.vertices) for g in scene.geometry.values()) == [len(results[0].vertices)] * 2


def test_without_baked_correctives_the_skin_misses_only_the_correctives(run, skeleton, tmp_path):
    pipe, results = run
    result = results[0]
    people = rigged_people([result], skeleton, pipe.model.mhr, correctives="none")
    doc = gl.GLTF2().load(str(save_rigged_gltf(tmp_path / "rest.glb", people)))
    posed, joint_pos = _skinned(doc, next(i for i, n in enumerate(doc.nodes) if n.skin is not None))
    err = np.linalg.norm(posed - mesh_in_frame(result.vertices_camera, "upright"), axis=1)
    print(f"\nrest-mesh skin vs pipeline (pose correctives): max {err.max() / MM:.2f} mm, "
          f"median {np.median(err) / MM:.3f} mm")
    assert 0 < err.max() < 10 * MM and np.median(err) < 1 * MM
    assert np.linalg.norm(joint_pos - _upright(result, result.joints), axis=1).max() < 1 * MM


# --- a small BVH reader --------------------------------------------------------------------------
def _read_bvh(text: str):
    head, motion = text.split("MOTION")
    tokens = re.findall(r"[{}]|[^\s{}]+", head)
    joints, stack, i = [], [], 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            joints.append({"name": tokens[i + 1], "parent": stack[-1] if stack else -1})
            i += 2
        elif tok == "End":
            depth = 0
            while True:  # skip the End Site block
                i += 1
                depth += tokens[i] == "{"
                depth -= tokens[i] == "}"
                if tokens[i] == "}" and depth == 0:
                    break
            i += 1
        elif tok == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            joints[stack[-1]]["offset"] = np.array([float(t) for t in tokens[i + 1:i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            joints[stack[-1]]["channels"] = tokens[i + 2:i + 2 + n]
            i += 2 + n
        else:
            raise AssertionError(f"unexpected BVH token {tok!r}")
    lines = motion.strip().splitlines()
    frames = np.array([[float(v) for v in line.split()] for line in lines[2:]])
    return joints, frames


def _axis(name: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[name[0]]


def _bvh_positions(joints, values) -> np.ndarray:
    rot, pos, k = [None] * len(joints), np.zeros((len(joints), 3)), 0
    for j, joint in enumerate(joints):  # file order: every parent before its children
        local_t, local_r = joint["offset"].copy(), np.eye(3)
        for ch in joint["channels"]:
            if ch.endswith("position"):
                local_t["XYZ".index(ch[0])] = values[k]
            else:
                local_r = local_r @ _axis(ch, values[k])
            k += 1
        p = joint["parent"]
        rot[j] = local_r if p < 0 else rot[p] @ local_r
        pos[j] = local_t if p < 0 else pos[p] + rot[p] @ local_t
    assert k == len(values)
    return pos


def test_bvh_forward_kinematics_gives_the_pipelines_joints(run, skeleton, tmp_path):
    pipe, results = run
    result = results[0]
    person = rigged_people([result], skeleton, pipe.model.mhr)[0]
    text = save_bvh(tmp_path / "pose.bvh", skeleton, [person.world]).read_text()
    joints, frames = _read_bvh(text)
    assert [j["name"] for j in joints] == [skeleton.names[j] for j in skeleton.order()]
    assert frames.shape[0] == 1 and len(joints) == 127
    assert sum(len(j["channels"]) for j in joints) == 3 + 3 * 127  # a photo: rotations, and the root's place
    want = _upright(result, result.joints)[skeleton.order()] * 100  # cm
    assert np.linalg.norm(_bvh_positions(joints, frames[0]) - want, axis=1).max() < 0.1


def test_bvh_frames_whose_bones_change_get_position_channels(run, skeleton, tmp_path):
    pipe, results = run
    people = rigged_people(results, skeleton, pipe.model.mhr)  # two bodies as two frames of one
    joints, frames = _read_bvh(save_bvh(tmp_path / "two.bvh", skeleton, [p.world for p in people]).read_text())
    assert frames.shape[0] == 2
    assert any(len(j["channels"]) == 6 for j in joints[1:])
    for person, values in zip(people, frames):
        want = person.posed_joints[skeleton.order()] * 100
        assert np.linalg.norm(_bvh_positions(joints, values) - want, axis=1).max() < 0.1
