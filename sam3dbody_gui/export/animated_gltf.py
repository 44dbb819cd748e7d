"""Animated glTF 2.0 (.glb): each person of a clip a skinned mesh, one animation, a keyframe a frame.

Built on the rigged export (rigged_gltf.py: the binary chunk, the skin arrays, the joint nodes
posed at the first frame; rigged_person.py: the rig's frames and the unposing), per person:
  * one mesh, one skin, one joint hierarchy, as the single-frame file has;
  * one animation for everyone: per joint a translation, rotation and scale channel with a key
    at every frame of the clip (LINEAR; quaternions kept on one hemisphere from frame to frame,
    so the interpolation between two keys takes the short way round);
  * pose correctives ("baked", the default): what a skin cannot do (MHR's pose-dependent
    correctives, and a shape that changes from frame to frame) is one morph target per frame,
    in the bind pose, weighted 1 at its own frame: the skinned result is the pipeline's body at
    every key. Stored sparse (only the vertices that move by more than MORPH_EPS_M). "none": the
    plain skin on the clip's identity, smaller, without the correctives;
  * a person not in a frame keeps the nearest pose there, with the skeleton's root scaled to 0
    (hidden; a STEP channel, so the body does not shrink into the gap).
Frame: one upright frame for the whole clip (Y up, metres): the camera frame turned a half turn
about x, then shifted once so the lowest point of the clip is on y = 0 and the clip is centred
in x and z. People move in it as they moved in front of the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pygltflib as gl

from ..atomic_file import atomic_path
from ..errors import UserError
from ..model.rig_skeleton import RigSkeleton, call_rig, unpose_vertices
from ..model.skel_state import local_transforms, quat_from_matrix, split_similarity
from .rigged_gltf import _Blob, add_skinned_person
from .rigged_person import _FLIP, CM_PER_M, CORRECTIVES, RiggedPerson, in_metres, rig_inputs

GENERATOR = "sam3dbody-gui animated export"
MORPH_EPS_M = 1e-5  # a morph target leaves out vertices that move less than this (0.01 mm)
HIDDEN_SCALE = 0.0


@dataclass(frozen=True)
class AnimatedPerson:
    name: str
    skeleton: RigSkeleton
    world: np.ndarray  # (N, J, 4, 4) joint transforms per clip frame, clip's upright frame, metres
    present: np.ndarray  # (N,) bool: the person is in that frame (else the nearest pose, hidden)
    bind_vertices: np.ndarray  # (V, 3) metres, rig frame, bind pose (the clip's identity)
    faces: np.ndarray
    morphs: Optional[np.ndarray]  # (N, V, 3) bind-space offsets per frame ("baked"), or None

    def rigged(self, frame: int = 0) -> RiggedPerson:
        """The person at one frame, as the single-frame export takes it."""
        return RiggedPerson(self.name, self.skeleton, self.world[frame], self.bind_vertices, self.faces,
                            np.zeros((0, 3)), np.zeros((0, 3)))


def clip_shift(vertices_camera: Sequence[np.ndarray]) -> np.ndarray:
    """The one translation of the clip's upright frame (see the module notes)."""
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for v in vertices_camera:
        f = np.asarray(v, np.float64) * _FLIP
        lo, hi = np.minimum(lo, f.min(0)), np.maximum(hi, f.max(0))
    return -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])


def _fill(index: np.ndarray, present: np.ndarray) -> np.ndarray:
    """For every clip frame, the nearest frame (by position) where the person is present."""
    have = np.flatnonzero(present)
    pos = np.searchsorted(have, index)
    left = have[np.clip(pos - 1, 0, len(have) - 1)]
    right = have[np.clip(pos, 0, len(have) - 1)]
    return np.where(np.abs(index - left) <= np.abs(right - index), left, right)


