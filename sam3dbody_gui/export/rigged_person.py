"""A recovered person as a rig: the skeleton posed as the rig posed it, and a bind-pose mesh that
the skin carries onto the recovered body. What the rigged glTF and the BVH are written from.

Frames. The rig works in centimetres, Y up; the pipeline's camera frame is that turned a half
turn about x and scaled to metres, and the upright frame (`mesh_file.FRAME_HELP`) turns it back
and shifts it (feet on y = 0, centred). So the upright frame is the rig's frame in metres plus
one translation per person, and the rig's joint rotations and scales carry over unchanged.

The bind-pose mesh ("baked" correctives, the default) is the recovered body unposed by its own
skin: posing it with the exported skeleton gives back exactly the vertices the pipeline
recovered, including MHR's pose correctives for this pose (a skin cannot recompute them for
other poses). "none" uses the rig's rest mesh for this body shape instead: standard, but the
recovered pose then lacks the correctives (rigged_gltf's test measures by how much).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..model.rig_skeleton import RigSkeleton, call_rig, unpose_vertices
from .scene import people_in_frame, person_name

CM_PER_M = 100.0
CORRECTIVES = ("baked", "none")
_FLIP = np.array([1.0, -1.0, -1.0])  # the rig's frame ↔ the camera frame (a half turn about x)


@dataclass(frozen=True)
class RiggedPerson:
    name: str
    skeleton: RigSkeleton
    world: np.ndarray  # (J, 4, 4) joint transforms in the upright frame (translations in metres)
    bind_vertices: np.ndarray  # (V, 3) metres, the rig's frame, bind pose
    faces: np.ndarray  # (F, 3)
    posed_vertices: np.ndarray  # (V, 3) the pipeline's vertices in the upright frame (metres)
    posed_joints: np.ndarray  # (J, 3) the pipeline's joints in the upright frame (metres)

    @property
    def inverse_bind(self) -> np.ndarray:
        """(J, 4, 4) the skin's inverse bind matrices with translations in metres."""
        return in_metres(self.skeleton.inverse_bind)


def in_metres(transforms: np.ndarray) -> np.ndarray:
    out = np.array(transforms, dtype=np.float64)
    out[..., :3, 3] /= CM_PER_M
    return out


def rig_inputs(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A result's (shape, mhr_model_params, expression) as the rig takes them, (1, ·) each."""
    try:
        return tuple(np.asarray(params[k], np.float32).reshape(1, -1) for k in ("shape", "mhr_model_params", "face"))
    except KeyError as exc:
        raise UserError(f"this result has no {exc.args[0]!r} parameters: it cannot be rigged") from None


def upright_shift(results: Sequence) -> list[np.ndarray]:
    """Per person, the translation from the rig's frame (metres) to the shared upright frame:
    the one `scene.people_in_frame` gives the meshes, so a rigged file lines up with them."""
    upright = people_in_frame([r.vertices_camera for r in results], "upright")
    shifts = []
    for r, up in zip(results, upright):
        delta = up - np.asarray(r.vertices, np.float64) * _FLIP
        shift = delta.mean(axis=0)
        if np.abs(delta - shift).max() > 1e-6:  # the upright frame stopped being a translation
            raise UserError("the upright frame is not a shift of the rig's frame: cannot place the rig in it")
        shifts.append(shift)
    return shifts


def rigged_people(results: Sequence, skeleton: RigSkeleton, rig, correctives: str = "baked") -> list[RiggedPerson]:
    """Each result (a `MeshResult`) as a RiggedPerson, all in one upright frame. `rig` is the MHR
    rig the results came from (`pipeline.model.mhr`): it is run once per person on the result's
    parameters for the joint transforms, which the result does not keep."""
    if correctives not in CORRECTIVES:
        raise UserError(f"correctives must be one of {', '.join(CORRECTIVES)}, got {correctives!r}")
    people = []
    for i, (result, shift) in enumerate(zip(results, upright_shift(results))):
        shape, model_params, expr = rig_inputs(result.params)
        _, world_cm = call_rig(rig, shape, model_params, expr)
        world_cm = world_cm[0]
        if world_cm.shape[0] != skeleton.num_joints:
            raise UserError(f"the rig poses {world_cm.shape[0]} joints, its skeleton has {skeleton.num_joints}")
        posed_cm = np.asarray(result.vertices, np.float64) * _FLIP * CM_PER_M
        if correctives == "baked":
            bind_cm = unpose_vertices(posed_cm, world_cm, skeleton.inverse_bind, skeleton.skin_joints,
                                      skeleton.skin_weights)
        else:
            bind_cm = call_rig(rig, shape, np.zeros_like(model_params), expr)[0][0]
        world = in_metres(world_cm)
        world[:, :3, 3] += shift
        people.append(RiggedPerson(
            name=person_name(i), skeleton=skeleton, world=world, bind_vertices=bind_cm / CM_PER_M,
            faces=np.asarray(result.faces), posed_vertices=posed_cm / CM_PER_M + shift,
            posed_joints=np.asarray(result.joints, np.float64) * _FLIP + shift))
    return people
