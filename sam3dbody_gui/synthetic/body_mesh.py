"""Geometry of the MHR stand-in: a 127-joint skeleton and a closed, body-shaped triangle mesh.

Units are centimetres, Y up, the person faces +Z and their left is +X (MHR's model frame),
standing in an A-pose with the feet on y = 0. Nothing here is random: the body is the same
for every seed (the seed only drives the stand-in's blendshapes, correctives and PCA bases).

Skeleton. Upstream hard-codes some joint indices (40/76 lower arms, 41/77 wrist twists,
42/78 wrists, MHR70 keypoints through `keypoint_mapping`), so the 127 joints keep the real
rig's index roles: 0 world, 1 root (pelvis), 2-17 left leg, 18-33 right leg, 34-37 spine,
38-73 right arm and hand, 74-109 left arm and hand, 110-126 neck, head and face. Limb joints
carry bone-aligned rest frames (x along the bone), so the rig's rest rotations (the checkpoint's
`joint_rotation`) are not identities, as in the real rig.

Mesh. A coarse quad cage is box-modelled along the skeleton (torso and head as 2x1 tubes,
limbs as square tubes, mitten hands with a thumb, L-shaped feet), then refined with
Catmull-Clark subdivision, which rounds every tube into a smooth limb. Extruding faces of a
closed, consistently oriented quad mesh keeps it closed, genus 0 and outward-facing, so the
result is watertight by construction. Sizes:
  * 'full': three subdivision levels (64 x the cage's quads + 2 vertices), triangulated, then the
    longest edges are split until the mesh has MHR LOD1's 18,439 vertices / 36,874 faces;
  * 'tiny': the one-level topology (about 1,100 vertices), placed on the three-level surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mesh_math import vertex_normals as mesh_normals

NUM_JOINTS = 127
FULL_NUM_VERTICES = 18439  # MHR LOD1
A_POSE_DEG = 45.0  # arms this far below horizontal

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])

# Index roles of the real rig (see module docstring). Leg: hip, knee, ankle, subtalar, ball, toe,
# toe end, 4 shin twists, 5 thigh twists. Arm: clavicle, shoulder, elbow, wrist twist, wrist,
# thumb x5, index x4, middle x4, ring x4, pinky x5, 4 forearm twists, 5 upper-arm twists.
LEFT_LEG, RIGHT_LEG = 2, 18
RIGHT_ARM, LEFT_ARM = 38, 74
ROOT = 1
SPINE = (34, 35, 36, 37)
NECK0, NECK1, THROAT, HEAD, JAW, CHIN = 110, 111, 112, 113, 114, 115
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, HEAD_TOP = 118, 119, 120, 123, 124, 126

LEG_HIP, LEG_KNEE, LEG_ANKLE, LEG_SUBTALAR, LEG_BALL, LEG_TOE, LEG_TOE_END = range(7)
LEG_SHIN_TWISTS = (7, 8, 9, 10)
LEG_THIGH_TWISTS = (11, 12, 13, 14, 15)
ARM_CLAVICLE, ARM_SHOULDER, ARM_ELBOW, ARM_WRIST_TWIST, ARM_WRIST = range(5)
ARM_THUMB = (5, 6, 7, 8, 9)  # CMC, MCP, IP, IP, tip
ARM_INDEX = (10, 11, 12, 13)  # MCP, PIP, DIP, tip
ARM_MIDDLE = (14, 15, 16, 17)
ARM_RING = (18, 19, 20, 21)
ARM_PINKY = (22, 23, 24, 25, 26)  # metacarpal, MCP, PIP, DIP, tip
ARM_FOREARM_TWISTS = (27, 28, 29, 30)
ARM_UPPER_TWISTS = (31, 32, 33, 34, 35)
SHIN_TWIST_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
THIGH_TWIST_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
FOREARM_TWIST_FRACTIONS = SHIN_TWIST_FRACTIONS
UPPER_TWIST_FRACTIONS = THIGH_TWIST_FRACTIONS

# Body parts (cage face labels); skinning only blends bones of the parts a vertex touches, so a
# hand hanging beside a thigh never drags the thigh along.
TORSO, HEADPART, ARM_L, ARM_R, HAND_L, HAND_R, LEG_L, LEG_R, FOOT_L, FOOT_R = range(10)
NUM_PARTS = 10


def arm_side(first: int) -> float:
    return -1.0 if first == RIGHT_ARM else 1.0


def leg_side(first: int) -> float:
    return 1.0 if first == LEFT_LEG else -1.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _lerp(a: np.ndarray, b: np.ndarray, f: float) -> np.ndarray:
    return a + (b - a) * f


@dataclass(frozen=True)
class HandAxes:
    """Where a hand points in the A-pose: along the forearm, thumb side (+Z), palm normal."""

    wrist: np.ndarray
    along: np.ndarray
    thumb_side: np.ndarray
    palm_normal: np.ndarray

    def at(self, u: float, v: float, w: float) -> np.ndarray:
        return self.wrist + u * self.along + v * self.thumb_side + w * self.palm_normal


def arm_direction(side: float) -> np.ndarray:
    a = np.radians(A_POSE_DEG)
    return np.array([side * np.cos(a), -np.sin(a), 0.0])


def palm_normal(side: float) -> np.ndarray:
    """Palms face down and in (towards the thighs): perpendicular to the arm in the frontal plane."""
    a = np.radians(A_POSE_DEG)
    return np.array([-side * np.sin(a), -np.cos(a), 0.0])


SHOULDER_OFFSET = (17.5, 142.5, -3.0)
UPPER_ARM_LENGTH = 29.0
FOREARM_LENGTH = 25.5


def hand_axes(side: float) -> HandAxes:
    d = arm_direction(side)
    shoulder = np.array([side * SHOULDER_OFFSET[0], SHOULDER_OFFSET[1], SHOULDER_OFFSET[2]])
    wrist = shoulder + (UPPER_ARM_LENGTH + FOREARM_LENGTH) * d
    return HandAxes(wrist, d, _Z.copy(), palm_normal(side))


# Hand joints in hand coordinates (along the hand, towards the thumb, along the palm normal), cm.
_THUMB_UVW = ((2.5, 2.0, 1.0), (4.6, 4.4, 1.3), (6.8, 6.0, 1.5), (8.6, 7.0, 1.6), (10.4, 7.7, 1.6))
_FINGER_UVW = {
    ARM_INDEX: ((9.5, 3.0, 0.0), (13.6, 3.2, 0.0), (16.2, 3.3, 0.0), (18.3, 3.3, 0.0)),
    ARM_MIDDLE: ((9.8, 1.0, 0.0), (14.4, 1.0, 0.0), (17.2, 1.0, 0.0), (19.5, 1.0, 0.0)),
    ARM_RING: ((9.5, -1.0, 0.0), (13.8, -1.1, 0.0), (16.4, -1.2, 0.0), (18.5, -1.2, 0.0)),
    ARM_PINKY: ((2.0, -2.2, 0.0), (8.9, -3.1, 0.0), (12.0, -3.3, 0.0), (14.1, -3.4, 0.0), (15.9, -3.4, 0.0)),
}


@dataclass(frozen=True)
class Skeleton:
    names: tuple[str, ...]
    parents: tuple[int, ...]  # parents[j] < j, parents[0] == -1
    positions: np.ndarray  # (127, 3) rest joint positions, cm
    frames: np.ndarray  # (127, 3, 3) rest orientation in the world; columns = joint x, y, z axes

    def rest_local_rotations(self) -> np.ndarray:
        """Each joint's rest rotation relative to its parent (MHR's `joint_rotation`)."""
        local = self.frames.copy()
        for j in range(1, NUM_JOINTS):
            local[j] = self.frames[self.parents[j]].T @ self.frames[j]
        return local

    def rest_local_offsets(self) -> np.ndarray:
        """Each joint's position in its parent's rest frame."""
        offsets = self.positions.copy()
        for j in range(1, NUM_JOINTS):
            p = self.parents[j]
            offsets[j] = self.frames[p].T @ (self.positions[j] - self.positions[p])
        return offsets


class _JointTable:
    """Fills the 127 slots by their fixed index; every slot must be filled exactly once."""

    def __init__(self) -> None:
        self.names: list[str | None] = [None] * NUM_JOINTS
        self.parents = [-2] * NUM_JOINTS
        self.positions = np.zeros((NUM_JOINTS, 3))
        # How to orient each joint: (aim joint or None, reference "up" for its y axis, or a frame to copy).
        self.aim: list[tuple[int, int, np.ndarray] | None] = [None] * NUM_JOINTS
        self.copy_frame_of: dict[int, int] = {}

    def set(self, j: int, name: str, parent: int, pos) -> None:
        assert self.names[j] is None, f"joint {j} set twice"
        assert parent < j
        self.names[j] = name
        self.parents[j] = parent
        self.positions[j] = pos

    def aim_at(self, j: int, start: int, target: int, up: np.ndarray) -> None:
        self.aim[j] = (start, target, up)

    def set_twists(self, joints, name: str, parent: int, end, fractions) -> None:
        """Twist joints `name`0, 1, ... placed at `fractions` of the way from `parent` to the
        position `end`, each oriented as `parent` (they only spread a roll along the bone)."""
        for n, (j, f) in enumerate(zip(joints, fractions)):
            self.set(j, f"{name}{n}", parent, _lerp(self.positions[parent], end, f))
            self.copy_frame_of[j] = parent


def _add_leg(t: _JointTable, first: int) -> None:
    s = leg_side(first)
    p = "l_" if s > 0 else "r_"
    hip, knee, ankle = first + LEG_HIP, first + LEG_KNEE, first + LEG_ANKLE
    sub, ball, toe, toe_end = first + LEG_SUBTALAR, first + LEG_BALL, first + LEG_TOE, first + LEG_TOE_END
    t.set(hip, p + "upleg", ROOT, (9.0 * s, 88.5, 0.5))
    t.set(knee, p + "lowleg", hip, (9.5 * s, 49.0, 1.5))
    t.set(ankle, p + "foot", knee, (9.5 * s, 8.5, -2.5))
    t.set(sub, p + "subtalar", ankle, (9.5 * s, 4.5, -4.5))
    t.set(ball, p + "ball", sub, (9.8 * s, 2.3, 12.5))
    t.set(toe, p + "toe", ball, (10.0 * s, 2.0, 16.5))
    t.set(toe_end, p + "toe_end", toe, (10.1 * s, 2.0, 20.5))
    t.set_twists([first + k for k in LEG_SHIN_TWISTS], f"{p}lowleg_twist", knee, t.positions[ankle],
                 SHIN_TWIST_FRACTIONS)
    t.set_twists([first + k for k in LEG_THIGH_TWISTS], f"{p}upleg_twist", hip, t.positions[knee],
                 THIGH_TWIST_FRACTIONS)
    # Thigh and shin: x down the bone, y forward; foot bones: x forward, y up.
    t.aim_at(hip, hip, knee, _Z)
    t.aim_at(knee, knee, ankle, _Z)
    t.aim_at(ankle, ankle, ball, _Y)
    t.aim_at(sub, sub, ball, _Y)
    t.aim_at(ball, ball, toe, _Y)
    t.aim_at(toe, toe, toe_end, _Y)
    t.aim_at(toe_end, toe, toe_end, _Y)


def _add_arm(t: _JointTable, first: int) -> None:
    s = arm_side(first)
    p = "l_" if s > 0 else "r_"
    hand = hand_axes(s)
    clav, sh, el = first + ARM_CLAVICLE, first + ARM_SHOULDER, first + ARM_ELBOW
    wt, wr = first + ARM_WRIST_TWIST, first + ARM_WRIST
    t.set(clav, p + "clavicle", SPINE[-1], (2.5 * s, 143.0, 2.0))
    t.set(sh, p + "uparm", clav, (s * SHOULDER_OFFSET[0], SHOULDER_OFFSET[1], SHOULDER_OFFSET[2]))
    t.set(el, p + "lowarm", sh, t.positions[sh] + UPPER_ARM_LENGTH * hand.along)
    t.set(wt, p + "wrist_twist", el, hand.wrist)
    t.set(wr, p + "wrist", wt, hand.wrist)  # same place: the wrist's rest frame equals the twist's
    chain = [first + k for k in ARM_THUMB]
    for n, (k, uvw) in enumerate(zip(chain, _THUMB_UVW)):
        t.set(k, f"{p}thumb{n}", wr if n == 0 else chain[n - 1], hand.at(*uvw))
    for finger, name in ((ARM_INDEX, "index"), (ARM_MIDDLE, "middle"), (ARM_RING, "ring"), (ARM_PINKY, "pinky")):
        chain = [first + k for k in finger]
        for n, (k, uvw) in enumerate(zip(chain, _FINGER_UVW[finger])):
            t.set(k, f"{p}{name}{n}", wr if n == 0 else chain[n - 1], hand.at(*uvw))
    t.set_twists([first + k for k in ARM_FOREARM_TWISTS], f"{p}lowarm_twist", el, hand.wrist, FOREARM_TWIST_FRACTIONS)
    t.set_twists([first + k for k in ARM_UPPER_TWISTS], f"{p}uparm_twist", sh, t.positions[el], UPPER_TWIST_FRACTIONS)
    # Arm bones: x along the bone, y forward. Hand and fingers: y along the palm normal, so that a
    # rotation about z curls a finger into the palm. The twist joint therefore carries a 90 degree
    # roll relative to the lower arm, which makes `joint_rotation[41/77]` a real rotation.
    t.aim_at(clav, clav, sh, _Z)
    t.aim_at(sh, sh, el, _Z)
    t.aim_at(el, el, wt, _Z)
    t.aim_at(wt, wt, first + ARM_MIDDLE[0], hand.palm_normal)
    t.copy_frame_of[wr] = wt
    for finger in (ARM_THUMB, ARM_INDEX, ARM_MIDDLE, ARM_RING, ARM_PINKY):
        chain = [first + k for k in finger]
        for a, b in zip(chain[:-1], chain[1:]):
            t.aim_at(a, a, b, hand.palm_normal)
        t.aim_at(chain[-1], chain[-2], chain[-1], hand.palm_normal)


def _add_spine_and_head(t: _JointTable) -> None:
    t.set(0, "body_world", -1, (0.0, 0.0, 0.0))
    t.set(ROOT, "root", 0, (0.0, 93.0, 0.0))
    spine_pos = ((0.0, 98.0, -1.5), (0.0, 108.5, -2.5), (0.0, 119.5, -2.5), (0.0, 132.5, -3.0))
    for n, (j, pos) in enumerate(zip(SPINE, spine_pos)):
        t.set(j, f"spine{n}", ROOT if n == 0 else SPINE[n - 1], pos)
    t.set(NECK0, "neck0", SPINE[-1], (0.0, 145.0, -3.5))
    t.set(NECK1, "neck1", NECK0, (0.0, 151.0, -2.5))
    t.set(THROAT, "throat", NECK0, (0.0, 146.5, 2.5))
    t.set(HEAD, "head", NECK1, (0.0, 157.0, -1.5))
    t.set(JAW, "jaw", HEAD, (0.0, 159.0, 2.0))
    t.set(CHIN, "chin", JAW, (0.0, 150.5, 8.5))
    t.set(116, "lower_lip", JAW, (0.0, 153.5, 9.5))
    face = (
        (117, "upper_lip", (0.0, 156.5, 10.0)),
        (NOSE, "nose", (0.0, 160.5, 11.5)),
        (LEFT_EYE, "l_eye", (3.2, 164.5, 8.5)),
        (RIGHT_EYE, "r_eye", (-3.2, 164.5, 8.5)),
        (121, "l_eyelid", (3.2, 165.5, 9.0)),
        (122, "r_eyelid", (-3.2, 165.5, 9.0)),
        (LEFT_EAR, "l_ear", (7.6, 162.0, 0.0)),
        (RIGHT_EAR, "r_ear", (-7.6, 162.0, 0.0)),
        (125, "brow", (0.0, 168.0, 9.5)),
        (HEAD_TOP, "head_top", (0.0, 173.0, 0.0)),
    )
    for j, name, pos in face:
        t.set(j, name, HEAD, pos)


def _frame(x_axis: np.ndarray, up: np.ndarray) -> np.ndarray:
    x = _unit(x_axis)
    y = _unit(up - (up @ x) * x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def build_skeleton(height_offset: float = 0.0) -> Skeleton:
    """The stand-in's rest skeleton; `height_offset` shifts it vertically (feet onto y = 0)."""
    t = _JointTable()
    _add_spine_and_head(t)
    _add_leg(t, LEFT_LEG)
    _add_leg(t, RIGHT_LEG)
    _add_arm(t, RIGHT_ARM)
    _add_arm(t, LEFT_ARM)
    assert all(n is not None for n in t.names), [j for j, n in enumerate(t.names) if n is None]
    frames = np.repeat(np.eye(3)[None], NUM_JOINTS, axis=0)
    for j, aim in enumerate(t.aim):
        if aim is not None:
            start, target, up = aim
            frames[j] = _frame(t.positions[target] - t.positions[start], up)
    for j, source in t.copy_frame_of.items():
        frames[j] = frames[source]
    positions = t.positions + np.array([0.0, height_offset, 0.0])
    return Skeleton(tuple(t.names), tuple(t.parents), positions, frames)


