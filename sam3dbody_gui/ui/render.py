"""Turning a MeshResult into what the views draw. Runs on the worker thread, never the UI's.

  * the shaded mesh as a transparent RGBA layer at (at most `MAX_LAYER_SIDE`) photo resolution,
    so the opacity slider and the keypoint toggle only re-composite on the UI thread;
  * the PCA colours of the backbone features (export/feature_pca.py);
  * the mesh for the 3-D viewer: centred, upright (pyqtgraph's world is Z up), with vertex
    normals computed here in numpy (pyqtgraph's own loop is slow for 18k vertices).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from .state import Box, ResultBundle

MAX_LAYER_SIDE = 2048


def camera_to_display(points_camera: np.ndarray) -> np.ndarray:
    """OpenCV camera frame (x right, y down, z forward) → viewer world (x right, y into the
    scene, z up). This is the y/z flip that makes the body upright, written for a Z-up world:
    (x, y, z) → (x, z, -y), a proper rotation, so the camera looks along +y at the front."""
    p = np.asarray(points_camera, dtype=np.float32)
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for counter-clockwise faces)."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


def render_mesh_layer(result, max_side: int = MAX_LAYER_SIDE) -> tuple[np.ndarray, float]:
    """The shaded mesh alone, as (h, w, 4) uint8 RGBA over a transparent background, drawn
    with the result's camera like export/overlay.py does (same culling, order and shade)."""
    from ..export.overlay import MESH_COLOUR, face_shading

    h, w = result.image_hw
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    verts = result.vertices_camera.astype(np.float64)
    faces = result.faces
    visible, intensity = face_shading(verts, faces)
    visible &= (verts[:, 2] > 1e-3)[faces].all(1)
    pix = result.project(verts) * scale
    order = np.argsort(-verts[faces].mean(1)[:, 2])
    order = order[visible[order]]
    colours = np.clip(MESH_COLOUR[None, :] * intensity[order, None], 0, 255).astype(np.uint8)
    polys = pix[faces[order]]  # (n, 3, 2)
    for poly, colour in zip(polys.tolist(), colours.tolist()):
        draw.polygon([tuple(p) for p in poly], fill=(colour[0], colour[1], colour[2], 255))
    return np.asarray(layer), scale


def make_bundle(request_id: int, result, box: Optional[Box], image_id: int, submitted_at: float) -> ResultBundle:
    from ..export.feature_pca import feature_pca_rgb

    t0 = time.perf_counter()
    layer, scale = render_mesh_layer(result)
    pca = feature_pca_rgb(result.features)
    verts = camera_to_display(result.vertices_camera)
    lo, hi = verts.min(0), verts.max(0)
    verts = verts - (lo + hi) / 2
    faces = np.ascontiguousarray(result.faces, dtype=np.uint32)
    normals = vertex_normals(verts, faces.astype(np.int64))
    return ResultBundle(
        request_id=request_id, result=result, box=box, image_id=image_id,
        mesh_layer=layer, layer_scale=scale, pca_rgb=pca,
        display_vertices=np.ascontiguousarray(verts, dtype=np.float32), display_normals=normals,
        faces=faces, extent=(hi - lo).astype(np.float32),
        postprocess_ms=(time.perf_counter() - t0) * 1e3, submitted_at=submitted_at,
    )
