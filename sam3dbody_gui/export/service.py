"""One place that turns a photo's results into the files a user asked for — the CLI's `infer`
and `demo`, and the window's Export all — checked before any work and published all or nothing
(output_set.py).

One person: a mesh file (OBJ/PLY/GLB/STL) and today's params.json. Several: the mesh file is a
scene with a named object per person (scene.py), `out_dir` gets one file per person, and the
JSON lists the people. The overlay shows everyone in one z-buffer; the PCA image puts each
person's map side by side; the contact sheet has a row per person; the turntable turns the group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from ..errors import UserError
from ..pipeline.result import MeshResult
from .mesh_file import MESH_FORMATS, check_mesh_suffix, mesh_bytes, mesh_in_frame
from .output_set import Output, Writer
from .result_checks import json_ready, require_finite
from .scene import SCENE_FORMATS, people_json, people_in_frame, per_person_paths, scene_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TURNTABLE_SUFFIXES = (".gif", ".mp4")


@dataclass
class OutputRequest:
    """What to write (None: not that one)."""

    mesh: Optional[Path] = None  # one person: a mesh; several: a scene (.glb, .obj, .ply)
    out_dir: Optional[Path] = None  # one mesh file per person (person_0.obj, …)
    overlay: Optional[Path] = None
    pca: Optional[Path] = None
    json: Optional[Path] = None
    sheet: Optional[Path] = None
    turntable: Optional[Path] = None
    frame: str = "camera"
    rigged: bool = False  # the mesh file is a skinned glTF (.glb) of the MHR skeleton, posed
    bvh: Optional[Path] = None  # the first person's skeleton and pose

    def any(self) -> bool:
        return any(p is not None for p in (self.mesh, self.out_dir, self.overlay, self.pca, self.json,
                                           self.sheet, self.turntable, self.bvh))

    @property
    def per_person_suffix(self) -> str:
        suffix = self.mesh.suffix.lower() if self.mesh is not None else ".obj"
        return suffix if suffix in MESH_FORMATS else ".obj"

    def check_suffixes(self, people: Optional[int] = None) -> None:
        """Fail on an extension nothing can write, before any work. `people`: how many (None:
        not known yet, e.g. before the detector ran)."""
        if self.rigged and (self.mesh is None or self.mesh.suffix.lower() != ".glb"):
            suffix = self.mesh.suffix if self.mesh is not None else ""
            raise UserError(f"a rigged body is saved as .glb (a skinned glTF), not {suffix or 'without a file'}")
        if self.bvh is not None and self.bvh.suffix.lower() != ".bvh":
            raise UserError(f"BVH {self.bvh}: unsupported extension; use .bvh")
        if self.mesh is not None:
            check_mesh_suffix(self.mesh)
            if people is not None and people > 1 and self.mesh.suffix.lower() not in SCENE_FORMATS:
                raise UserError(f"{people} people cannot go in one {self.mesh.suffix} file: use "
                                f"{', '.join(SCENE_FORMATS)} for a scene, or --out-dir for a file each")
        for path, suffixes, what in ((self.overlay, IMAGE_SUFFIXES, "overlay"), (self.pca, IMAGE_SUFFIXES, "PCA image"),
                                     (self.sheet, IMAGE_SUFFIXES, "contact sheet"), (self.json, (".json",), "JSON"),
                                     (self.turntable, TURNTABLE_SUFFIXES, "turntable")):
            if path is not None and path.suffix.lower() not in suffixes:
                raise UserError(f"{what} {path}: unsupported extension; use {', '.join(suffixes)}")
        if self.out_dir is not None and not Path(self.out_dir).is_dir():
            raise UserError(f"--out-dir {self.out_dir} is not a folder")

    def outputs(self, people: Optional[int] = None) -> list[Output]:
        """The files, for output_set.check_outputs / publish (per-person files once `people` is known)."""
        named = [(self.mesh, "mesh"), (self.overlay, "overlay"), (self.pca, "PCA image"), (self.json, "JSON"),
                 (self.sheet, "contact sheet"), (self.turntable, "turntable"), (self.bvh, "BVH")]
        found = [Output(Path(p), what) for p, what in named if p is not None]
        if self.out_dir is not None and people is not None:
            found += [Output(p, f"mesh of person {i}")
                      for i, p in enumerate(per_person_paths(self.out_dir, self.per_person_suffix, people))]
        return found


def _image_writer(picture: Image.Image, path: Path) -> Writer:
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else \
        path.suffix.lstrip(".").upper().replace("TIF", "TIFF").replace("JPG", "JPEG")
    return lambda tmp: picture.convert("RGB" if fmt == "JPEG" else picture.mode).save(tmp, format=fmt)


def plan_writers(request: OutputRequest, display_image: np.ndarray, results: Sequence[MeshResult],
                 display_results: Sequence[MeshResult], sources: Sequence[str], scores: Sequence[Optional[float]],
                 progress: Callable[[str], None] = lambda m: None,
                 rig=None) -> tuple[list[tuple[Output, Writer]], list[str]]:
    """(writer per output, one report line each). `display_results`: the results in the pixels of
    `display_image` (a large photo's reduced copy), for the pictures. `rig`: the model's MHR rig
    (a rigged GLB and BVH need its skeleton and skin)."""
    from .contact_sheet import contact_sheet
    from .feature_pca import feature_pca_image
    from .overlay import render_overlay
    from .turntable_file import save_turntable

    for result in results:
        require_finite(result)
    n = len(results)
    by_what = {o.what: o for o in request.outputs(n)}
    writers, report = [], []
    frame = request.frame
    rigged = None
    if request.rigged or request.bvh is not None:
        if rig is None:
            raise UserError("a rigged export needs the model's MHR rig")
        from ..model.rig_fit import rig_skeleton
        from .rigged_person import rigged_people

        progress("reading the rig's skeleton and skin")
        skeleton = rig_skeleton(rig)
        rigged = rigged_people(list(results), skeleton, rig)
    if request.mesh is not None and request.rigged:
        from .rigged_gltf import rigged_glb_bytes

        data = rigged_glb_bytes(rigged)
        writers.append((by_what["mesh"], lambda tmp, data=data: tmp.write_bytes(data)))
        report.append(f"rigged body: {request.mesh} ({n} skin{'s' if n != 1 else ''}, "
                      f"{len(skeleton.parents)} joints; skeleton {skeleton.source})")
    elif request.mesh is not None:
        if n == 1:
            data = mesh_bytes(mesh_in_frame(results[0].vertices_camera, frame), results[0].faces,
                              check_mesh_suffix(request.mesh))
            what = f"{results[0].vertices.shape[0]} vertices, {results[0].faces.shape[0]} faces"
        else:
            data = scene_bytes(people_in_frame([r.vertices_camera for r in results], frame),
                               [r.faces for r in results], request.mesh.suffix)
            what = f"{n} people as person_0 … person_{n - 1}"
        writers.append((by_what["mesh"], lambda tmp, data=data: tmp.write_bytes(data)))
        report.append(f"mesh: {request.mesh} ({what}, {frame} frame)")
    if request.out_dir is not None:
        kind = check_mesh_suffix(Path(f"x{request.per_person_suffix}"))
        placed = people_in_frame([r.vertices_camera for r in results], frame)
        for i, (verts, result) in enumerate(zip(placed, results)):
            data = mesh_bytes(verts, result.faces, kind)
            writers.append((by_what[f"mesh of person {i}"], lambda tmp, data=data: tmp.write_bytes(data)))
        report.append(f"meshes: {n} file{'s' if n != 1 else ''} in {request.out_dir} ({frame} frame)")
    if request.overlay is not None:
        overlay = render_overlay(display_image, list(display_results))
        writers.append((by_what["overlay"], _image_writer(overlay, request.overlay)))
        full_w = results[0].image_hw[1]
        note = (f" ({overlay.width}x{overlay.height}: photo reduced {full_w // overlay.width}x for display)"
                if overlay.width != full_w else "")
        report.append(f"overlay: {request.overlay}{note}")
    if request.pca is not None:
        tiles = [feature_pca_image(r.features) for r in results]
        strip = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        for i, tile in enumerate(tiles):
            strip.paste(tile.convert("RGB"), (sum(t.width for t in tiles[:i]), 0))
        writers.append((by_what["PCA image"], _image_writer(strip if n > 1 else tiles[0], request.pca)))
        report.append(f"PCA map: {request.pca}")
    if request.sheet is not None:
        progress("drawing the contact sheet")
        rows = [contact_sheet(display_image, r) for r in display_results]
        sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
        for i, row in enumerate(rows):
            sheet.paste(row, (0, i * rows[0].height))
        writers.append((by_what["contact sheet"], _image_writer(sheet, request.sheet)))
        report.append(f"contact sheet: {request.sheet}")
    if request.turntable is not None:
        progress("drawing the turntable")
        verts = people_in_frame([r.vertices_camera for r in results], "camera")
        offsets = np.cumsum([0] + [len(v) for v in verts])[:-1]
        group_v = np.concatenate(verts)
        group_f = np.concatenate([np.asarray(r.faces) + o for r, o in zip(results, offsets)])
        writers.append((by_what["turntable"], lambda tmp: save_turntable(tmp, group_v, group_f)))
        report.append(f"turntable: {request.turntable}")
    if request.bvh is not None:
        from .bvh import bvh_text

        text_bvh = bvh_text(skeleton, [rigged[0].world]).encode("utf-8")
        writers.append((by_what["BVH"], lambda tmp, data=text_bvh: tmp.write_bytes(data)))
        report.append(f"BVH: {request.bvh} ({len(skeleton.parents)} joints, 1 frame"
                      f"{'; the first of ' + str(n) + ' people' if n > 1 else ''})")
    if request.json is not None:
        data = results[0].to_json_dict() if n == 1 else people_json(results, sources, scores)
        text = json.dumps(json_ready(data), indent=1, allow_nan=False).encode("utf-8")
        writers.append((by_what["JSON"], lambda tmp: tmp.write_bytes(text)))
        report.append(f"parameters: {request.json}")
    return writers, report