def animated_people(clip_frames: Sequence[int], tracks: Sequence[tuple[str, Sequence[int], Sequence]],
                    skeleton: RigSkeleton, rig, correctives: str = "baked",
                    progress: Callable[[int, int], None] = lambda done, total: None) -> list[AnimatedPerson]:
    """`tracks`: per person (name, frame indices, MeshResults at those frames). `rig`: the MHR rig
    the results came from (`pipeline.model.mhr`), run once per person-frame for the joints."""
    if correctives not in CORRECTIVES:
        raise UserError(f"correctives must be one of {', '.join(CORRECTIVES)}, got {correctives!r}")
    clip_frames = np.asarray(clip_frames)
    position = {int(f): i for i, f in enumerate(clip_frames)}
    shift = clip_shift([r.vertices_camera for _, _, results in tracks for r in results])
    total = sum(len(results) for _, _, results in tracks)
    done = 0
    people = []
    for name, frames, results in tracks:
        if not results:
            continue
        at = np.array([position[int(f)] for f in frames])
        world = np.zeros((len(results), skeleton.num_joints, 4, 4))
        world_cm = []  # the rig's own joint transforms (cm, body-relative): what the skin unposes with
        for i, r in enumerate(results):
            shape, model_params, expr = rig_inputs(r.params)
            world_cm.append(call_rig(rig, shape, model_params, expr)[1][0])
            if world_cm[-1].shape[0] != skeleton.num_joints:
                raise UserError(f"the rig poses {world_cm[-1].shape[0]} joints, its skeleton has {skeleton.num_joints}")
            world[i] = in_metres(world_cm[-1])
            world[i, :, :3, 3] += np.asarray(r.cam_t, np.float64) * _FLIP + shift
            done += 1
            progress(done, total)
        # The bind mesh: the rig's rest mesh for the person's (median) identity.
        shapes = np.stack([rig_inputs(r.params)[0][0] for r in results])
        shape = np.median(shapes, axis=0)[None].astype(np.float32)
        _, model_params, expr = rig_inputs(results[0].params)
        bind_cm = call_rig(rig, shape, np.zeros_like(model_params), expr)[0][0]
        morphs = None
        if correctives == "baked":
            morphs = np.zeros((len(clip_frames), len(bind_cm), 3), np.float32)
            for i, r in enumerate(results):
                posed_cm = np.asarray(r.vertices, np.float64) * _FLIP * CM_PER_M
                unposed = unpose_vertices(posed_cm, world_cm[i], skeleton.inverse_bind, skeleton.skin_joints,
                                          skeleton.skin_weights)
                morphs[at[i]] = (unposed - bind_cm) / CM_PER_M
        present = np.zeros(len(clip_frames), bool)
        present[at] = True
        full_world = np.zeros((len(clip_frames), skeleton.num_joints, 4, 4))
        full_world[at] = world
        nearest = _fill(np.arange(len(clip_frames)), present)
        full_world = full_world[nearest]
        if morphs is not None:
            morphs = morphs[nearest]
        people.append(AnimatedPerson(name, skeleton, full_world, present, bind_cm / CM_PER_M,
                                     np.asarray(results[0].faces), morphs))
    if not people:
        raise UserError("there is nobody to save: no person was recovered in the clip")
    return people


def _view(blob: _Blob, array: np.ndarray) -> int:
    """A buffer view of raw bytes (for sparse accessors), 4-byte aligned like `_Blob.add`'s."""
    data = np.ascontiguousarray(array).tobytes()
    blob.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=blob.length, byteLength=len(data)))
    blob.parts.append(data + b"\0" * (-len(data) % 4))
    blob.length += len(blob.parts[-1])
    return len(blob.gltf.bufferViews) - 1


def _morph_accessor(blob: _Blob, delta: np.ndarray) -> int:
    """A morph target's POSITION offsets: sparse (moved vertices only) when that is smaller."""
    delta = np.asarray(delta, np.float32)
    moved = np.flatnonzero(np.abs(delta).max(axis=1) > MORPH_EPS_M)
    kept = np.zeros_like(delta)
    kept[moved] = delta[moved]
    lo, hi = kept.min(axis=0).tolist(), kept.max(axis=0).tolist()
    if len(moved) * 2 >= len(delta):
        index = blob.add(kept, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER)
        blob.gltf.accessors[index].min, blob.gltf.accessors[index].max = lo, hi
        return index
    accessor = gl.Accessor(componentType=gl.FLOAT, count=len(delta), type=gl.VEC3, min=lo, max=hi)
    if len(moved):
        accessor.sparse = gl.Sparse(
            count=len(moved),
            indices=gl.AccessorSparseIndices(bufferView=_view(blob, moved.astype(np.uint32)),
                                             componentType=gl.UNSIGNED_INT),
            values=gl.AccessorSparseValues(bufferView=_view(blob, kept[moved])))
    blob.gltf.accessors.append(accessor)
    return len(blob.gltf.accessors) - 1