# ---------------------------------------------------------------------------------------------
# Quad cage, box-modelled by extrusion
# ---------------------------------------------------------------------------------------------
class _Cage:
    def __init__(self) -> None:
        self.verts: list[np.ndarray] = []
        self.quads: list[list[int]] = []
        self.labels: list[int] = []

    def add_vertex(self, p) -> int:
        self.verts.append(np.asarray(p, dtype=np.float64))
        return len(self.verts) - 1

    def face_normal(self, f: int) -> np.ndarray:
        a, b, c, d = (self.verts[i] for i in self.quads[f])
        return _unit(np.cross(c - a, d - b))

    def face_center(self, f: int) -> np.ndarray:
        return np.mean([self.verts[i] for i in self.quads[f]], axis=0)

    def add_quad(self, ids: list[int], label: int, outward: np.ndarray) -> int:
        a, b, c, d = (self.verts[i] for i in ids)
        if np.cross(c - a, d - b) @ outward < 0:
            ids = ids[::-1]
        self.quads.append(list(ids))
        self.labels.append(label)
        return len(self.quads) - 1

    def pick(self, faces: list[int], direction) -> int:
        """The face among `faces` whose normal points most along `direction`."""
        return max(faces, key=lambda f: float(self.face_normal(f) @ np.asarray(direction)))


