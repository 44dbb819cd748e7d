"""The mesh drawn over the photo, shaded, plus the 2-D keypoints (a CPU painter's renderer).

Faces are culled when they face away from the camera, sorted far to near and filled with a
Lambert shade; the layer is blended onto the photo with the chosen opacity.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..pipeline.result import MeshResult

MESH_COLOUR = np.array([125.0, 175.0, 255.0])
KEYPOINT_COLOUR = (255, 70, 40)
LIGHT_DIRECTION = np.array([0.3, -0.4, -1.0])  # from the surface towards the light, camera frame


def face_shading(vertices_camera: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(visible face mask, Lambert intensity in [0.25, 1]) per face, lit from near the camera."""
    tri = vertices_camera[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    to_camera = -tri.mean(1)
    visible = (normals * to_camera).sum(1) > 0
    light = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)
    intensity = 0.25 + 0.75 * np.clip(normals @ light, 0.0, 1.0)
    return visible, intensity


def render_overlay(
    image: np.ndarray, result: MeshResult, opacity: float = 0.7, show_keypoints: bool = True, draw_box: bool = True
) -> Image.Image:
    """(H, W, 3) uint8 photo → RGB overlay image at the photo's resolution."""
    photo = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    verts = result.vertices_camera.astype(np.float64)
    faces = result.faces
    in_front = verts[:, 2] > 1e-3
    pix = result.project(verts)
    visible, intensity = face_shading(verts, faces)
    visible &= in_front[faces].all(1)
    order = np.argsort(-verts[faces].mean(1)[:, 2])  # far to near
    alpha = int(round(255 * float(np.clip(opacity, 0.0, 1.0))))
    for f in order[visible[order]]:
        colour = tuple(int(c) for c in MESH_COLOUR * intensity[f]) + (alpha,)
        draw.polygon([tuple(p) for p in pix[faces[f]]], fill=colour)
    if draw_box:
        x1, y1, x2, y2 = result.crop.bbox_xyxy
        draw.rectangle([x1, y1, x2, y2], outline=(255, 210, 0, 255), width=max(1, photo.size[0] // 400))
    if show_keypoints:
        r = max(2.0, photo.size[0] / 300)
        for x, y in result.keypoints_2d:
            if np.isfinite(x) and np.isfinite(y):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=KEYPOINT_COLOUR + (255,))
    return Image.alpha_composite(photo, layer).convert("RGB")
