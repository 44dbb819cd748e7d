"""Rotation conversions used by the MHR head (written branch-free for static graphs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotmat_from_6d_columns(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) = two column vectors (a1, a2) → rotation matrix with columns (b1, b2, b1×b2).

    Gram–Schmidt as in Zhou et al. 2019: b1 = a1/|a1|, b2 = normalise(a2 - (b1·a2) b1).
    """
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_from_6d_cross(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) → rotation matrix built as x = a1/|a1|, z = normalise(x × a2), y = z × x.

    This is the variant MHR's compact pose parameters use (same span, different numerics
    from `rotmat_from_6d_columns`).
    """
    x_axis = F.normalize(x[..., 0:3], dim=-1)
    z_axis = F.normalize(torch.linalg.cross(x_axis, x[..., 3:6], dim=-1), dim=-1)
    y_axis = torch.linalg.cross(z_axis, x_axis, dim=-1)
    return torch.stack([x_axis, y_axis, z_axis], dim=-1)


def euler_xyz_from_rotmat(m: torch.Tensor) -> torch.Tensor:
    """R = Rz(c)·Ry(b)·Rx(a) → (a, b, c); near gimbal lock c = 0 as in MHR's tools."""
    sy = torch.sqrt(m[..., 0, 0] ** 2 + m[..., 1, 0] ** 2)
    singular = sy < 1e-6
    a = torch.where(singular, torch.atan2(-m[..., 1, 2], m[..., 1, 1]), torch.atan2(m[..., 2, 1], m[..., 2, 2]))
    b = torch.atan2(-m[..., 2, 0], sy)
    c = torch.where(singular, torch.zeros_like(sy), torch.atan2(m[..., 1, 0], m[..., 0, 0]))
    return torch.stack([a, b, c], dim=-1)


def intrinsic_zyx_from_rotmat(m: torch.Tensor) -> torch.Tensor:
    """R = Rz(z)·Ry(y)·Rx(x) → (z, y, x): the intrinsic 'ZYX' Euler angles, in that order."""
    xyz = euler_xyz_from_rotmat(m)
    return xyz.flip(-1)


def rotmat_from_quat_xyzw(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (x, y, z, w) → rotation matrix (no normalisation, like MHR's output)."""
    x, y, z, w = q.unbind(-1)
    xx, yy, zz, ww = x * x, y * y, z * z, w * w
    xy, zw, xz, yw, yz, xw = x * y, z * w, x * z, y * w, y * z, x * w
    rows = (
        xx - yy - zz + ww, 2 * (xy - zw), 2 * (xz + yw),
        2 * (xy + zw), -xx + yy - zz + ww, 2 * (yz - xw),
        2 * (xz - yw), 2 * (yz + xw), -xx - yy + zz + ww,
    )
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def rotmat_from_euler_xyz(angles: torch.Tensor) -> torch.Tensor:
    """(a, b, c) → Rz(c)·Ry(b)·Rx(a) (extrinsic x, then y, then z)."""
    c, s = torch.cos(angles), torch.sin(angles)
    cx, cy, cz = c.unbind(-1)
    sx, sy, sz = s.unbind(-1)
    rows = (
        cy * cz, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
        cy * sz, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
        -sy, cy * sx, cy * cx,
    )
    return torch.stack(rows, dim=-1).reshape(angles.shape[:-1] + (3, 3))


def _axis_rotmat(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Rotation by `angle` (...) about coordinate axis 0 (x), 1 (y) or 2 (z) → (..., 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == 1:
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def rotmat_from_intrinsic_xzy(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic 'XZY' Euler angles (x, z, y) → Rx(x)·Rz(z)·Ry(y) (how upstream reads the wrist)."""
    x, z, y = angles.unbind(-1)
    return _axis_rotmat(x, 0) @ _axis_rotmat(z, 2) @ _axis_rotmat(y, 1)


def intrinsic_xzy_from_rotmat(m: torch.Tensor) -> torch.Tensor:
    """R = Rx(x)·Rz(z)·Ry(y) → (x, z, y), z in [-π/2, π/2]; at gimbal lock y = 0.

    R[0,1] = -sin z, R[0,0] = cos z cos y, R[0,2] = cos z sin y, R[1,1] = cos x cos z,
    R[2,1] = sin x cos z.
    """
    cz = torch.sqrt(m[..., 0, 0] ** 2 + m[..., 0, 2] ** 2)
    singular = cz < 1e-6
    z = torch.atan2(-m[..., 0, 1], cz)
    # At |z| = π/2 only x - y (or x + y) is defined: y = 0, x from the remaining block.
    x_lock = torch.atan2(-m[..., 0, 1] * m[..., 2, 0], m[..., 2, 2])
    x = torch.where(singular, x_lock, torch.atan2(m[..., 2, 1], m[..., 1, 1]))
    y = torch.where(singular, torch.zeros_like(cz), torch.atan2(m[..., 0, 2], m[..., 0, 0]))
    return torch.stack([x, z, y], dim=-1)


def rotation_angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of the relative rotation a·bᵀ of two (..., 3, 3) rotation matrices."""
    trace = (a * b).sum(dim=(-2, -1))  # trace(a·bᵀ)
    return torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0))
