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

from .state import Box, ResultBundle

MAX_LAYER_SIDE = 1280  # enough for the photo panel; exports re-render at full size


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


def rasterize_faces(pix: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Z-buffered triangle fill, vectorised in numpy (no per-face Python loop, so an 18k-vertex
    body takes tens of milliseconds, and numpy lets the UI thread run meanwhile).

    `pix` (V, 2) pixel positions, `depth` (V,) distances, `faces` (F, 3); `size` (w, h).
    Returns (h, w) int32: at each pixel centre, the index into `faces` of the nearest face
    covering it, or -1.
    """
    w, h = size
    tri = pix[faces].astype(np.float32)
    z = depth[faces].astype(np.float32)
    lo = np.floor(tri.min(1) - 0.5).astype(np.int64)
    hi = np.ceil(tri.max(1) - 0.5).astype(np.int64)
    xmin, ymin = np.maximum(lo[:, 0], 0), np.maximum(lo[:, 1], 0)
    xmax, ymax = np.minimum(hi[:, 0], w - 1), np.minimum(hi[:, 1], h - 1)
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    fid = np.nonzero((nx > 0) & (ny > 0))[0]
    out = np.full(h * w, -1, np.int32)
    if fid.size == 0:
        return out.reshape(h, w)
    # One candidate per pixel of each face's bounding box.
    counts = (nx * ny)[fid]
    owner = np.repeat(np.arange(fid.size), counts)
    local = np.arange(int(counts.sum())) - (np.cumsum(counts) - counts)[owner]
    nxo = nx[fid][owner]
    px = xmin[fid][owner] + local % nxo
    py = ymin[fid][owner] + local // nxo
    t = tri[fid][owner]
    cx, cy = px.astype(np.float32) + 0.5, py.astype(np.float32) + 0.5
    ax, ay, bx, by, qx, qy = (t[:, i, j] for i in range(3) for j in range(2))
    area = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
    w0 = (bx - cx) * (qy - cy) - (by - cy) * (qx - cx)
    w1 = (qx - cx) * (ay - cy) - (qy - cy) * (ax - cx)
    w2 = area - w0 - w1
    sign = np.sign(area)
    sel = np.nonzero((w0 * sign >= 0) & (w1 * sign >= 0) & (w2 * sign >= 0) & (area != 0))[0]
    o = owner[sel]
    zf = z[fid][o]
    zz = (w0[sel] * zf[:, 0] + w1[sel] * zf[:, 1] + w2[sel] * zf[:, 2]) / area[sel]
    pid = py[sel] * w + px[sel]
    order = np.argsort(-zz, kind="stable")  # far to near: the nearest face is written last
    out[pid[order]] = fid[o[order]]
    return out.reshape(h, w)


def render_mesh_layer(result, max_side: int = MAX_LAYER_SIDE) -> tuple[np.ndarray, float]:
    """The shaded mesh alone, as (h, w, 4) uint8 RGBA over a transparent background, seen
    through the result's camera with export/overlay.py's colour and Lambert shade per face."""
    from ..export.overlay import MESH_COLOUR, face_shading

    h, w = result.image_hw
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    verts = result.vertices_camera.astype(np.float64)
    faces = np.asarray(result.faces)
    visible, intensity = face_shading(verts, faces)
    visible &= (verts[:, 2] > 1e-3)[faces].all(1)
    shown = np.nonzero(visible)[0]
    index = rasterize_faces(result.project(verts) * scale, verts[:, 2], faces[shown], size)
    layer = np.zeros((size[1], size[0], 4), np.uint8)
    covered = index >= 0
    face = shown[index[covered]]
    layer[covered, :3] = np.clip(MESH_COLOUR[None, :] * intensity[face, None], 0, 255).astype(np.uint8)
    layer[covered, 3] = 255
    return layer, scale


def compose_overlay(image: np.ndarray, bundle: ResultBundle, opacity: float, show_keypoints: bool,
                    draw_box: bool = True):
    """The photo with the mesh layer, keypoints and box, at the photo's resolution, as the
    photo panel shows it (and export/overlay.py draws it): a PIL RGB image."""
    from PIL import Image, ImageDraw

    from ..export.overlay import KEYPOINT_COLOUR

    photo = Image.fromarray(image).convert("RGBA")
    mesh = bundle.mesh_layer
    if bundle.layer_scale < 1.0:  # the panel's copy is reduced: draw the mesh again at full size
        mesh, _ = render_mesh_layer(bundle.result, max_side=max(image.shape[:2]))
    layer = Image.fromarray(mesh, "RGBA")
    alpha = np.asarray(layer.getchannel("A"), dtype=np.float32) * float(np.clip(opacity, 0.0, 1.0))
    layer.putalpha(Image.fromarray(alpha.round().astype(np.uint8), "L"))
    out = Image.alpha_composite(photo, layer)
    draw = ImageDraw.Draw(out)
    if draw_box:
        x1, y1, x2, y2 = bundle.result.crop.bbox_xyxy
        draw.rectangle([x1, y1, x2, y2], outline=(255, 196, 61, 255), width=max(1, photo.size[0] // 400))
    if show_keypoints:
        r = max(2.0, photo.size[0] / 300)
        for x, y in bundle.result.keypoints_2d:
            if np.isfinite(x) and np.isfinite(y):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=KEYPOINT_COLOUR + (255,))
    return out.convert("RGB")


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
