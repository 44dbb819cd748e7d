"""The MHR rig's skeleton and skin: joint names, parents, bind pose and per-vertex weights.

Two ways to get them (`rig_fit.rig_skeleton` picks):
  * read: the real `assets/mhr_model.pt` is Meta's `mhr.MHR` traced; its `character_torch` is
    pymomentum's torch `Character`, whose buffers hold the skeleton and the skin (REAL_LAYOUT says
    which we read and where each comes from). Our synthetic stand-in carries the same buffers.
  * fitted (`model/rig_fit.py`): MHR's README warns the TorchScript gives "limited access to
    model properties", so where these buffers are missing or do not reproduce the rig, the
    skeleton and skin are recovered from the rig's own outputs.
Either way the result is checked against the rig: linear blend skinning of the zero-pose mesh
with the weights and the rig's own joint transforms must land on the rig's vertices (the rest is
pose correctives, which no skin reproduces). Units: the rig's, centimetres, Y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .mhr_head import NUM_FACE, NUM_JOINTS, NUM_SHAPE
from .skel_state import invert_similarity, state_to_matrix

NUM_MODEL_PARAMS = 204
MAX_INFLUENCES = 4  # glTF's JOINTS_0 / WEIGHTS_0 hold four per vertex
# Where each property the reader needs lives in the scripted model, and where that comes from.
REAL_LAYOUT = {
    "character_torch.skeleton.joint_parents":
        "pymomentum/torch/character.py, class Skeleton: register_buffer, int32 (J,), -1 for the root",
    "character_torch.skeleton.joint_names":
        "pymomentum/torch/character.py, class Skeleton: attribute list[str] (optional: a traced file may lack it)",
    "character_torch.linear_blend_skinning.inverse_bind_pose":
        "pymomentum/torch/character.py, class LinearBlendSkinning: skel_state (J, 8) = t, quaternion xyzw, scale",
    "character_torch.linear_blend_skinning.skin_indices_flattened":
        "pymomentum/torch/character.py, class LinearBlendSkinning (from backend/utils.py "
        "flatten_skinning_weights_and_indices): joint of each influence, int32 (N,)",
    "character_torch.linear_blend_skinning.skin_weights_flattened":
        "same: weight of each influence, float (N,)",
    "character_torch.linear_blend_skinning.vert_indices_flattened":
        "same: vertex of each influence, int64 (N,)",
}
# A read skin must reproduce the rig this well (median over vertices of a moderate pose, cm):
# a misread layout (quaternion order, transposed weights) is off by centimetres everywhere,
# while pose correctives move a few vertices by millimetres.
READ_CHECK_MEDIAN_CM = 0.2


class RigLayoutError(Exception):
    """The rig lacks a property the reader needs, or it is not laid out as expected."""


@dataclass(frozen=True)
class RigSkeleton:
    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int64, -1 for a root; a parent may come after its child
    bind_world: np.ndarray  # (J, 4, 4) float64: each joint's world transform in the bind pose, cm
    inverse_bind: np.ndarray  # (J, 4, 4) float64: the inverse of bind_world (what skinning uses)
    skin_joints: np.ndarray  # (V, 4) int64
    skin_weights: np.ndarray  # (V, 4) float64, rows sum to 1 (unused slots: weight 0)
    source: str  # "read" or "fitted"
    detail: str  # where it came from, in words
    check_error_mm: dict[str, float] = field(default_factory=dict)  # LBS vs rig on poses the reader/fit did not see
    dropped_weight: float = 0.0  # the most weight one vertex lost to keeping four influences

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def order(self) -> list[int]:
        """Joints with every parent before its children (for forward kinematics and BVH)."""
        children: dict[int, list[int]] = {}
        for j, p in enumerate(self.parents.tolist()):
            children.setdefault(p, []).append(j)
        out, stack = [], list(reversed(children.get(-1, [])))
        while stack:
            j = stack.pop()
            out.append(j)
            stack.extend(reversed(children.get(j, [])))
        if len(out) != len(self.parents):
            raise RigLayoutError("the joint parents do not form a tree")
        return out


def call_rig(rig, shape: torch.Tensor, model_params: torch.Tensor, expr: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The rig on (B, ·) inputs → vertices (B, V, 3) cm and joint world transforms (B, J, 4, 4),
    float64 numpy. Inputs go to the rig's device and dtype (fp32)."""
    device = next(iter(rig.buffers()), torch.zeros(())).device
    with torch.no_grad():
        verts, state = rig(*(torch.as_tensor(x, dtype=torch.float32, device=device) for x in (shape, model_params, expr)))
    return verts.double().cpu().numpy(), state_to_matrix(state.double().cpu().numpy())