class _Tube:
    """A region of cage faces that is extruded again and again (a limb, the torso, the neck).

    Each region vertex keeps fixed cross-section coordinates (su, sv), so every new ring is
    `center + a*su*U + b*sv*V`, with U from a reference direction and V = dir x U: the rings
    follow the limb without twisting and the winding of the region is preserved.
    """

    def __init__(self, cage: _Cage, faces: list[int], direction, ref) -> None:
        self.cage = cage
        self.faces = list(faces)
        self.ref = np.asarray(ref, dtype=np.float64)
        self.ids = sorted({i for f in faces for i in cage.quads[f]})
        pts = np.array([cage.verts[i] for i in self.ids])
        u, v = self._axes(np.asarray(direction, dtype=np.float64))
        rel = pts - pts.mean(axis=0)
        su, sv = rel @ u, rel @ v
        self.coords = np.stack([su / np.abs(su).max(), sv / np.abs(sv).max()], axis=1)

    def _axes(self, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = _unit(direction)
        u = _unit(self.ref - (self.ref @ d) * d)
        return u, np.cross(d, u)

    def extrude(self, center, direction, a: float, b: float, label: int) -> list[int]:
        """Add a ring; returns the new side faces. The region itself becomes the new end cap."""
        cage = self.cage
        u, v = self._axes(np.asarray(direction, dtype=np.float64))
        c = np.asarray(center, dtype=np.float64)
        new_id = {
            old: cage.add_vertex(c + a * su * u + b * sv * v) for old, (su, sv) in zip(self.ids, self.coords)
        }
        directed = {(q[k], q[(k + 1) % 4]) for f in self.faces for q in [cage.quads[f]] for k in range(4)}
        sides = []
        for f in self.faces:  # walk faces in order so the side faces come out deterministically
            q = cage.quads[f]
            for k in range(4):
                e0, e1 = q[k], q[(k + 1) % 4]
                if (e1, e0) not in directed:  # a boundary edge of the region
                    cage.quads.append([e0, e1, new_id[e1], new_id[e0]])
                    cage.labels.append(label)
                    sides.append(len(cage.quads) - 1)
        for f in self.faces:
            cage.quads[f] = [new_id[i] for i in cage.quads[f]]
            cage.labels[f] = label
        self.ids = [new_id[i] for i in self.ids]
        return sides


# Rings: (centre, half-size along U, half-size along V). Half-sizes are about 8 % above the
# intended limb radius: Catmull-Clark rounds a square section to a circle of ~0.92 of its half-size.
_TORSO_RINGS = (
    ((0.0, 110.0, 0.0), 14.5, 10.0),
    ((0.0, 121.0, 0.5), 15.5, 10.8),
    ((0.0, 132.5, 0.5), 17.0, 11.2),
    ((0.0, 143.0, -1.5), 18.0, 9.5),
)
_NECK_HEAD_RINGS = (  # the first ring (trapezius slope) still belongs to the torso
    ((0.0, 148.0, -3.0), 6.3, 6.0, TORSO),
    ((0.0, 153.5, -2.0), 6.0, 6.2, HEADPART),
    ((0.0, 157.0, 0.5), 7.2, 9.2, HEADPART),
    ((0.0, 163.5, 0.8), 8.4, 10.8, HEADPART),
    ((0.0, 170.0, 0.0), 7.6, 9.8, HEADPART),
    ((0.0, 174.5, -0.5), 4.8, 6.5, HEADPART),
)
# Arm rings by distance along the arm from the shoulder joint: (t, thickness, width, is_hand).
_ARM_RINGS = (
    (8.0, 5.8, 6.0, False), (19.0, 5.4, 5.5, False), (29.0, 4.4, 4.6, False), (37.0, 4.7, 4.7, False),
    (46.0, 3.8, 3.8, False), (54.5, 2.3, 3.1, False),
    (59.0, 1.9, 4.2, True), (64.0, 1.7, 4.6, True), (68.5, 1.35, 4.4, True), (73.0, 0.9, 3.6, True),
)
# Thumb rings in hand coordinates: (u, v, w, thickness, width, direction (along, thumb side)).
_THUMB_RINGS = (
    ((5.0, 4.9, 1.2), 1.35, 1.4, (0.45, 0.9)),
    ((7.4, 6.5, 1.45), 1.15, 1.2, (0.7, 0.7)),
    ((10.0, 7.6, 1.55), 0.85, 0.9, (0.9, 0.45)),
)
# Leg rings (x is mirrored): (centre, half depth, half width, is_foot).
_LEG_RINGS = (
    ((9.0, 76.0, 0.5), 9.5, 8.8, False), ((9.3, 64.0, 1.5), 7.6, 7.1, False),
    ((9.5, 54.0, 2.0), 6.3, 6.0, False), ((9.5, 47.0, 1.8), 5.6, 5.3, False),
    ((9.5, 37.0, -0.5), 6.3, 5.5, False), ((9.5, 24.0, -1.0), 4.6, 4.3, False),
    ((9.5, 12.0, -2.0), 3.4, 3.3, False), ((9.5, 7.0, -2.5), 3.6, 3.5, False),
    ((9.5, 2.2, -2.0), 4.6, 4.0, True),
)
_FOOT_RINGS = (  # forward from the heel: (centre, half height, half width)
    ((9.7, 4.2, 6.5), 3.1, 4.3), ((9.9, 3.0, 13.0), 2.3, 4.8), ((10.1, 2.3, 19.0), 1.5, 4.3),
)
_PELVIS = dict(half_width=16.5, half_depth=11.0, bottom=83.0, top=100.0)


def _pelvis_block(cage: _Cage) -> dict[str, list[int]]:
    """A box split in two along x: 12 vertices, 10 quads (two per side for the legs and torso)."""
    w, d = _PELVIS["half_width"], _PELVIS["half_depth"]
    ys = (_PELVIS["bottom"], _PELVIS["top"])
    vid = {}
    for i, x in enumerate((-w, 0.0, w)):
        for j, y in enumerate(ys):
            for k, z in enumerate((-d, d)):
                vid[i, j, k] = cage.add_vertex((x, y, z))
    faces: dict[str, list[int]] = {"bottom": [], "top": []}
    for i in (0, 1):
        for j, key, outward in ((0, "bottom", -_Y), (1, "top", _Y)):
            ring = [vid[i, j, 0], vid[i + 1, j, 0], vid[i + 1, j, 1], vid[i, j, 1]]
            faces[key].append(cage.add_quad(ring, TORSO, outward))
        cage.add_quad([vid[i, 0, 1], vid[i + 1, 0, 1], vid[i + 1, 1, 1], vid[i, 1, 1]], TORSO, _Z)
        cage.add_quad([vid[i, 0, 0], vid[i + 1, 0, 0], vid[i + 1, 1, 0], vid[i, 1, 0]], TORSO, -_Z)
    cage.add_quad([vid[2, 0, 0], vid[2, 1, 0], vid[2, 1, 1], vid[2, 0, 1]], TORSO, _X)
    cage.add_quad([vid[0, 0, 0], vid[0, 1, 0], vid[0, 1, 1], vid[0, 0, 1]], TORSO, -_X)
    return faces


def _build_arm(cage: _Cage, side_face: int, first: int) -> None:
    s = arm_side(first)
    d = arm_direction(s)
    hand = hand_axes(s)
    shoulder = np.array([s * SHOULDER_OFFSET[0], SHOULDER_OFFSET[1], SHOULDER_OFFSET[2]])
    arm_label, hand_label = (ARM_L, HAND_L) if s > 0 else (ARM_R, HAND_R)
    first_dir = _unit(np.array([s, 0.0, 0.0]) + d)
    tube = _Tube(cage, [side_face], first_dir, _Y)
    tube.extrude((s * 21.5, 140.5, -3.0), first_dir, 6.2, 6.0, arm_label)
    thumb_base = None
    for t, thickness, width, is_hand in _ARM_RINGS:
        sides = tube.extrude(shoulder + t * d, d, thickness, width, hand_label if is_hand else arm_label)
        if thumb_base is None and is_hand:
            thumb_base = cage.pick(sides, _Z)  # the thumb grows from the thumb side of the palm's base
    thumb_dirs = [_unit(a * hand.along + b * hand.thumb_side) for _, _, _, (a, b) in _THUMB_RINGS]
    thumb = _Tube(cage, [thumb_base], thumb_dirs[0], hand.palm_normal)
    for ((u, v, w), thickness, width, _), direction in zip(_THUMB_RINGS, thumb_dirs):
        thumb.extrude(hand.at(u, v, w), direction, thickness, width, hand_label)


def _build_leg(cage: _Cage, bottom_face: int, first: int) -> None:
    s = leg_side(first)
    leg_label, foot_label = (LEG_L, FOOT_L) if s > 0 else (LEG_R, FOOT_R)
    tube = _Tube(cage, [bottom_face], -_Y, _Z)
    heel_sides = None
    for (x, y, z), depth, width, is_foot in _LEG_RINGS:
        sides = tube.extrude((s * x, y, z), -_Y, depth, width, foot_label if is_foot else leg_label)
        if is_foot:
            heel_sides = sides
    foot = _Tube(cage, [cage.pick(heel_sides, _Z)], _Z, _Y)
    for (x, y, z), height, width in _FOOT_RINGS:
        foot.extrude((s * x, y, z), _Z, height, width, foot_label)


def build_cage() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, quads, part label per quad) of the coarse body; closed, genus 0, outward."""
    cage = _Cage()
    pelvis = _pelvis_block(cage)
    bottom_left, bottom_right = sorted(pelvis["bottom"], key=lambda f: -cage.face_center(f)[0])
    torso = _Tube(cage, pelvis["top"], _Y, _X)
    sides = []
    for center, a, b in _TORSO_RINGS:
        sides = torso.extrude(center, _Y, a, b, TORSO)
    left_side, right_side = cage.pick(sides, _X), cage.pick(sides, -_X)
    for center, a, b, label in _NECK_HEAD_RINGS:
        torso.extrude(center, _Y, a, b, label)
    _build_arm(cage, left_side, LEFT_ARM)
    _build_arm(cage, right_side, RIGHT_ARM)
    _build_leg(cage, bottom_left, LEFT_LEG)
    _build_leg(cage, bottom_right, RIGHT_LEG)
    return np.array(cage.verts), np.array(cage.quads, dtype=np.int64), np.array(cage.labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Refinement
# ---------------------------------------------------------------------------------------------
def _unique_edges(faces: np.ndarray, num_vertices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges of a closed manifold polygon mesh: (edges (E,2), edge id per face corner
    edge (F,k), the two faces of each edge (E,2))."""
    k = faces.shape[1]
    a = faces.reshape(-1)
    b = np.roll(faces, -1, axis=1).reshape(-1)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    codes, edge_of_corner = np.unique(lo * num_vertices + hi, return_inverse=True)
    edge_of_corner = edge_of_corner.reshape(faces.shape)
    counts = np.bincount(edge_of_corner.reshape(-1), minlength=len(codes))
    if not np.all(counts == 2):
        raise ValueError("mesh is not a closed 2-manifold (an edge is not shared by exactly two faces)")
    order = np.argsort(edge_of_corner.reshape(-1), kind="stable")
    edge_faces = (order // k).reshape(-1, 2)
    edges = np.stack([codes // num_vertices, codes % num_vertices], axis=1)
    return edges, edge_of_corner, edge_faces


def _scatter_mean(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.stack([np.bincount(index, weights=values[:, c], minlength=size) for c in range(values.shape[1])], 1)
    return out / np.bincount(index, minlength=size)[:, None]


def catmull_clark(verts: np.ndarray, quads: np.ndarray, labels: np.ndarray):
    """One Catmull-Clark step on a closed quad mesh. Old vertices keep their indices; then come
    edge points, then face points. Child quads keep their parent's winding and label."""
    nv, nf = len(verts), len(quads)
    edges, edge_of_corner, edge_faces = _unique_edges(quads, nv)
    ne = len(edges)
    face_pts = verts[quads].mean(axis=1)
    edge_pts = (verts[edges[:, 0]] + verts[edges[:, 1]] + face_pts[edge_faces[:, 0]] + face_pts[edge_faces[:, 1]]) / 4
    valence = np.bincount(edges.reshape(-1), minlength=nv).astype(np.float64)[:, None]
    face_avg = _scatter_mean(quads.reshape(-1), np.repeat(face_pts, 4, axis=0), nv)
    mids = (verts[edges[:, 0]] + verts[edges[:, 1]]) / 2
    edge_avg = _scatter_mean(edges.reshape(-1), np.repeat(mids, 2, axis=0), nv)
    moved = (face_avg + 2 * edge_avg + (valence - 3) * verts) / valence
    new_verts = np.concatenate([moved, edge_pts, face_pts])
    e = nv + edge_of_corner  # edge k runs from corner k to corner k+1
    f = (nv + ne + np.arange(nf))[:, None]
    children = [np.stack([quads[:, k], e[:, k], f[:, 0], e[:, (k - 1) % 4]], axis=1) for k in range(4)]
    new_quads = np.stack(children, axis=1).reshape(-1, 4)
    return new_verts, new_quads, np.repeat(labels, 4)


def triangulate(verts: np.ndarray, quads: np.ndarray, labels: np.ndarray):
    """Split each quad along its shorter diagonal (keeps the winding)."""
    a, b, c, d = quads.T
    ac = np.linalg.norm(verts[a] - verts[c], axis=1)
    bd = np.linalg.norm(verts[b] - verts[d], axis=1)
    use_ac = (ac <= bd)[:, None]
    t1 = np.where(use_ac, np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(use_ac, np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.stack([t1, t2], 1).reshape(-1, 3), np.repeat(labels, 2)


def split_longest_edges(verts: np.ndarray, tris: np.ndarray, labels: np.ndarray, count: int):
    """Add `count` vertices by splitting the longest edges at their midpoints. Each split turns
    two triangles into four, so a closed genus-0 mesh keeps F = 2V - 4."""
    verts, tris, labels = verts.copy(), tris.copy(), labels.copy()
    while count > 0:
        edges, _, edge_faces = _unique_edges(tris, len(verts))
        length = np.linalg.norm(verts[edges[:, 0]] - verts[edges[:, 1]], axis=1)
        used = np.zeros(len(tris), dtype=bool)
        chosen = []
        for e in np.argsort(-length, kind="stable"):  # greedy: edges whose faces are still whole
            f1, f2 = edge_faces[e]
            if not (used[f1] or used[f2]):
                used[f1] = used[f2] = True
                chosen.append(e)
                if len(chosen) == count:
                    break
        new_verts, new_tris, new_labels = [], [], []
        for n, e in enumerate(chosen):
            m = len(verts) + n
            u, v = edges[e]
            new_verts.append((verts[u] + verts[v]) / 2)
            for f in edge_faces[e]:
                tri = tris[f]
                k = next(k for k in range(3) if {tri[k], tri[(k + 1) % 3]} == {u, v})
                x, y, w = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
                tris[f] = (x, m, w)
                new_tris.append((m, y, w))
                new_labels.append(labels[f])
        verts = np.concatenate([verts, np.array(new_verts)])
        tris = np.concatenate([tris, np.array(new_tris, dtype=tris.dtype)])
        labels = np.concatenate([labels, np.array(new_labels, dtype=labels.dtype)])
        count -= len(chosen)
    return verts, tris, labels


@dataclass(frozen=True)
class BodyMesh:
    vertices: np.ndarray  # (V, 3) float64, cm
    faces: np.ndarray  # (F, 3) int64, outward (counter-clockwise seen from outside)
    vertex_parts: np.ndarray  # (V, NUM_PARTS) bool: which body parts' faces touch each vertex
    skeleton: Skeleton

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)


def _vertex_parts(num_vertices: int, faces: np.ndarray, face_labels: np.ndarray) -> np.ndarray:
    parts = np.zeros((num_vertices, NUM_PARTS), dtype=bool)
    parts[faces.reshape(-1), np.repeat(face_labels, faces.shape[1])] = True
    return parts


def build_body_mesh(size: str) -> BodyMesh:
    """'full': 18,439 vertices / 36,874 faces (MHR LOD1's counts); 'tiny': about 1,100 vertices."""
    if size not in ("tiny", "full"):
        raise ValueError(f"unknown stand-in size {size!r}: use tiny or full")
    verts, quads, labels = build_cage()
    levels = [(verts, quads, labels)]
    for _ in range(3):
        levels.append(catmull_clark(*levels[-1]))
    fine_verts = levels[3][0]
    # Feet on the floor: shift body and skeleton so the lowest point of the surface is y = 0.
    lift = -fine_verts[:, 1].min()
    fine_verts = fine_verts + np.array([0.0, lift, 0.0])
    skeleton = build_skeleton(height_offset=lift)
    if size == "full":
        tris, tri_labels = triangulate(fine_verts, levels[3][1], levels[3][2])
        verts_out, tris, tri_labels = split_longest_edges(
            fine_verts, tris, tri_labels, FULL_NUM_VERTICES - len(fine_verts)
        )
    else:
        # Level-1 topology; its vertices keep their indices through later levels, so the level-3
        # positions put them (almost) on the smooth limit surface.
        coarse_quads, coarse_labels = levels[1][1], levels[1][2]
        verts_out = fine_verts[: len(levels[1][0])]
        tris, tri_labels = triangulate(verts_out, coarse_quads, coarse_labels)
    return BodyMesh(verts_out, tris, _vertex_parts(len(verts_out), tris, tri_labels), skeleton)


# ---------------------------------------------------------------------------------------------
# Skinning
# ---------------------------------------------------------------------------------------------
def _bone_segments(sk: Skeleton) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The stretch of bone each skinned joint owns. Twist joints share their limb segment
    (so twisting spreads along the limb); tips, eyes and helpers own no skin."""
    P = sk.positions
    seg: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def span(j, a, b, f0, f1):
        seg[j] = (_lerp(P[a], P[b], f0), _lerp(P[a], P[b], f1))

    seg[ROOT] = (P[ROOT] + np.array([0.0, -9.0, 0.0]), P[SPINE[0]])
    for a, b in zip(SPINE[:-1], SPINE[1:]):
        seg[a] = (P[a], P[b])
    seg[SPINE[-1]] = (P[SPINE[-1]], P[NECK0])
    seg[NECK0] = (P[NECK0], P[NECK1])
    seg[NECK1] = (P[NECK1], P[HEAD])
    seg[HEAD] = (P[HEAD], P[HEAD_TOP])
    seg[JAW] = (P[JAW], P[CHIN])
    for first in (LEFT_LEG, RIGHT_LEG):
        hip, knee, ankle = first + LEG_HIP, first + LEG_KNEE, first + LEG_ANKLE
        seg[hip] = (P[hip], P[hip])
        for k, f0, f1 in zip(LEG_THIGH_TWISTS[:-1], THIGH_TWIST_FRACTIONS[:-1], THIGH_TWIST_FRACTIONS[1:]):
            span(first + k, hip, knee, f0, f1)
        span(knee, knee, ankle, 0.0, SHIN_TWIST_FRACTIONS[0])
        for k, f0, f1 in zip(LEG_SHIN_TWISTS, SHIN_TWIST_FRACTIONS, SHIN_TWIST_FRACTIONS[1:] + (1.0,)):
            span(first + k, knee, ankle, f0, f1)
        seg[ankle] = (P[ankle], P[first + LEG_SUBTALAR])
        seg[first + LEG_SUBTALAR] = (P[first + LEG_SUBTALAR], P[first + LEG_BALL])
        seg[first + LEG_BALL] = (P[first + LEG_BALL], P[first + LEG_TOE])
        seg[first + LEG_TOE] = (P[first + LEG_TOE], P[first + LEG_TOE_END])
    for first in (RIGHT_ARM, LEFT_ARM):
        clav, sh, el, wt = first + ARM_CLAVICLE, first + ARM_SHOULDER, first + ARM_ELBOW, first + ARM_WRIST_TWIST
        seg[clav] = (P[clav], P[sh])
        seg[sh] = (P[sh], P[sh])
        for k, f0, f1 in zip(ARM_UPPER_TWISTS[:-1], UPPER_TWIST_FRACTIONS[:-1], UPPER_TWIST_FRACTIONS[1:]):
            span(first + k, sh, el, f0, f1)
        span(el, el, wt, 0.0, FOREARM_TWIST_FRACTIONS[0])
        for k, f0, f1 in zip(ARM_FOREARM_TWISTS, FOREARM_TWIST_FRACTIONS, FOREARM_TWIST_FRACTIONS[1:] + (1.0,)):
            span(first + k, el, wt, f0, f1)
        seg[first + ARM_WRIST] = (P[wt], P[first + ARM_MIDDLE[0]])
        for finger in (ARM_THUMB, ARM_INDEX, ARM_MIDDLE, ARM_RING, ARM_PINKY):
            chain = [first + k for k in finger]
            for a, b in zip(chain[:-1], chain[1:]):
                seg[a] = (P[a], P[b])
    return seg


def _part_bones() -> dict[int, list[int]]:
    def leg(first):
        return [first + k for k in (LEG_HIP, *LEG_THIGH_TWISTS[:-1], LEG_KNEE, *LEG_SHIN_TWISTS, LEG_ANKLE)]

    def foot(first):
        return [first + k for k in (*LEG_SHIN_TWISTS[-2:], LEG_ANKLE, LEG_SUBTALAR, LEG_BALL, LEG_TOE)]

    def arm(first):
        ks = (ARM_CLAVICLE, ARM_SHOULDER, *ARM_UPPER_TWISTS[:-1], ARM_ELBOW, *ARM_FOREARM_TWISTS)
        return [SPINE[-1]] + [first + k for k in ks]

    def hand(first):
        ks = (*ARM_FOREARM_TWISTS[-2:], ARM_WRIST, *ARM_THUMB[:-1], *ARM_INDEX[:-1], *ARM_MIDDLE[:-1],
              *ARM_RING[:-1], *ARM_PINKY[:-1])
        return [first + k for k in ks]

    return {
        TORSO: [ROOT, *SPINE, RIGHT_ARM, LEFT_ARM, NECK0, LEFT_LEG, RIGHT_LEG,
                LEFT_LEG + LEG_THIGH_TWISTS[0], RIGHT_LEG + LEG_THIGH_TWISTS[0]],
        HEADPART: [SPINE[-1], NECK0, NECK1, HEAD, JAW],
        ARM_L: arm(LEFT_ARM), ARM_R: arm(RIGHT_ARM), HAND_L: hand(LEFT_ARM), HAND_R: hand(RIGHT_ARM),
        LEG_L: [ROOT] + leg(LEFT_LEG), LEG_R: [ROOT] + leg(RIGHT_LEG), FOOT_L: foot(LEFT_LEG), FOOT_R: foot(RIGHT_LEG),
    }


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    denom = max(float(ab @ ab), 1e-12)
    f = np.clip((points - a) @ ab / denom, 0.0, 1.0)
    return np.linalg.norm(points - (a + f[:, None] * ab), axis=1)


def _bone_distances(mesh: BodyMesh) -> tuple[list[int], np.ndarray]:
    """(skinned joints, (V, len) distance from each vertex to each of their bone segments; inf
    for bones outside the body parts the vertex belongs to)."""
    segments = _bone_segments(mesh.skeleton)
    bones = sorted(segments)
    dist = np.stack([_segment_distance(mesh.vertices, *segments[j]) for j in bones], axis=1)
    allowed = np.zeros((NUM_PARTS, len(bones)), dtype=bool)
    column = {j: n for n, j in enumerate(bones)}
    for part, joints in _part_bones().items():
        allowed[part, [column[j] for j in joints]] = True
    candidate = (mesh.vertex_parts.astype(np.int64) @ allowed.astype(np.int64)) > 0
    return bones, np.where(candidate, dist, np.inf)


def local_radius(mesh: BodyMesh) -> np.ndarray:
    """(V,) distance from each vertex to its nearest bone: how thick the body is there."""
    return _bone_distances(mesh)[1].min(axis=1)


def skinning_weights(mesh: BodyMesh, blend_cm: float = 2.0, max_bones: int = 4) -> np.ndarray:
    """(V, 127) linear-blend-skinning weights: nearest bone segments among the bones of the body
    parts a vertex belongs to, blended over `blend_cm`, at most `max_bones` per vertex."""
    bones, dist = _bone_distances(mesh)
    excess = dist - dist.min(axis=1, keepdims=True)
    w = np.exp(-excess / blend_cm)
    keep = np.argsort(-w, axis=1, kind="stable")[:, :max_bones]
    top = np.take_along_axis(w, keep, axis=1)
    top = np.where(top >= 0.02 * top[:, :1], top, 0.0)
    top /= top.sum(axis=1, keepdims=True)
    weights = np.zeros((len(mesh.vertices), NUM_JOINTS))
    rows = np.repeat(np.arange(len(mesh.vertices)), max_bones)
    np.add.at(weights, (rows, np.array(bones)[keep].reshape(-1)), top.reshape(-1))
    return weights


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, float64 (outward for an outward-wound mesh)."""
    return mesh_normals(vertices, faces, dtype=np.float64)
