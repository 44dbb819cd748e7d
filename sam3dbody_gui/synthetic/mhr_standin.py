"""A deterministic stand-in for MHR, the body rig SAM 3D Body ships as `assets/mhr_model.pt`.

The real file is gated, so synthetic model folders carry this instead: a TorchScript module
with the real call, `verts, skeleton = mhr(shape[B,45], model_params[B,204], expr[B,72])`,
verts (B, V, 3) in cm (Y up, feet on y = 0, facing +Z) and skeleton (B, 127, 8) = joint
position (cm), global rotation as a quaternion (x, y, z, w) and global scale. It is built the
way MHR works: identity/expression blendshapes, a linear parameter transform to per-joint
(translation, XYZ-Euler rotation, log2 scale), forward kinematics over 127 joints, a pose-
corrective network (6-D rotation features → sparse layer → ReLU → dense layer over all vertex
coordinates; the sparse layer is re-densified every call, as the traced real one is) and dense
linear blend skinning. It is saved as TorchScript, so loading it needs no code of ours. Like the
real file it carries `character_torch.skeleton` and `character_torch.linear_blend_skinning`
(pymomentum's names and layouts, see momentum_layout.py), which model/rig_skeleton.py reads.

Alongside it come the MHR-head buffers the real checkpoint stores under `head_pose.*` and
`head_pose_hand.*` (rest rotations, scale/hand PCA, keypoint mapping, hand index lists, ...),
made to agree with this rig, so random-weight inference draws a body and keypoints a skeleton.

Sizes: 'full' has MHR LOD1's mesh (18,439 vertices, 36,874 faces) and a pose-corrective layer
of the real size (3000 → 55,317, dense, ~660 MB), so timings mean something; 'tiny' has ~1,100
vertices and 250 hidden correctives, for tests. Same seed → byte-identical tensors.

Parameter layout (204): [translation (3), rotation (3, XYZ Euler), body (130), scales (68)].
Read from upstream's head code: translation is metres x 10 (so 10 cm per unit here); the global
rotation turns the body about `root_coords` (the hand head's wrist-to-origin formula needs it);
body parameters 62-115 are the two hands; the wrist is three 1-DoF parameters (upstream writes
XZY angles into body params 41/43/42 and 31/33/32: x on the wrist-twist joint 41/77, then z and
y on the wrist 42/78); scale 8 / 9 is the right / left hand. Our choices: right hand first
(62-88, like the rig's joints 40-42 before 76-78), and every other assignment below.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from ..atomic_file import atomic_path
from . import body_mesh as bm
from .body_mesh import (
    ARM_CLAVICLE, ARM_ELBOW, ARM_FOREARM_TWISTS, ARM_INDEX, ARM_MIDDLE, ARM_PINKY, ARM_RING,
    ARM_SHOULDER, ARM_THUMB, ARM_UPPER_TWISTS, ARM_WRIST, ARM_WRIST_TWIST, LEFT_ARM, LEFT_LEG,
    LEG_ANKLE, LEG_BALL, LEG_HIP, LEG_KNEE, LEG_SHIN_TWISTS, LEG_SUBTALAR, LEG_THIGH_TWISTS,
    LEG_TOE, NUM_JOINTS, RIGHT_ARM, RIGHT_LEG, ROOT, SPINE, BodyMesh,
)
from .momentum_layout import character_layout

SIZES = ("tiny", "full")
NUM_SHAPE, NUM_EXPR, NUM_MODEL_PARAMS = 45, 72, 204
NUM_BODY_PARAMS = 130  # model parameters 6..135
BODY_OFFSET, SCALE_OFFSET = 6, 136
NUM_SCALES, NUM_SCALE_COMPS = 68, 28
NUM_HAND_PARAMS, NUM_HAND_CONT = 27, 54
NUM_KEYPOINT_ROWS = 308
HIDDEN_PER_JOINT = {"tiny": 2, "full": 24}  # full: 125 joints x 24 = 3000, as MHR LOD1
TRANSLATION_CM_PER_UNIT = 10.0

# Per-joint parameter channels (MHR's 7 joint parameters).
TX, TY, TZ, RX, RY, RZ, LOG2_SCALE = range(7)
CHANNELS = 7

# Hand parameters are ordered joint by joint: index, middle, ring, pinky (MCP 3 DoF, PIP, DIP),
# then thumb (CMC 2 DoF, MCP 3 DoF, two IPs) — upstream's HAND_JOINT_DOFS. Where each lands
# among the body parameters of the right hand (the left hand is +27): this keeps the real rig's
# 3-DoF triples, e.g. (85, 69, 73) and (64, 65, 66), which upstream's body conversion uses.
HAND_ORDER_TO_BODY_PARAM = (
    85, 69, 73, 74, 75,  # index
    88, 72, 76, 77, 78,  # middle
    86, 70, 79, 80, 81,  # ring
    87, 71, 82, 83, 84,  # pinky
    62, 63, 64, 65, 66, 67, 68,  # thumb
)
RIGHT_HAND_BODY_PARAMS = tuple(range(62, 89))
LEFT_HAND_BODY_PARAMS = tuple(range(89, 116))
RIGHT_HAND_SCALE, LEFT_HAND_SCALE = 8, 9  # upstream reads scale_mean[8/9] as the hands
# 18 body scales, then 25 per hand: in released SAM 3D Body outputs (the sample .npz files in
# facebookresearch/MHR) model scales 18-42 equal 43-67, i.e. both hands share components 18-27.
NUM_BODY_SCALES = 18
RIGHT_FINGER_SCALES = tuple(range(18, 43))
LEFT_FINGER_SCALES = tuple(range(43, 68))


def _hand_dofs(first: int) -> list[tuple[int, int]]:
    """(joint, channel) for each of the 27 hand parameters, in hand order."""
    out = []
    for finger in (ARM_INDEX, ARM_MIDDLE, ARM_RING):
        out += [(first + finger[0], RX), (first + finger[0], RY), (first + finger[0], RZ)]
        out += [(first + finger[1], RZ), (first + finger[2], RZ)]
    mcp = first + ARM_PINKY[1]
    out += [(mcp, RX), (mcp, RY), (mcp, RZ), (first + ARM_PINKY[2], RZ), (first + ARM_PINKY[3], RZ)]
    t = [first + k for k in ARM_THUMB]
    out += [(t[0], RY), (t[0], RZ), (t[1], RX), (t[1], RY), (t[1], RZ), (t[2], RZ), (t[3], RZ)]
    assert len(out) == NUM_HAND_PARAMS
    return out


def _body_param_targets() -> dict[int, list[tuple[int, int, float]]]:
    """Body parameter (0..129) → [(joint, channel, coefficient)]."""
    t: dict[int, list[tuple[int, int, float]]] = {}

    def rot3(params, joint):
        for p, ch in zip(params, (RX, RY, RZ)):
            t[p] = [(joint, ch, 1.0)]

    def spread(param, joints, channel, fractions):
        """One parameter twisting a chain of twist joints progressively."""
        t[param] = [(j, channel, f) for j, f in zip(joints, fractions)]

    rot3((0, 2, 4), bm.NECK0)
    rot3((6, 8, 10), bm.HEAD)
    for p, ch in zip((1, 3, 5), (RX, RY, RZ)):
        t[p] = [(bm.NECK1, ch, 1.0)]
    for p, ch in zip((7, 9, 11), (RX, RY, RZ)):
        t[p] = [(bm.THROAT, ch, 1.0)]
    for n, joint in enumerate(SPINE):
        rot3(tuple(range(12 + 3 * n, 15 + 3 * n)), joint)
    for o, first in ((24, RIGHT_ARM), (34, LEFT_ARM)):
        rot3((o, o + 1, o + 2), first + ARM_CLAVICLE)
        rot3((o + 3, o + 4, o + 5), first + ARM_SHOULDER)
        t[o + 6] = [(first + ARM_ELBOW, RZ, 1.0)]
        twists = [first + k for k in ARM_FOREARM_TWISTS]
        # Wrist twist (pronation) also turns the forearm's twist joints, progressively.
        t[o + 7] = [(first + ARM_WRIST_TWIST, RX, 1.0)]
        t[o + 7] += [(j, RX, f) for j, f in zip(twists, bm.FOREARM_TWIST_FRACTIONS)]
        t[o + 8] = [(first + ARM_WRIST, RY, 1.0)]
        t[o + 9] = [(first + ARM_WRIST, RZ, 1.0)]
    for o, first in ((44, LEFT_LEG), (53, RIGHT_LEG)):
        rot3((o, o + 1, o + 2), first + LEG_HIP)
        t[o + 3] = [(first + LEG_KNEE, RZ, 1.0)]
        for p, ch in zip((o + 4, o + 5, o + 6), (RX, RY, RZ)):
            t[p] = [(first + LEG_ANKLE, ch, 1.0)]
        t[o + 7] = [(first + LEG_SUBTALAR, RX, 1.0)]
        t[o + 8] = [(first + LEG_BALL, RZ, 1.0)]
    for block, first in ((RIGHT_HAND_BODY_PARAMS, RIGHT_ARM), (LEFT_HAND_BODY_PARAMS, LEFT_ARM)):
        shift = block[0] - RIGHT_HAND_BODY_PARAMS[0]
        for p, (joint, ch) in zip(HAND_ORDER_TO_BODY_PARAM, _hand_dofs(first)):
            t[p + shift] = [(joint, ch, 1.0)]
    quarter = (0.25, 0.5, 0.75, 1.0)
    t[116] = [(LEFT_LEG + LEG_TOE, RZ, 1.0)]
    t[117] = [(RIGHT_LEG + LEG_TOE, RZ, 1.0)]
    spread(118, [RIGHT_ARM + k for k in ARM_UPPER_TWISTS[:-1]], RX, quarter)
    spread(119, [LEFT_ARM + k for k in ARM_UPPER_TWISTS[:-1]], RX, quarter)
    spread(120, [LEFT_LEG + k for k in LEG_THIGH_TWISTS[:-1]], RX, quarter)
    spread(121, [RIGHT_LEG + k for k in LEG_THIGH_TWISTS[:-1]], RX, quarter)
    spread(122, [LEFT_LEG + k for k in LEG_SHIN_TWISTS], RX, quarter)
    spread(123, [RIGHT_LEG + k for k in LEG_SHIN_TWISTS], RX, quarter)
    for p, ch in zip(range(124, 127), (TX, TY, TZ)):  # shoulder shrug, cm
        t[p] = [(RIGHT_ARM + ARM_CLAVICLE, ch, 1.0)]
        t[p + 3] = [(LEFT_ARM + ARM_CLAVICLE, ch, 1.0)]
    assert sorted(t) == list(range(NUM_BODY_PARAMS)), sorted(set(range(NUM_BODY_PARAMS)) - set(t))
    return t


def _scale_targets() -> dict[int, list[tuple[int, int, float]]]:
    """Model scale (0..67) → [(joint, channel, coefficient)]: log2 size of a joint's subtree,
    plus three palm-shape offsets per hand (cm per unit)."""
    body = (ROOT, SPINE[0], bm.NECK0, SPINE[1], SPINE[3], bm.HEAD,
            RIGHT_ARM + ARM_SHOULDER, LEFT_ARM + ARM_SHOULDER, RIGHT_ARM + ARM_WRIST, LEFT_ARM + ARM_WRIST,
            RIGHT_ARM + ARM_ELBOW, LEFT_ARM + ARM_ELBOW, LEFT_LEG + LEG_HIP, RIGHT_LEG + LEG_HIP,
            LEFT_LEG + LEG_KNEE, RIGHT_LEG + LEG_KNEE, LEFT_LEG + LEG_ANKLE, RIGHT_LEG + LEG_ANKLE)
    assert len(body) == NUM_BODY_SCALES
    t = {k: [(j, LOG2_SCALE, 1.0)] for k, j in enumerate(body)}
    for cols, first in ((RIGHT_FINGER_SCALES, RIGHT_ARM), (LEFT_FINGER_SCALES, LEFT_ARM)):
        fingers = [first + k for k in (*ARM_THUMB, *ARM_INDEX, *ARM_MIDDLE, *ARM_RING, *ARM_PINKY)]
        for col, j in zip(cols, fingers):
            t[col] = [(j, LOG2_SCALE, 1.0)]
        width, length, thumb = cols[22:]
        t[width] = [(first + ARM_INDEX[0], TZ, 10.0), (first + ARM_RING[0], TZ, -5.0),
                    (first + ARM_PINKY[0], TZ, -10.0)]
        t[length] = [(first + j, TX, 10.0) for j in (ARM_INDEX[0], ARM_MIDDLE[0], ARM_RING[0], ARM_PINKY[1])]
        t[thumb] = [(first + ARM_THUMB[0], TY, 10.0)]
    assert sorted(t) == list(range(NUM_SCALES))
    return t


def parameter_transform() -> np.ndarray:
    """(204, 127*7): model parameters → joint parameters (translation, XYZ Euler, log2 scale)."""
    tf = np.zeros((NUM_MODEL_PARAMS, NUM_JOINTS * CHANNELS))
    for axis in range(3):  # the global transform lives on the root joint, so it turns about the root
        tf[axis, ROOT * CHANNELS + TX + axis] = TRANSLATION_CM_PER_UNIT
        tf[3 + axis, ROOT * CHANNELS + RX + axis] = 1.0
    for offset, table in ((BODY_OFFSET, _body_param_targets()), (SCALE_OFFSET, _scale_targets())):
        for p, targets in table.items():
            for joint, ch, coeff in targets:
                tf[offset + p, joint * CHANNELS + ch] += coeff
    return tf


def hand_joint_idxs(side: str) -> np.ndarray:
    """Columns of the 136 pose parameters that the 27 hand parameters of one hand fill."""
    shift = 0 if side == "right" else LEFT_HAND_BODY_PARAMS[0] - RIGHT_HAND_BODY_PARAMS[0]
    return np.array([BODY_OFFSET + p + shift for p in HAND_ORDER_TO_BODY_PARAM], dtype=np.int64)


def nonhand_param_idxs() -> np.ndarray:
    """The 145 model parameters the hand head zeroes: everything but the global transform, the
    right hand's pose, its size (scale 8) and its finger scales (the hand decoder sees a right
    hand). 76 body + 17 body scales + 27 left-hand + 25 left-finger scales = 145, the released size."""
    keep = set(range(6)) | set(hand_joint_idxs("right").tolist()) | {SCALE_OFFSET + RIGHT_HAND_SCALE}
    keep |= {SCALE_OFFSET + k for k in RIGHT_FINGER_SCALES}
    return np.array([p for p in range(NUM_MODEL_PARAMS) if p not in keep], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# The TorchScript module
# ---------------------------------------------------------------------------------------------
def _rotmat_from_euler_xyz(e: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) → (B, J, 3, 3), R = Rz·Ry·Rx (MHR's XYZ Euler)."""
    c = torch.cos(e)
    s = torch.sin(e)
    cx, cy, cz = c[..., 0], c[..., 1], c[..., 2]
    sx, sy, sz = s[..., 0], s[..., 1], s[..., 2]
    r = torch.stack(
        [cy * cz, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
         cy * sz, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
         -sy, cy * sx, cy * cx], dim=-1)
    return r.reshape(e.shape[0], e.shape[1], 3, 3)