def _continuous(q: np.ndarray) -> np.ndarray:
    """(N, J, 4) quaternions with each frame on the hemisphere of the one before."""
    q = q.copy()
    for f in range(1, len(q)):
        flip = (q[f] * q[f - 1]).sum(-1) < 0
        q[f, flip] = -q[f, flip]
    return q


def animated_gltf(people: Sequence[AnimatedPerson], times: Sequence[float],
                  progress: Callable[[int, int], None] = lambda done, total: None) -> gl.GLTF2:
    if not people:
        raise UserError("there is nobody to save: no person was recovered in the clip")
    times = np.asarray(times, np.float32)
    times = times - times[0]  # the animation starts at 0 s
    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator=GENERATOR), scene=0, scenes=[gl.Scene(nodes=[])],
                    nodes=[], meshes=[], skins=[], accessors=[], bufferViews=[], buffers=[], animations=[])
    blob = _Blob(gltf)
    animation = gl.Animation(name="clip", channels=[], samplers=[])
    time_input = blob.add(times[:, None], gl.SCALAR, gl.FLOAT, with_bounds=True)
    count = len(times)

    def channel(node: int, path: str, values: np.ndarray, interpolation: str = gl.ANIM_LINEAR) -> None:
        kind = {1: gl.SCALAR, 3: gl.VEC3, 4: gl.VEC4}[values.shape[-1]] if values.ndim == 2 else gl.SCALAR
        out = blob.add(np.ascontiguousarray(values, np.float32), kind, gl.FLOAT)
        animation.samplers.append(gl.AnimationSampler(input=time_input, output=out, interpolation=interpolation))
        animation.channels.append(gl.AnimationChannel(sampler=len(animation.samplers) - 1,
                                                      target=gl.AnimationChannelTarget(node=node, path=path)))

    for n, person in enumerate(people):
        sk = person.skeleton
        if len(person.world) != count:
            raise UserError(f"{person.name} has {len(person.world)} frames, the clip {count}")
        targets = None if person.morphs is None else [
            gl.Attributes(POSITION=_morph_accessor(blob, d)) for d in person.morphs]
        joint_nodes, mesh_node, root_joint = add_skinned_person(
            gltf, blob, person.name, person.rigged(), person.rigged(int(np.argmax(person.present))), targets, count)

        local = local_transforms(person.world, sk.parents)
        t, r, s = split_similarity(local)
        q = _continuous(quat_from_matrix(r))
        for j, node in enumerate(joint_nodes):
            channel(node, "translation", t[:, j])
            channel(node, "rotation", q[:, j])
            scale = np.repeat(s[:, j:j + 1], 3, axis=1)
            if j == root_joint:
                scale[~person.present] = HIDDEN_SCALE
                channel(node, "scale", scale, gl.ANIM_STEP)
            else:
                channel(node, "scale", scale)
        if person.morphs is not None:
            channel(mesh_node, "weights", np.eye(count, dtype=np.float32).reshape(-1))
        progress(n + 1, len(people))
    gltf.animations.append(animation)
    data = blob.bytes()
    gltf.buffers.append(gl.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    return gltf


def animated_glb_bytes(people: Sequence[AnimatedPerson], times: Sequence[float]) -> bytes:
    return b"".join(animated_gltf(people, times).save_to_bytes())


def save_animated_gltf(path: Path, people: Sequence[AnimatedPerson], times: Sequence[float]) -> Path:
    path = Path(path)
    check_animated_suffix(path)
    data = animated_glb_bytes(people, times)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def check_animated_suffix(path: Path) -> None:
    if Path(path).suffix.lower() != ".glb":
        raise UserError(f"an animated body is saved as .glb, not {Path(path).suffix or 'a file without extension'}")
