"""The shaded mesh seen through the photo's camera, drawn on the CPU with numpy (no OpenGL).

One renderer for every picture of the mesh over the photo: the photo panel's layer, the exported
overlay PNG (and the contact sheet). Faces that face away from the camera are culled, the rest are
z-buffered per pixel centre and filled with a Lambert shade lit from near the camera.
"""

from __future__ import annotations

import numpy as np

from ..mesh_math import face_normals

MESH_COLOUR = np.array([125.0, 175.0, 255.0])
# Person 0 keeps MESH_COLOUR; the others are told apart by hue (the window's person list uses them).
PERSON_COLOURS = [MESH_COLOUR] + [np.array(c, dtype=float) for c in (
    (255.0, 160.0, 90.0), (120.0, 220.0, 140.0), (235.0, 120.0, 200.0), (250.0, 220.0, 100.0),
    (110.0, 220.0, 230.0), (200.0, 150.0, 255.0), (255.0, 120.0, 120.0))]
LIGHT_DIRECTION = np.array([0.3, -0.4, -1.0])  # from the surface towards the light, camera frame


def face_shading(vertices_camera: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(visible face mask, Lambert intensity in [0.25, 1]) per face, lit from near the camera."""
    normals = face_normals(vertices_camera, faces)
    to_camera = -np.asarray(vertices_camera, dtype=np.float64)[faces].mean(1)
    visible = (normals * to_camera).sum(1) > 0
    light = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)
    intensity = 0.25 + 0.75 * np.clip(normals @ light, 0.0, 1.0)
    return visible, intensity


def rasterize_faces(pix: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Z-buffered triangle fill, vectorised in numpy (no per-face Python loop, so an 18k-vertex
    body takes tens of milliseconds, and numpy releases the GIL so the UI thread runs meanwhile).

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


def person_colour(index: int) -> np.ndarray:
    """A colour per person, the first the single-person colour (so one person looks as before)."""
    return PERSON_COLOURS[index % len(PERSON_COLOURS)]


def render_people_layer(results, max_side: int | None = None, colours=None) -> tuple[np.ndarray, float]:
    """The shaded meshes of several MeshResults of one photo in one z-buffer (the nearer person
    hides the farther), each in its own colour (`colours`: a person_colour index per result;
    default: their order), as (h, w, 4) uint8 RGBA over a transparent background at the photo's
    resolution reduced so its longer side is at most `max_side`.
    Returns the layer and its scale (layer pixels per photo pixel)."""
    indices = range(len(results)) if colours is None else colours
    first = results[0]
    h, w = first.image_hw
    scale = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pix, depth, faces, shades, offset = [], [], [], [], 0
    for index, result in zip(indices, results):
        verts = result.vertices_camera.astype(np.float64)
        f = np.asarray(result.faces)
        visible, intensity = face_shading(verts, f)
        visible &= (verts[:, 2] > 1e-3)[f].all(1)
        shown = np.nonzero(visible)[0]
        pix.append(result.project(verts) * scale)
        depth.append(verts[:, 2])
        faces.append(f[shown] + offset)
        shades.append(person_colour(index)[None, :] * intensity[shown, None])
        offset += len(verts)
    index = rasterize_faces(np.concatenate(pix), np.concatenate(depth), np.concatenate(faces), size)
    face_colours = np.concatenate(shades)
    layer = np.zeros((size[1], size[0], 4), np.uint8)
    covered = index >= 0
    layer[covered, :3] = np.clip(face_colours[index[covered]], 0, 255).astype(np.uint8)
    layer[covered, 3] = 255
    return layer, scale


def render_mesh_layer(result, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """One person's shaded mesh alone (see render_people_layer)."""
    return render_people_layer([result], max_side)
