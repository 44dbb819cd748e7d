"""Mesh export through trimesh: OBJ, PLY or GLB by extension, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from ..errors import UserError
from .atomic import atomic_path

MESH_FORMATS = {".obj": "obj", ".ply": "ply", ".glb": "glb"}
FRAMES = ("camera", "upright")


def mesh_in_frame(vertices_camera: np.ndarray, frame: str) -> np.ndarray:
    """'camera': OpenCV camera frame (lines up with the photo's camera).
    'upright': Y up, Z towards the viewer, centred on the mesh (what 3-D tools expect)."""
    if frame == "camera":
        return vertices_camera
    if frame == "upright":
        v = vertices_camera * np.array([1.0, -1.0, -1.0])
        return v - (v.max(0) + v.min(0)) / 2
    raise UserError(f"unknown mesh frame {frame!r}: use {' or '.join(FRAMES)}")


def save_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    kind = MESH_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"cannot save a mesh as {path.suffix or 'a file without extension'}: use .obj, .ply or .glb")
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64), faces=np.asarray(faces), process=False)
    data = mesh.export(file_type=kind)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
