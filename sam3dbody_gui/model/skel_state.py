"""Similarity transforms in pymomentum's skeleton-state form, in numpy (float64).

A skeleton state ("skel_state") is (..., 8) = translation (3), rotation quaternion (x, y, z, w)
and one uniform scale: what MHR's forward returns per joint and how pymomentum stores its
inverse bind pose (`pymomentum/skel_state.py`). As a matrix it is [s·R | t; 0 0 0 1]. Products of
such matrices stay of that form, so a joint's local transform (parent⁻¹ · joint) always splits
back into translation, rotation and one scale: what glTF nodes and BVH channels need.
"""

from __future__ import annotations

import numpy as np


def quat_from_matrix(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (..., 4) unit quaternions (x, y, z, w), w >= 0.
    Shepperd's method: of the four equivalent formulas take the best-conditioned one, so a
    half turn stays exact."""
    m = np.asarray(rotations, dtype=np.float64)
    w4 = 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    x4 = 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2]
    y4 = 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2]
    z4 = 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]
    best = np.argmax(np.stack([w4, x4, y4, z4], -1), axis=-1)
    candidates = np.stack([
        np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1], w4], -1),
        np.stack([x4, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
        np.stack([m[..., 0, 1] + m[..., 1, 0], y4, m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], z4, m[..., 1, 0] - m[..., 0, 1]], -1),
    ], -2)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w), normalised here → (..., 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def state_to_matrix(state: np.ndarray) -> np.ndarray:
    """(..., 8) skel_states → (..., 4, 4) matrices."""
    state = np.asarray(state, dtype=np.float64)
    out = np.zeros(state.shape[:-1] + (4, 4))
    out[..., :3, :3] = matrix_from_quat(state[..., 3:7]) * state[..., 7:8, None]
    out[..., :3, 3] = state[..., :3]
    out[..., 3, 3] = 1.0
    return out


def split_similarity(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 4, 4) [s·R | t] → translation (..., 3), rotation (..., 3, 3), scale (...,).
    The scale is the cube root of the determinant, so a tiny shear from rounding is spread evenly."""
    m = np.asarray(m, dtype=np.float64)
    scale = np.cbrt(np.linalg.det(m[..., :3, :3]))
    return m[..., :3, 3].copy(), m[..., :3, :3] / scale[..., None, None], scale


def invert_similarity(m: np.ndarray) -> np.ndarray:
    """Exact inverse of [s·R | t] matrices: [Rᵀ/s | -Rᵀ t/s]."""
    t, r, s = split_similarity(m)
    out = np.zeros_like(np.asarray(m, dtype=np.float64))
    rt = np.swapaxes(r, -1, -2) / s[..., None, None]
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, t)
    out[..., 3, 3] = 1.0
    return out


def local_transforms(world: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(..., J, 4, 4) world transforms → each joint's transform in its parent's frame (a root's
    local transform is its world transform)."""
    world = np.asarray(world, dtype=np.float64)
    parents = np.asarray(parents)
    local = world.copy()
    has = parents >= 0
    local[..., has, :, :] = invert_similarity(world[..., parents[has], :, :]) @ world[..., has, :, :]
    return local
