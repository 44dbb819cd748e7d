"""Turning a MeshResult into what the views draw. Runs on the worker thread, never the UI's.

  * the shaded mesh as a transparent RGBA layer at (at most `MAX_LAYER_SIDE`) photo resolution
    (export/mesh_render.py, the same renderer as the exported overlay), so the opacity slider
    and the keypoint toggle only re-composite on the UI thread;
  * the PCA colours of the backbone features (export/feature_pca.py);
  * the mesh for the 3-D viewer: centred, upright (pyqtgraph's world is Z up), with vertex
    normals in numpy (pyqtgraph's own loop is slow for 18k vertices).
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..export.feature_pca import feature_pca_rgb
from ..export.mesh_render import render_mesh_layer
from ..export.overlay import render_overlay
from ..mesh_math import vertex_normals
from .state import Box, ResultBundle

MAX_LAYER_SIDE = 1280  # enough for the photo panel; exports re-render at full size


def camera_to_display(points_camera: np.ndarray) -> np.ndarray:
    """OpenCV camera frame (x right, y down, z forward) → viewer world (x right, y into the
    scene, z up). This is the y/z flip that makes the body upright, written for a Z-up world:
    (x, y, z) → (x, z, -y), a proper rotation, so the camera looks along +y at the front."""
    p = np.asarray(points_camera, dtype=np.float32)
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def compose_overlay(image: np.ndarray, bundle: ResultBundle, opacity: float, show_keypoints: bool,
                    draw_box: bool = True):
    """The photo panel's picture at the photo's resolution (a PIL RGB image), for export: the
    bundle's layer when it is full size, else drawn again at full size by the same renderer."""
    full = bundle.mesh_layer if bundle.layer_scale >= 1.0 else None
    return render_overlay(image, bundle.result, opacity, show_keypoints, draw_box, mesh_layer=full)


def make_bundle(request_id: int, result, box: Optional[Box], image_id: int, submitted_at: float) -> ResultBundle:
    t0 = time.perf_counter()
    layer, scale = render_mesh_layer(result, max_side=MAX_LAYER_SIDE)
    pca = feature_pca_rgb(result.features)
    verts = camera_to_display(result.vertices_camera)
    lo, hi = verts.min(0), verts.max(0)
    verts = verts - (lo + hi) / 2
    faces = np.ascontiguousarray(result.faces, dtype=np.uint32)
    normals = vertex_normals(verts, faces)
    return ResultBundle(
        request_id=request_id, result=result, box=box, image_id=image_id,
        mesh_layer=layer, layer_scale=scale, pca_rgb=pca,
        display_vertices=np.ascontiguousarray(verts, dtype=np.float32), display_normals=normals,
        faces=faces, extent=(hi - lo).astype(np.float32),
        postprocess_ms=(time.perf_counter() - t0) * 1e3, submitted_at=submitted_at,
    )
