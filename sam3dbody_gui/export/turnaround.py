"""The body seen from any side, drawn by the same CPU renderer as the overlay (no OpenGL context,
so it works on a headless machine): the views of the contact sheet and the turntable frames.

The body is stood upright (mesh_file's 'upright' frame: Y up, facing +z), turned by `yaw` about
its vertical axis, and seen by a virtual pinhole camera in front of it that frames it whole.
"""

from __future__ import annotations

import math

import numpy as np

from .mesh_file import mesh_in_frame
from .mesh_render import MESH_COLOUR, face_shading, rasterize_faces

BACKGROUND = (28, 30, 36)
FIELD_OF_VIEW_DEG = 30.0
MARGIN = 1.12  # the body fills 1/MARGIN of the frame's height


def render_turned(vertices_camera: np.ndarray, faces: np.ndarray, yaw_deg: float, size: int = 512,
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """(size, size, 3) uint8: the body turned `yaw_deg` (0 = seen from the photo's camera side,
    90 = its left side towards the viewer), framed the same for every yaw."""
    up = mesh_in_frame(np.asarray(vertices_camera, dtype=np.float64), "upright")
    centre = (up.max(0) + up.min(0)) / 2
    radius = float(np.linalg.norm(up - centre, axis=1).max())  # the same framing at every yaw
    a = math.radians(yaw_deg)
    turn = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    body = (up - centre) @ turn.T
    f = size / 2 / math.tan(math.radians(FIELD_OF_VIEW_DEG) / 2)
    distance = radius * MARGIN / math.tan(math.radians(FIELD_OF_VIEW_DEG) / 2) + radius
    # Viewer's camera frame (x right, y down, z forward), looking at the body from +z: a half turn
    # about x (a rotation: faces keep their winding) and a step back.
    cam = body * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 0.0, distance])
    pix = cam[:, :2] / cam[:, 2:3] * f + size / 2
    visible, intensity = face_shading(cam, faces)
    shown = np.nonzero(visible)[0]
    index = rasterize_faces(pix, cam[:, 2], np.asarray(faces)[shown], (size, size))
    picture = np.empty((size, size, 3), np.uint8)
    picture[:] = background
    covered = index >= 0
    picture[covered] = np.clip(MESH_COLOUR[None, :] * intensity[shown[index[covered]], None], 0, 255).astype(np.uint8)
    return picture


def turntable_frames(vertices_camera: np.ndarray, faces: np.ndarray, frames: int = 36, size: int = 384):
    """`frames` pictures of one full turn (the last one a step before the first: it loops)."""
    for i in range(frames):
        yield render_turned(vertices_camera, faces, 360.0 * i / frames, size)