def zero_inputs(batch: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, NUM_SHAPE), torch.zeros(batch, NUM_MODEL_PARAMS), torch.zeros(batch, NUM_FACE)


def skin_vertices(rest: np.ndarray, world: np.ndarray, inverse_bind: np.ndarray, joints: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """Linear blend skinning: rest (V, 3) → posed (..., V, 3) under world (..., J, 4, 4)."""
    per_joint = world @ inverse_bind  # (..., J, 4, 4)
    blended = np.einsum("vk,...vkij->...vij", weights, per_joint[..., joints, :3, :])  # (..., V, 3, 4)
    return np.einsum("...vij,vj->...vi", blended[..., :3], rest) + blended[..., 3]


def unpose_vertices(posed: np.ndarray, world: np.ndarray, inverse_bind: np.ndarray, joints: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """The inverse of `skin_vertices` for one pose: the bind-pose vertices (V, 3) that this skin
    carries onto `posed` (V, 3) under `world` (J, 4, 4). Each vertex's blended transform is an
    affine map; a vertex whose map is (near) singular (bones folded onto each other) is left where
    the plain inverse of its heaviest bone puts it."""
    per_joint = world @ inverse_bind
    blended = np.einsum("vk,vkij->vij", weights, per_joint[joints, :3, :])  # (V, 3, 4)
    lin, shift = blended[:, :, :3], blended[:, :, 3]
    ok = np.abs(np.linalg.det(lin)) > 1e-6 * np.abs(np.linalg.det(per_joint[joints[:, 0], :3, :3]))
    out = np.empty_like(posed, dtype=np.float64)
    out[ok] = np.linalg.solve(lin[ok], (posed[ok] - shift[ok])[..., None])[..., 0]
    if not ok.all():
        heavy = invert_similarity(per_joint[joints[~ok, 0]])
        out[~ok] = np.einsum("vij,vj->vi", heavy[:, :3, :3], posed[~ok]) + heavy[:, :3, 3]
    return out


def check_poses(count: int, seed: int, spread: float = 0.3) -> torch.Tensor:
    """Random model parameters a person could take: pose angles ~N(0, spread) rad, no global
    translation, bone scales (log2) ~N(0, spread / 4). The same seed gives the same poses."""
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(count, NUM_MODEL_PARAMS, generator=g) * spread
    params[:, :3] = 0.0
    params[:, 136:] *= 0.25
    return params


def lbs_error_mm(rig, skeleton: "RigSkeleton", params: torch.Tensor) -> dict[str, float]:
    """How far skinning the zero-pose mesh lands from the rig's vertices over `params` (mm):
    fit or read error plus the rig's pose correctives, which a skin cannot hold."""
    zero_pose, zero_world = call_rig(rig, *zero_inputs())
    # The bind-pose mesh: the zero-pose mesh unposed (the same mesh where, as in MHR, the bind
    # pose is the zero pose; still right for a rig whose bind pose is another).
    rest = unpose_vertices(zero_pose[0], zero_world[0], skeleton.inverse_bind, skeleton.skin_joints,
                           skeleton.skin_weights)
    shape, _, expr = zero_inputs(len(params))
    posed, world = call_rig(rig, shape, params, expr)
    skinned = skin_vertices(rest, world, skeleton.inverse_bind, skeleton.skin_joints, skeleton.skin_weights)
    err = np.linalg.norm(skinned - posed, axis=-1) * 10.0
    return {"max": float(err.max()), "p99": float(np.quantile(err, 0.99)), "median": float(np.median(err)),
            "rms": float(np.sqrt((err ** 2).mean()))}


def top_influences(joints: np.ndarray, weights: np.ndarray, verts: np.ndarray, num_vertices: int,
                   num_joints: int, keep: int = MAX_INFLUENCES) -> tuple[np.ndarray, np.ndarray, float]:
    """Flattened (joint, weight, vertex) influences → the `keep` heaviest per vertex, renormalised:
    (V, keep) joints, (V, keep) weights, and the most weight any vertex lost."""
    dense = np.zeros((num_vertices, num_joints))
    np.add.at(dense, (verts, joints), weights)
    total = dense.sum(axis=1)
    if (total <= 0).any():
        raise RigLayoutError(f"{int((total <= 0).sum())} vertices have no skin weight")
    top = np.argsort(-dense, axis=1, kind="stable")[:, :keep]
    w = np.take_along_axis(dense, top, axis=1)
    dropped = float((1.0 - w.sum(axis=1) / total).max())
    w = w / w.sum(axis=1, keepdims=True)
    return np.where(w > 0, top, 0).astype(np.int64), w, max(dropped, 0.0)


def _attr(module, dotted: str):
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise RigLayoutError(f"the rig has no {dotted}")
    return obj


def _numpy(module, dotted: str) -> np.ndarray:
    value = _attr(module, dotted)
    if not isinstance(value, torch.Tensor):
        raise RigLayoutError(f"{dotted} is a {type(value).__name__}, not a tensor")
    return value.detach().cpu().numpy()


def read_rig_skeleton(rig) -> RigSkeleton:
    """The skeleton and skin from the rig's buffers (REAL_LAYOUT). Raises RigLayoutError when a
    property is missing, has the wrong shape, or does not reproduce the rig."""
    parents = _numpy(rig, "character_torch.skeleton.joint_parents").astype(np.int64).reshape(-1)
    ibp = _numpy(rig, "character_torch.linear_blend_skinning.inverse_bind_pose").astype(np.float64)
    prefix = "character_torch.linear_blend_skinning."
    joints = _numpy(rig, prefix + "skin_indices_flattened").astype(np.int64).reshape(-1)
    weights = _numpy(rig, prefix + "skin_weights_flattened").astype(np.float64).reshape(-1)
    verts = _numpy(rig, prefix + "vert_indices_flattened").astype(np.int64).reshape(-1)
    nj = len(parents)
    if nj != NUM_JOINTS or ibp.shape != (nj, 8):
        raise RigLayoutError(f"joint_parents {parents.shape} / inverse_bind_pose {ibp.shape}: expected "
                             f"({NUM_JOINTS},) / ({NUM_JOINTS}, 8)")
    if not (len(joints) == len(weights) == len(verts)) or joints.size == 0:
        raise RigLayoutError("the flattened skin arrays differ in length")
    if ((parents < -1) | (parents >= nj) | (parents == np.arange(nj))).any():
        raise RigLayoutError("joint_parents holds an index that is no joint")
    if joints.min() < 0 or joints.max() >= nj or verts.min() < 0:
        raise RigLayoutError("the skin refers to joints or vertices that do not exist")
    rest, _ = call_rig(rig, *zero_inputs())
    num_vertices = rest.shape[1]
    if verts.max() >= num_vertices:
        raise RigLayoutError(f"the skin refers to vertex {verts.max()}, the rig has {num_vertices}")
    try:
        names = list(_attr(rig, "character_torch.skeleton.joint_names"))
    except RigLayoutError:
        names = None
    have_names = names is not None and len(names) == nj and all(isinstance(n, str) for n in names)
    inverse_bind = state_to_matrix(ibp)
    top_j, top_w, dropped = top_influences(joints, weights, verts, num_vertices, nj)
    skeleton = RigSkeleton(
        names=tuple(names) if have_names else generic_names(nj), parents=parents,
        bind_world=invert_similarity(inverse_bind), inverse_bind=inverse_bind,
        skin_joints=top_j, skin_weights=top_w, source="read",
        detail="read from the rig's character_torch buffers (pymomentum layout)"
               + ("" if have_names else "; it has no joint names, so they are numbered"),
        dropped_weight=dropped)
    skeleton.order()  # raises if the parents are no tree
    check = lbs_error_mm(rig, skeleton, check_poses(4, seed=1))
    if check["median"] > READ_CHECK_MEDIAN_CM * 10.0:
        raise RigLayoutError(f"the read skin does not reproduce the rig (median {check['median']:.1f} mm off)")
    return replace(skeleton, check_error_mm=check)


def generic_names(count: int) -> tuple[str, ...]:
    return tuple(f"joint_{j:03d}" for j in range(count))
