"""BVH motion: the rig's joint hierarchy (names, offsets in cm) and one frame per pose.

BVH has no bind orientations and no scale: a joint's rest frame is the world's axes and its
OFFSET is where it sits from its parent then. So each joint's BVH rotation is its rotation
relative to its bind orientation (world · bind⁻¹, rotation only), made local to its parent, and
each OFFSET is the joint's bone vector in the parent's BVH frame, taken from the first frame:
the person's own proportions (MHR's bone scales) and shoulder shrugs are in the offsets, and
rotations alone give back every joint position of that frame. A photo is one frame. Over several
frames (video), a joint whose bone vector changes (the root's translation, shrugs, a changing
scale) also gets position channels holding its bone vector per frame; readers mostly agree that
a non-root joint's position channels replace its OFFSET, and those joints are few.

Frame: the upright frame (Y up, feet on y = 0), centimetres. Rotation channels Z, X, Y (the
usual mocap order: R = Rz · Rx · Ry), degrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic_file import atomic_path
from ..errors import UserError
from ..model.rig_skeleton import RigSkeleton
from ..model.skel_state import split_similarity

CM_PER_M = 100.0
ROTATION_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
MOVING_BONE_CM = 1e-4  # a bone vector that changes more than this between frames gets channels


def zxy_degrees(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations → (..., 3) angles (z, x, y) in degrees with R = Rz · Rx · Ry."""
    sx = np.clip(r[..., 2, 1], -1.0, 1.0)
    x = np.arcsin(sx)
    z = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    y = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    locked = np.abs(sx) > 1 - 1e-9  # x = ±90°: only z ± y is defined; put it all in z
    z = np.where(locked, np.arctan2(r[..., 1, 0], r[..., 0, 0]), z)
    y = np.where(locked, 0.0, y)
    return np.degrees(np.stack([z, x, y], axis=-1))


def bvh_motion(skeleton: RigSkeleton, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames (F, J, 4, 4) world transforms (upright frame, metres) → per frame and joint the BVH
    local rotation (F, J, 3, 3), the bone vector in the parent's BVH frame (F, J, 3, cm; a root's
    is its position) and the world positions (F, J, 3, cm)."""
    t, r, _ = split_similarity(np.asarray(frames, np.float64))
    t = t * CM_PER_M
    _, bind_r, _ = split_similarity(skeleton.bind_world)
    world_r = r @ np.swapaxes(bind_r, -1, -2)  # rotation away from the bind orientation
    parents = skeleton.parents
    has = parents >= 0
    parent_r = np.where(has[None, :, None, None], world_r[:, np.maximum(parents, 0)], np.eye(3))
    local_r = np.swapaxes(parent_r, -1, -2) @ world_r
    bone = t - np.where(has[None, :, None], t[:, np.maximum(parents, 0)], 0.0)
    bone = np.einsum("fjba,fjb->fja", parent_r, bone)
    return local_r, bone, t


def bvh_text(skeleton: RigSkeleton, frames: np.ndarray, fps: float = 30.0) -> str:
    frames = np.asarray(frames, np.float64)
    if frames.ndim != 4 or frames.shape[1:] != (skeleton.num_joints, 4, 4) or len(frames) == 0:
        raise UserError(f"BVH frames must be (F, {skeleton.num_joints}, 4, 4) joint transforms, got {frames.shape}")
    roots = np.flatnonzero(skeleton.parents < 0)
    if len(roots) != 1:
        raise UserError(f"a BVH hierarchy has one root; this skeleton has {len(roots)}")
    order = skeleton.order()
    local_r, bone, _ = bvh_motion(skeleton, frames)
    moving = np.abs(bone - bone[:1]).max(axis=(0, 2)) > MOVING_BONE_CM
    with_position = moving.copy()
    with_position[roots[0]] = True
    children: dict[int, list[int]] = {}
    for j, p in enumerate(skeleton.parents.tolist()):
        children.setdefault(p, []).append(j)

    lines = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "  " * depth
        root = skeleton.parents[j] < 0
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {skeleton.names[j]}")
        lines.append(f"{pad}{{")
        offset = np.zeros(3) if root else bone[0, j]
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = (POSITION_CHANNELS if with_position[j] else ()) + ROTATION_CHANNELS
        lines.append(f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}")
        kids = children.get(j, [])
        for k in kids:
            write(k, depth + 1)
        if not kids:  # BVH ends every chain in an End Site: a short stub along the bone
            length = np.linalg.norm(bone[0, j])
            tip = bone[0, j] / length * min(2.0, length) if length > 1e-6 else np.array([0.0, 2.0, 0.0])
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    write(int(roots[0]), 0)
    angles = zxy_degrees(local_r)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {1.0 / fps:.6f}"]
    for f in range(len(frames)):
        values = []
        for j in order:
            if with_position[j]:
                values += bone[f, j].tolist()
            values += angles[f, j].tolist()
        lines.append(" ".join(f"{v:.6f}" for v in values))
    return "\n".join(lines) + "\n"


def save_bvh(path: Path, skeleton: RigSkeleton, frames: Sequence[np.ndarray], fps: float = 30.0) -> Path:
    """One person's poses as BVH at `path`: `frames` are (J, 4, 4) joint transforms in the upright
    frame (a `RiggedPerson.world` each); a photo gives one."""
    text = bvh_text(skeleton, np.stack([np.asarray(f, np.float64) for f in frames]) if len(frames) else
                    np.zeros((0, skeleton.num_joints, 4, 4)), fps)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
