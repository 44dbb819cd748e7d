"""Mesh export through trimesh: OBJ (with vertex normals), PLY, GLB or STL by extension, written
atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from ..errors import UserError
from ..mesh_math import vertex_normals
from ..atomic_file import atomic_path

MESH_FORMATS = {".obj": "obj", ".ply": "ply", ".glb": "glb", ".stl": "stl"}
MESH_SUFFIXES = tuple(MESH_FORMATS)
# The one list of mesh frames (CLI choices, Settings, the export dialog).
FRAMES = ("camera", "upright")
FRAME_HELP = {
    "camera": "OpenCV camera frame of the photo (x right, y down, z forward, metres): lines up with the photo",
    "upright": "Y up, feet on y = 0, centred on the body in x and z, facing +z (metres): what 3-D tools expect",
}


def mesh_in_frame(vertices_camera: np.ndarray, frame: str) -> np.ndarray:
    """Camera-frame vertices (N, 3) → the vertices of `frame` (see FRAME_HELP)."""
    if frame == "camera":
        return vertices_camera
    if frame == "upright":
        # A half turn about x (a rotation, so faces keep their winding): y up, z towards the viewer.
        v = np.asarray(vertices_camera, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
        lo, hi = v.min(0), v.max(0)
        return v - np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])
    raise UserError(f"unknown mesh frame {frame!r}: use {' or '.join(FRAMES)}")


def check_mesh_suffix(path: Path) -> str:
    kind = MESH_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise UserError(f"cannot save a mesh as {Path(path).suffix or 'a file without extension'}: "
                        f"unsupported extension; use {', '.join(MESH_SUFFIXES)}")
    return kind


def mesh_bytes(vertices: np.ndarray, faces: np.ndarray, kind: str) -> bytes:
    verts = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, vertex_normals=vertex_normals(verts, faces), process=False)
    options = {"include_normals": True} if kind == "obj" else {}
    data = mesh.export(file_type=kind, **options)
    return data.encode("utf-8") if isinstance(data, str) else data


def save_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    data = mesh_bytes(vertices, faces, check_mesh_suffix(path))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
