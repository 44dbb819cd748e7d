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
from dataclasses import replace
import numpy as np

from ..export.feature_pca import feature_pca_rgb
from ..export.mesh_render import person_colour, render_people_layer
from ..export.overlay import render_overlay
from ..mesh_math import vertex_normals
from .state import PersonShown, ResultBundle

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
    return render_overlay(image, bundle.results, opacity, show_keypoints, draw_box, mesh_layer=full,
                          colours=[p.colour for p in bundle.people.values()])


def display_people(people) -> tuple:
    """[(colour index, MeshResult)] → one mesh for the 3-D view: every person in the camera frame
    made Z up, centred on the group's bounding box, coloured per vertex. Returns (vertices,
    faces, normals, colours (V, 4), extent, the camera's position in the same frame)."""
    verts, faces, colours, offset = [], [], [], 0
    for colour, result in people:
        v = camera_to_display(result.vertices_camera)
        verts.append(v)
        faces.append(np.asarray(result.faces, dtype=np.int64) + offset)
        rgba = np.append(person_colour(colour) / 255.0, 1.0).astype(np.float32)
        colours.append(np.broadcast_to(rgba, (len(v), 4)))
        offset += len(v)
    verts_all = np.concatenate(verts)
    lo, hi = verts_all.min(0), verts_all.max(0)
    centre = (lo + hi) / 2
    verts_all = np.ascontiguousarray(verts_all - centre, dtype=np.float32)
    faces_all = np.ascontiguousarray(np.concatenate(faces), dtype=np.uint32)
    return (verts_all, faces_all, vertex_normals(verts_all, faces_all),
            np.ascontiguousarray(np.concatenate(colours), dtype=np.float32), (hi - lo).astype(np.float32),
            (-centre).astype(np.float32))


def person_shown(person_id: int, key: tuple, colour: int, result, ran_ms: float) -> PersonShown:
    return PersonShown(person_id, key, result, colour, feature_pca_rgb(result.features), ran_ms)


def make_bundle(request_id: int, people: list[PersonShown], image_id: int, submitted_at: float,
                ran: tuple = (), timings_ms: dict | None = None, selected: int = 0) -> ResultBundle:
    """Every person's mesh in one overlay layer (one z-buffer: the nearer person hides the
    farther) and one 3-D mesh in the camera's frame, so the people stand where the camera saw them."""
    from ..pipeline.person_warnings import person_warnings

    t0 = time.perf_counter()
    results = [p.result for p in people]
    said = person_warnings(results, labels=[str(p.person_id) for p in people])
    people = [replace(p, warnings=tuple(w)) for p, w in zip(people, said)]
    for p, w in zip(people, said):
        p.result.warnings = list(w)  # saved in the JSON, as `infer` saves them
    layer, scale = render_people_layer(results, max_side=MAX_LAYER_SIDE, colours=[p.colour for p in people])
    verts_all, faces_all, normals, colours, extent, camera = display_people([(p.colour, p.result) for p in people])
    return ResultBundle(
        request_id=request_id, people={p.person_id: p for p in people}, image_id=image_id,
        mesh_layer=layer, layer_scale=scale, display_vertices=verts_all, display_normals=normals,
        display_colours=colours, faces=faces_all, extent=extent, camera_position=camera,
        ran=tuple(ran), selected=selected if any(p.person_id == selected for p in people) else people[0].person_id,
        timings_ms=dict(timings_ms or {}), postprocess_ms=(time.perf_counter() - t0) * 1e3, submitted_at=submitted_at,
    )