def _quat_xyzw_from_rotmat(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices → unit quaternions (x, y, z, w), w >= 0. Shepperd's method: of the four
    algebraically equal formulas take the best-conditioned one, so 180-degree turns stay exact."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    w4 = 1.0 + m00 + m11 + m22
    x4 = 1.0 + m00 - m11 - m22
    y4 = 1.0 - m00 + m11 - m22
    z4 = 1.0 - m00 - m11 + m22
    candidates = torch.stack([
        torch.stack([m21 - m12, m02 - m20, m10 - m01, w4], dim=-1),
        torch.stack([x4, m01 + m10, m02 + m20, m21 - m12], dim=-1),
        torch.stack([m01 + m10, y4, m12 + m21, m02 - m20], dim=-1),
        torch.stack([m02 + m20, m12 + m21, z4, m10 - m01], dim=-1),
    ], dim=-2)
    best = torch.nn.functional.one_hot(torch.stack([w4, x4, y4, z4], dim=-1).argmax(dim=-1), 4).to(m.dtype)
    q = (candidates * best.unsqueeze(-1)).sum(dim=-2)
    q = q / torch.linalg.vector_norm(q, 2, [-1], True)
    return torch.where(q[..., 3:4] < 0, -q, q)


class MHRStandinModule(nn.Module):
    """forward(shape[B,45], model_params[B,204], expr[B,72]) → (verts[B,V,3] cm, skeleton[B,127,8])."""

    def __init__(self, tensors: dict, parents: List[int], character: nn.Module) -> None:
        super().__init__()
        self.parents = parents
        self.num_joints = len(parents)
        for name, value in tensors.items():
            self.register_buffer(name, value)
        # The real file's skeleton and skin submodules (read by model/rig_skeleton.py); the
        # forward below keeps using its own buffers, so its outputs do not depend on them.
        self.character_torch = character

    def forward(self, shape: torch.Tensor, model_params: torch.Tensor, expr: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        b = model_params.shape[0]
        nj = self.num_joints
        nv = self.template.shape[0]
        # Identity and expression blendshapes: the rest-pose surface.
        coeffs = torch.cat([shape.expand(b, -1), expr], dim=1)
        rest = self.template.reshape(1, -1) + torch.matmul(coeffs, self.blendshapes)
        # Parameter transform → per-joint (translation, Euler XYZ, log2 scale) → local transforms.
        joint_params = torch.matmul(model_params, self.parameter_transform).reshape(b, nj, 7)
        euler_rot = _rotmat_from_euler_xyz(joint_params[:, :, 3:6])
        local_rot = torch.matmul(self.rest_local_rotation, euler_rot)
        local_scale = torch.exp2(joint_params[:, :, 6:7])
        local_t = self.rest_local_offset + joint_params[:, :, 0:3]
        top = torch.cat([local_rot * local_scale.unsqueeze(-1), local_t.unsqueeze(-1)], dim=3)
        local = torch.cat([top, self.homogeneous_row.expand(b, nj, 1, 4)], dim=2)
        # Forward kinematics, one joint after the other (parents come first).
        chain: List[torch.Tensor] = [local[:, 0]]
        for j in range(1, nj):
            chain.append(torch.matmul(chain[self.parents[j]], local[:, j]))
        world = torch.stack(chain, dim=1)
        # Pose correctives from the joints' own rotations (not the rest frames); joints 0 and 1
        # (world, root) are excluded: they move the body, they do not pose it.
        feats = torch.cat([euler_rot[:, 2:, :, 0], euler_rot[:, 2:, :, 1]], dim=2) - self.identity_6d
        feats = feats.reshape(b, -1)
        w1 = torch.zeros(self.corrective_out.shape[0], feats.shape[1], dtype=feats.dtype, device=feats.device)
        w1[self.corrective_in_index[0], self.corrective_in_index[1]] = self.corrective_in_value
        hidden = torch.relu(torch.matmul(feats, w1.t()))
        rest = rest + torch.matmul(hidden, self.corrective_out)
        # Linear blend skinning.
        skin = torch.matmul(world, self.inverse_bind)[:, :, 0:3, :].reshape(b, nj, 12)
        per_vertex = torch.matmul(self.skin_weights, skin).reshape(b, nv, 3, 4)
        verts = torch.matmul(per_vertex[:, :, :, 0:3], rest.reshape(b, nv, 3, 1)).squeeze(-1) + per_vertex[:, :, :, 3]
        # Skeleton state: global position, rotation (quaternion x, y, z, w) and scale.
        rot_scaled = world[:, :, 0:3, 0:3]
        scale = torch.linalg.vector_norm(rot_scaled[:, :, :, 0], 2, [-1], True)
        quat = _quat_xyzw_from_rotmat(rot_scaled / scale.unsqueeze(-1))
        return verts, torch.cat([world[:, :, 0:3, 3], quat, scale], dim=-1)


# ---------------------------------------------------------------------------------------------
# Building the tensors
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MHRStandin:
    size: str
    seed: int
    module: torch.jit.ScriptModule  # what is saved as assets/mhr_model.pt
    faces: torch.Tensor  # (F, 3) int64
    head_buffers: dict[str, torch.Tensor]  # MHR-head buffers, names as in the checkpoint (no prefix)
    rest_vertices: torch.Tensor  # (V, 3) float32, cm: the zero-parameter mesh
    rest_joints: torch.Tensor  # (127, 3) float32, cm
    joint_names: tuple[str, ...]
    joint_parents: tuple[int, ...]

    @property
    def num_vertices(self) -> int:
        return int(self.rest_vertices.shape[0])


def _smooth_field(points: np.ndarray, centers: np.ndarray, amplitudes: np.ndarray, sigma: float) -> np.ndarray:
    """Sum of Gaussian bumps, mirrored across x = 0 so that left and right change alike."""
    mirror = np.array([-1.0, 1.0, 1.0])
    out = np.zeros(len(points))
    for c, a in zip(centers, amplitudes):
        for cc in (c, c * mirror):
            out += a * np.exp(-((points - cc) ** 2).sum(axis=1) / (2 * sigma**2))
    return out


def _identity_blendshapes(mesh: BodyMesh, normals: np.ndarray, rng) -> np.ndarray:
    """(45, V*3): smooth, symmetric girth changes along the normals, in proportion to how thick
    the body is at each vertex (a few per cent of the local radius per unit). Components 0-39
    reshape the body and leave the hands alone; 40-44 reshape only the hands (upstream averages
    shape[40:] between the two hand crops)."""
    radius = bm.local_radius(mesh)
    joints = mesh.skeleton.positions
    hands = [first + k for first in (RIGHT_ARM, LEFT_ARM)
             for k in (ARM_WRIST, *ARM_THUMB, *ARM_INDEX, *ARM_MIDDLE, *ARM_RING, *ARM_PINKY)]
    hand_vertices = mesh.vertex_parts[:, bm.HAND_L] | mesh.vertex_parts[:, bm.HAND_R]
    body_joints = [j for j in range(2, NUM_JOINTS) if j not in hands and j < bm.JAW]
    out = np.zeros((NUM_SHAPE, len(mesh.vertices)))
    for k in range(NUM_SHAPE - 5):
        centers = joints[rng.choice(body_joints, size=6, replace=False)]
        field = _smooth_field(mesh.vertices, centers, rng.normal(0.0, 0.05 / (1.0 + k / 6.0), 6), sigma=20.0)
        out[k] = field * radius * ~hand_vertices
    right_hand = [j for j in hands if j < LEFT_ARM]
    for k in range(NUM_SHAPE - 5, NUM_SHAPE):
        centers = joints[rng.choice(right_hand, size=4, replace=False)]
        field = _smooth_field(mesh.vertices, centers, rng.normal(0.0, 0.08, 4), sigma=4.0)
        out[k] = field * radius * hand_vertices
    return (out[:, :, None] * normals[None]).reshape(NUM_SHAPE, -1)


def _face_vertices(mesh: BodyMesh) -> np.ndarray:
    sk = mesh.skeleton
    v = mesh.vertices
    chin, brow = sk.positions[bm.CHIN][1], sk.positions[125][1]
    front = (v[:, 2] > 2.0) & (v[:, 1] > chin - 2.0) & (v[:, 1] < brow + 4.0)
    return np.flatnonzero(front & mesh.vertex_parts[:, bm.HEADPART])


def _expression_blendshapes(mesh: BodyMesh, normals: np.ndarray, rng) -> np.ndarray:
    """(72, V*3): local bumps on the face, each around its own spot."""
    face = _face_vertices(mesh)
    out = np.zeros((NUM_EXPR, len(mesh.vertices), 3))
    for k in range(NUM_EXPR):
        center = mesh.vertices[face[rng.integers(len(face))]]
        d2 = ((mesh.vertices[face] - center) ** 2).sum(axis=1)
        out[k, face] = normals[face] * (rng.normal(0.0, 0.5) * np.exp(-d2 / (2 * 2.5**2)))[:, None]
    return out.reshape(NUM_EXPR, -1)


def _corrective_radius(joint: int) -> float:
    """How far a joint's pose correctives reach (cm): hands and face are small."""
    for first in (RIGHT_ARM, LEFT_ARM):
        if first + ARM_THUMB[0] <= joint <= first + ARM_PINKY[-1]:
            return 3.5
    return 4.0 if joint >= bm.JAW else 12.0


def _pose_correctives(mesh: BodyMesh, hidden_per_joint: int, rng) -> dict[str, torch.Tensor]:
    """Sparse first layer (each hidden unit sees the 6-D features of its joint and its parent,
    as in our upstream harness) and a dense output layer whose non-zeros stay near the joint."""
    parents = mesh.skeleton.parents
    posed = NUM_JOINTS - 2  # features exist for joints 2..126
    rows, cols = [], []
    for h in range(posed * hidden_per_joint):
        j = h // hidden_per_joint + 2
        for fj in [j] + ([parents[j]] if parents[j] >= 2 else []):
            for c in range(6):
                rows.append(h)
                cols.append((fj - 2) * 6 + c)
    in_value = rng.normal(0.0, 0.5, len(rows))
    nv = len(mesh.vertices)
    out = np.zeros((posed * hidden_per_joint, nv, 3), dtype=np.float32)
    for g in range(posed):
        j = g + 2
        radius = _corrective_radius(j)
        dist = np.linalg.norm(mesh.vertices - mesh.skeleton.positions[j], axis=1)
        near = np.flatnonzero(dist < radius)
        falloff = (1.0 - dist[near] / radius) ** 2
        values = rng.normal(0.0, 0.1, (hidden_per_joint, len(near), 3)) * falloff[None, :, None]
        out[g * hidden_per_joint:(g + 1) * hidden_per_joint, near] = values
    return {
        "corrective_in_index": torch.tensor([rows, cols], dtype=torch.int64),
        "corrective_in_value": torch.from_numpy(in_value.astype(np.float32)),
        "corrective_out": torch.from_numpy(out.reshape(posed * hidden_per_joint, nv * 3)),
    }


def _nearest_vertex_blend(mesh: BodyMesh, target, part: int | None = None, k: int = 3) -> dict[int, float]:
    """A surface point near `target`: its k nearest vertices, inverse-distance weighted (sum 1)."""
    candidates = np.arange(len(mesh.vertices)) if part is None else np.flatnonzero(mesh.vertex_parts[:, part])
    d = np.linalg.norm(mesh.vertices[candidates] - np.asarray(target), axis=1)
    order = np.argsort(d, kind="stable")[:k]
    w = 1.0 / (d[order] + 0.5)
    return {int(candidates[i]): float(x) for i, x in zip(order, w / w.sum())}


def _keypoint_mapping(mesh: BodyMesh, rng) -> np.ndarray:
    """(308, V + 127): keypoints as fixed blends of vertices and joints. Rows 0-69 are the MHR70
    keypoints (upstream's metadata/mhr70.py order); rows 70-307 are points on the face."""
    sk = mesh.skeleton
    P = sk.positions
    nv = len(mesh.vertices)
    rows: list[dict[int, float]] = []

    def joint(j):
        rows.append({nv + j: 1.0})

    def surface(target, part):
        rows.append(_nearest_vertex_blend(mesh, target, part))

    for j in (bm.NOSE, bm.LEFT_EYE, bm.RIGHT_EYE, bm.LEFT_EAR, bm.RIGHT_EAR):
        surface(P[j], bm.HEADPART)
    for k in (ARM_SHOULDER, ARM_ELBOW):
        joint(LEFT_ARM + k)
        joint(RIGHT_ARM + k)
    for k in (LEG_HIP, LEG_KNEE, LEG_ANKLE):
        joint(LEFT_LEG + k)
        joint(RIGHT_LEG + k)
    for first, part in ((LEFT_LEG, bm.FOOT_L), (RIGHT_LEG, bm.FOOT_R)):
        s = bm.leg_side(first)
        toe_end = P[first + bm.LEG_TOE_END]
        surface(toe_end + np.array([-2.0 * s, 0.0, 0.0]), part)  # big toe: medial
        surface(toe_end + np.array([3.0 * s, 0.0, -2.5]), part)  # small toe: lateral
        surface(P[first + LEG_SUBTALAR] + np.array([0.0, -3.0, -3.0]), part)  # heel
    for first in (RIGHT_ARM, LEFT_ARM):  # tip, then the joints towards the palm, per finger
        for finger in (ARM_THUMB[1:], ARM_INDEX, ARM_MIDDLE, ARM_RING, ARM_PINKY[1:]):
            for k in reversed(finger):
                joint(first + k)
        joint(first + ARM_WRIST)
    for first, part in ((LEFT_ARM, bm.ARM_L), (RIGHT_ARM, bm.ARM_R)):  # olecranon: back of the elbow
        surface(P[first + ARM_ELBOW] - 5.0 * bm._Z, part)
    for first, part in ((LEFT_ARM, bm.ARM_L), (RIGHT_ARM, bm.ARM_R)):  # cubital fossa: front
        surface(P[first + ARM_ELBOW] + 5.0 * bm._Z, part)
    for first, part in ((LEFT_ARM, bm.ARM_L), (RIGHT_ARM, bm.ARM_R)):  # acromion: top of the shoulder
        surface(P[first + ARM_SHOULDER] + np.array([0.0, 6.0, 0.0]), part)
    joint(bm.NECK0)
    assert len(rows) == 70
    face = _face_vertices(mesh)
    for _ in range(NUM_KEYPOINT_ROWS - 70):
        rows.append(_nearest_vertex_blend(mesh, mesh.vertices[face[rng.integers(len(face))]] + rng.normal(0, 0.3, 3)))
    mapping = np.zeros((NUM_KEYPOINT_ROWS, nv + NUM_JOINTS))
    for r, entries in enumerate(rows):
        for col, w in entries.items():
            mapping[r, col] = w
    return mapping


def _hand_cont_from_angles(angles: np.ndarray) -> np.ndarray:
    """27 hand angles (hand order) → upstream's 54-D continuous form (6-D for 3-DoF joints,
    (sin, cos) per angle otherwise)."""
    dofs = (3, 1, 1, 3, 1, 1, 3, 1, 1, 3, 1, 1, 2, 3, 1, 1)
    out, p = [], 0
    for n in dofs:
        a = angles[p:p + n]
        if n == 3:
            r = _rotmat_from_euler_xyz(torch.tensor(a, dtype=torch.float64).reshape(1, 1, 3))[0, 0].numpy()
            out += list(r[:, 0]) + list(r[:, 1])
        else:
            for x in a:
                out += [np.sin(x), np.cos(x)]
        p += n
    return np.array(out)


RELAXED_HAND = np.array([  # a loosely curled hand (radians), hand order
    0.0, 0.0, 0.25, 0.3, 0.2,
    0.0, 0.0, 0.25, 0.3, 0.2,
    0.0, 0.0, 0.3, 0.35, 0.2,
    0.0, 0.0, 0.35, 0.35, 0.2,
    0.1, 0.2, 0.0, 0.0, 0.15, 0.15, 0.1,
])


def _scale_components(rng) -> tuple[np.ndarray, np.ndarray]:
    """(scale_mean (68), scale_comps (28, 68)). Components 0-17 shape the body (8 and 9 are the
    hands alone, as upstream's hand-flip code assumes); 18-27 shape both hands' fingers alike.
    Model scales 0-2 are never driven (as in released outputs)."""
    comps = np.zeros((NUM_SCALE_COMPS, NUM_SCALES))
    central = [3, 4, 5]  # spine, chest, head
    pairs = [(6, 7), (10, 11), (12, 13), (14, 15), (16, 17)]  # arms, forearms, thighs, shins, feet
    for k in range(NUM_BODY_SCALES):
        if k in (RIGHT_HAND_SCALE, LEFT_HAND_SCALE):
            comps[k, k] = 0.08
            continue
        comps[k, central] = rng.normal(0.0, 0.03, len(central))
        for a, b in pairs:  # both sides alike, as a body's proportions mostly are
            comps[k, [a, b]] = rng.normal(0.0, 0.03)
        if k >= 3:
            comps[k, k] += 0.03
    for k in range(NUM_BODY_SCALES, NUM_SCALE_COMPS):
        fingers = rng.normal(0.0, 0.03, len(RIGHT_FINGER_SCALES))
        comps[k, list(RIGHT_FINGER_SCALES)] = fingers
        comps[k, list(LEFT_FINGER_SCALES)] = fingers
    return np.zeros(NUM_SCALES), comps


def _head_buffers(mesh: BodyMesh, rng) -> dict[str, torch.Tensor]:
    sk = mesh.skeleton
    wrist = RIGHT_ARM + ARM_WRIST
    scale_mean, scale_comps = _scale_components(rng)
    # Hand PCA: the released model predicts the 54-D form directly (comps = identity); the
    # original basis is kept alongside, as upstream does: orthonormal rows with decaying spread.
    basis, _ = np.linalg.qr(rng.normal(size=(NUM_HAND_CONT, NUM_HAND_CONT)))
    comps_ori = np.diag(0.6 * np.exp(-np.arange(NUM_HAND_CONT) / 12.0)) @ basis.T

    def f32(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return {
        "joint_rotation": f32(sk.rest_local_rotations()),
        "scale_mean": f32(scale_mean),
        "scale_comps": f32(scale_comps),
        "faces": torch.from_numpy(mesh.faces.astype(np.int64)),
        "hand_pose_mean": f32(_hand_cont_from_angles(RELAXED_HAND)),
        "hand_pose_comps": torch.eye(NUM_HAND_CONT),
        "hand_pose_comps_ori": f32(comps_ori),
        "hand_joint_idxs_left": torch.from_numpy(hand_joint_idxs("left")),
        "hand_joint_idxs_right": torch.from_numpy(hand_joint_idxs("right")),
        "keypoint_mapping": f32(_keypoint_mapping(mesh, rng)),
        # Metres, as upstream's hand head uses them: it turns the body about the root so that
        # the right wrist's rest orientation becomes the predicted one and the wrist lands at
        # the origin.
        "right_wrist_coords": f32(sk.positions[wrist] / 100.0),
        "root_coords": f32(sk.positions[ROOT] / 100.0),
        "local_to_world_wrist": f32(sk.frames[wrist].T),
        "nonhand_param_idxs": torch.from_numpy(nonhand_param_idxs()),
    }


def _rig_tensors(mesh: BodyMesh, size: str, rng) -> tuple[dict[str, torch.Tensor], nn.Module]:
    """The forward's buffers, and the same skeleton and skin in the real file's layout."""
    sk = mesh.skeleton
    weights = bm.skinning_weights(mesh)
    normals = bm.vertex_normals(mesh.vertices, mesh.faces)
    blend = np.concatenate([
        _identity_blendshapes(mesh, normals, rng),
        _expression_blendshapes(mesh, normals, rng),
    ])
    inverse_bind = np.repeat(np.eye(4)[None], NUM_JOINTS, axis=0)
    inverse_bind[:, :3, :3] = sk.frames.transpose(0, 2, 1)
    inverse_bind[:, :3, 3] = -np.einsum("jba,jb->ja", sk.frames, sk.positions)

    def f32(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    tensors = {
        "template": f32(mesh.vertices),
        "blendshapes": f32(blend),
        "parameter_transform": f32(parameter_transform()),
        "rest_local_rotation": f32(sk.rest_local_rotations()),
        "rest_local_offset": f32(sk.rest_local_offsets()),
        "homogeneous_row": torch.tensor([0.0, 0.0, 0.0, 1.0]).reshape(1, 1, 1, 4),
        "identity_6d": torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        "inverse_bind": f32(inverse_bind),
        "skin_weights": f32(weights),
    }
    tensors.update(_pose_correctives(mesh, HIDDEN_PER_JOINT[size], rng))
    character = character_layout(sk.names, sk.parents, sk.rest_local_rotations(), sk.rest_local_offsets(),
                                 inverse_bind, weights)
    return tensors, character


@contextmanager
def _torchscript_without_deprecation_warnings():
    """TorchScript is deprecated in recent PyTorch, but it is the rig's file format: upstream
    loads `assets/mhr_model.pt` with torch.jit.load, so the stand-in must be TorchScript."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


def build_mhr_standin(size: str, seed: int) -> MHRStandin:
    """The stand-in rig and its head buffers. The body is fixed; the seed drives blendshapes,
    correctives, PCA bases and the face keypoints. Same (size, seed) → byte-identical tensors."""
    if size not in SIZES:
        raise ValueError(f"unknown MHR stand-in size {size!r}: use {' or '.join(SIZES)}")
    mesh = bm.build_body_mesh(size)
    rng = np.random.default_rng([seed, 0x4D4852])  # 'MHR': keeps this stream apart from others
    tensors, character = _rig_tensors(mesh, size, rng)
    head_buffers = _head_buffers(mesh, rng)
    with _torchscript_without_deprecation_warnings():
        module = torch.jit.script(MHRStandinModule(tensors, list(mesh.skeleton.parents), character).eval())
    return MHRStandin(
        size=size,
        seed=seed,
        module=module,
        faces=head_buffers["faces"],
        head_buffers=head_buffers,
        rest_vertices=tensors["template"],
        rest_joints=torch.from_numpy(mesh.skeleton.positions.astype(np.float32)),
        joint_names=mesh.skeleton.names,
        joint_parents=mesh.skeleton.parents,
    )


def save_mhr_standin(standin: MHRStandin, path: Path | str) -> Path:
    """Write the rig as TorchScript (what `torch.jit.load` reads as assets/mhr_model.pt),
    atomically: a reader never sees a half-written file."""
    path = Path(path)
    with atomic_path(path) as tmp, _torchscript_without_deprecation_warnings():
        torch.jit.save(standin.module, str(tmp))
    return path
