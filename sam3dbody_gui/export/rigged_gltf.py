"""Rigged glTF 2.0 (.glb): each person a skinned mesh with MHR's 127-joint skeleton, posed.

Per person (several people: one mesh, one skin and one joint hierarchy each, in one file):
  * a mesh in the bind pose (metres, the rig's frame) with NORMAL, JOINTS_0 / WEIGHTS_0 (the
    four heaviest influences, normalised, as glTF's core skinning holds four);
  * a skin whose inverse bind matrices are the rig's, and whose joints are nodes named as the
    rig names them, each posed by its local translation, rotation and (uniform) scale taken from
    the rig's joint transforms for the recovered pose, in the upright frame (Y up, metres, feet on
    y = 0): a glTF viewer skinning the bind mesh shows the recovered body where the plain mesh
    export puts it.
The skinned mesh's node is a scene root (glTF ignores a skinned mesh's own transform and warns
when it has parents). Written with pygltflib, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pygltflib as gl

from ..atomic_file import atomic_path
from ..errors import UserError
from ..mesh_math import vertex_normals
from ..model.skel_state import local_transforms, quat_from_matrix, split_similarity
from .rigged_person import RiggedPerson

GENERATOR = "sam3dbody-gui rigged export"


class _Blob:
    """The binary chunk: arrays appended 4-byte aligned, one buffer view and accessor each."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf = gltf
        self.parts: list[bytes] = []
        self.length = 0

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None,
            with_bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.length, byteLength=len(data),
                                                   target=target))
        self.parts.append(data + b"\0" * (-len(data) % 4))
        self.length += len(self.parts[-1])
        flat = array.reshape(len(array), -1)
        self.gltf.accessors.append(gl.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array), type=kind,
            min=flat.min(axis=0).tolist() if with_bounds else None,
            max=flat.max(axis=0).tolist() if with_bounds else None))
        return len(self.gltf.accessors) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _joint_nodes(gltf: gl.GLTF2, person: RiggedPerson) -> list[int]:
    """One node per joint, posed (local TRS from the world transforms), children linked."""
    sk = person.skeleton
    local = local_transforms(person.world, sk.parents)
    t, r, s = split_similarity(local)
    q = quat_from_matrix(r)
    first = len(gltf.nodes)
    for j in range(sk.num_joints):
        gltf.nodes.append(gl.Node(name=sk.names[j], translation=t[j].tolist(), rotation=q[j].tolist(),
                                  scale=[float(s[j])] * 3))
    for j, p in enumerate(sk.parents.tolist()):
        if p >= 0:
            gltf.nodes[first + p].children.append(first + j)
    return [first + j for j in range(sk.num_joints)]


def _skin_arrays(person: RiggedPerson) -> tuple[np.ndarray, np.ndarray]:
    joints = np.asarray(person.skeleton.skin_joints)
    weights = np.asarray(person.skeleton.skin_weights, np.float32)
    weights = weights / weights.sum(axis=1, keepdims=True)  # normalised in float32, as stored
    return np.where(weights > 0, joints, 0).astype(np.uint16), weights.astype(np.float32)


def rigged_gltf(people: Sequence[RiggedPerson]) -> gl.GLTF2:
    if not people:
        raise UserError("there is nobody to save: no person was recovered")
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator=GENERATOR), scene=0, scenes=[gl.Scene(nodes=[])],
                    nodes=[], meshes=[], skins=[], accessors=[], bufferViews=[], buffers=[])
    blob = _Blob(gltf)
    for person in people:
        add_skinned_person(gltf, blob, person.name, person, person)
    data = blob.bytes()
    gltf.buffers.append(gl.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    return gltf


def rigged_glb_bytes(people: Sequence[RiggedPerson]) -> bytes:
    return b"".join(rigged_gltf(people).save_to_bytes())


def save_rigged_gltf(path: Path, people: Sequence[RiggedPerson]) -> Path:
    """Every person rigged in one binary glTF at `path` (.glb)."""
    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise UserError(f"a rigged body is saved as .glb, not {path.suffix or 'a file without extension'}")
    data = rigged_glb_bytes(people)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def add_skinned_person(gltf: gl.GLTF2, blob: "_Blob", name: str, skin_person, pose_person,
                       morph_targets=None, morph_count: int = 0) -> tuple[list[int], int, int]:
    """One person's skinned mesh, joint nodes, skin and mesh node, added to `gltf`. `skin_person`
    gives the bind mesh, skin and inverse bind matrices; `pose_person` the joint nodes' pose.
    `morph_targets`: accessor-ready arrays (one per target) with `morph_count` weights.
    Returns (joint node indices, the mesh node, the root joint's index)."""
    sk = skin_person.skeleton
    sk.order()  # raises unless the parents form a tree
    if (sk.parents < 0).sum() != 1:
        raise UserError(f"{name}'s skeleton has {(sk.parents < 0).sum()} roots; a skin needs one")
    verts = np.asarray(skin_person.bind_vertices, np.float32)
    faces = np.asarray(skin_person.faces)
    joints, weights = _skin_arrays(skin_person)
    attributes = gl.Attributes(
        POSITION=blob.add(verts, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, with_bounds=True),
        NORMAL=blob.add(vertex_normals(verts, faces).astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER),
        JOINTS_0=blob.add(joints, gl.VEC4, gl.UNSIGNED_SHORT, gl.ARRAY_BUFFER),
        WEIGHTS_0=blob.add(weights, gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER))
    indices = blob.add(faces.reshape(-1).astype(np.uint32), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER)
    primitive = gl.Primitive(attributes=attributes, indices=indices)
    mesh = gl.Mesh(name=name, primitives=[primitive])
    if morph_targets is not None:
        primitive.targets = morph_targets
        mesh.weights = [0.0] * morph_count
    gltf.meshes.append(mesh)
    joint_nodes = _joint_nodes(gltf, pose_person)
    # glTF matrices are column-major: write each matrix transposed.
    ibm = np.ascontiguousarray(np.swapaxes(skin_person.inverse_bind, 1, 2), dtype=np.float32)
    root_joint = int(np.flatnonzero(sk.parents < 0)[0])
    root = joint_nodes[root_joint]
    gltf.skins.append(gl.Skin(name=name, joints=joint_nodes, skeleton=root,
                              inverseBindMatrices=blob.add(ibm, gl.MAT4, gl.FLOAT)))
    gltf.nodes.append(gl.Node(name=name, mesh=len(gltf.meshes) - 1, skin=len(gltf.skins) - 1,
                              extras={"rig_skeleton": sk.source, "rig_detail": sk.detail}))
    mesh_node = len(gltf.nodes) - 1
    gltf.scenes[0].nodes += [mesh_node, root]
    return joint_nodes, mesh_node, root_joint
