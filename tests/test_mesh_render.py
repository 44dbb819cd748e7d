"""The one CPU mesh renderer (export/mesh_render.py) against a brute-force per-pixel oracle."""

from __future__ import annotations

import numpy as np

from sam3dbody_gui.export.mesh_render import face_shading, rasterize_faces
from sam3dbody_gui.mesh_math import face_normals, vertex_normals


def _inside(tri: np.ndarray, x: float, y: float) -> bool:
    """Same side of all three edges (float64, one pixel at a time)."""
    signs = []
    for i in range(3):
        (ax, ay), (bx, by) = tri[i], tri[(i + 1) % 3]
        signs.append((bx - ax) * (y - ay) - (by - ay) * (x - ax))
    return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)


def test_rasterizer_covers_exactly_the_pixel_centres_inside_each_triangle_and_keeps_the_nearest():
    rng = np.random.default_rng(0)
    w, h = 40, 30
    pix = rng.uniform([-5, -5], [w + 5, h + 5], size=(12, 2))  # some vertices outside the image
    depth = rng.uniform(1.0, 5.0, size=12)
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [0, 4, 8]])
    got = rasterize_faces(pix, depth, faces, (w, h))
    want = np.full((h, w), -1)
    best = np.full((h, w), np.inf)
    for f, (a, b, c) in enumerate(faces):
        tri = pix[[a, b, c]]
        m = np.array([[tri[1, 0] - tri[0, 0], tri[2, 0] - tri[0, 0]], [tri[1, 1] - tri[0, 1], tri[2, 1] - tri[0, 1]]])
        for y in range(h):
            for x in range(w):
                if not _inside(tri, x + 0.5, y + 0.5):
                    continue
                u, v = np.linalg.solve(m, [x + 0.5 - tri[0, 0], y + 0.5 - tri[0, 1]])
                z = depth[a] * (1 - u - v) + depth[b] * u + depth[c] * v
                if z < best[y, x]:
                    best[y, x], want[y, x] = z, f
    agree = got == want
    # Pixel centres within float32 rounding of an edge may go either way; nothing else may.
    assert agree.mean() > 0.995, f"{(~agree).sum()} of {agree.size} pixels differ"
    assert (got >= 0).sum() > 100


def test_shading_culls_faces_turned_away_and_normals_point_outward():
    # A triangle in front of the camera (z = 2), wound so its normal points back at the camera.
    verts = np.array([[0.0, 0.0, 2.0], [0.0, 1.0, 2.0], [1.0, 0.0, 2.0]])
    faces = np.array([[0, 1, 2], [0, 2, 1]])
    visible, intensity = face_shading(verts, faces)
    assert visible.tolist() == [True, False]
    assert np.allclose(face_normals(verts, faces)[0], [0, 0, -1])
    assert 0.25 <= intensity.min() and intensity.max() <= 1.0
    # A closed box: every vertex normal points away from the centre.
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    n = vertex_normals(corners, tris)
    assert ((n * (corners - 0.5)).sum(1) > 0).all()
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-6)


def test_several_people_share_one_z_buffer_the_nearer_hides_the_farther():
    from types import SimpleNamespace

    from sam3dbody_gui.export.mesh_render import person_colour, render_people_layer

    def person(z: float, x0: float):
        # A square facing the camera at depth z (two triangles wound towards it).
        v = np.array([[x0, -0.3, z], [x0, 0.3, z], [x0 + 0.6, 0.3, z], [x0 + 0.6, -0.3, z]])
        f = np.array([[0, 1, 2], [0, 2, 3]])
        return SimpleNamespace(vertices_camera=v, faces=f, image_hw=(100, 100),
                               project=lambda p: p[:, :2] / p[:, 2:3] * 100 + 50)

    near, far = person(2.0, -0.4), person(4.0, 0.0)  # near: x 30-60 px; far, behind it: x 50-65 px
    layer, scale = render_people_layer([near, far])  # far drawn last: only depth can put near on top
    assert scale == 1.0 and layer.shape == (100, 100, 4)
    colour_of = lambda i: np.clip(person_colour(i), 0, 255)  # noqa: E731
    centre = layer[50, 55, :3].astype(float)
    # Where both cover a pixel, the near one (index 0) shows, shaded in its own hue.
    assert np.argmax(centre) == np.argmax(colour_of(0)) and layer[50, 55, 3] == 255
    right = layer[50, 63, :3].astype(float)  # only the far one reaches here
    assert np.argmax(right) == np.argmax(colour_of(1))
    assert layer[5, 5, 3] == 0  # background stays transparent
