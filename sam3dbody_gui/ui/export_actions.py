"""File ▸ Export: the window's save dialogs and the files they write.

The quick ones (mesh, parameters JSON, overlay, PCA map, 3-D view PNG: tens of milliseconds)
are written here: each `export_*` saves the current result to a path, says what it did in the
status bar, and returns whether it worked. The slow ones (Export all, contact sheet, turntable,
rigged GLB, BVH) run on a worker (export_jobs.py): their `export_*` returns whether the job
started, and `jobs.finished` / `jobs.failed` tell how it ended. A problem is one line in the
banner, never an exception. The `*_dialog` methods ask for the path first (the platform dialog
asks before overwriting; Export all asks about the files it would replace).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from ..errors import UserError
from . import export_jobs, file_dialogs
from .export_jobs import ExportInput, ExportJobs
from .state import AppState, ResultBundle
from .window_memory import last_folder, remember_folder

MESH_FILTER = "Wavefront OBJ (*.obj);;Stanford PLY (*.ply);;glTF binary (*.glb)"
IMAGE_TITLES = {"overlay": "Export overlay", "pca": "Export PCA map", "view": "Export 3-D view"}
# The worker's exports: (dialog title, default suffix, what, filters, job)
JOB_DIALOGS = {
    "sheet": ("Export contact sheet", ".png", "sheet", "PNG image (*.png)", export_jobs.write_sheet),
    "turntable": ("Export turntable", ".gif", "turntable", "Animated GIF (*.gif);;MP4 video (*.mp4)",
                  export_jobs.write_turntable),
    "rigged": ("Export rigged body", ".glb", "rigged", "Rigged glTF binary (*.glb)", export_jobs.write_rigged),
    "bvh": ("Export skeleton motion", ".bvh", "motion", "BVH motion (*.bvh)", export_jobs.write_bvh),
}


class ExportActions:
    def __init__(self, parent: QWidget, state: AppState, store: QSettings, mesh_view,
                 show_error: Callable[..., None], rig: Callable[[], object] = lambda: None) -> None:
        self.parent, self.state, self.store, self.mesh_view = parent, state, store, mesh_view
        self._show_error = show_error
        self._rig = rig  # the loaded model's MHR rig, or None
        self.jobs = ExportJobs(parent)
        self.jobs.progress.connect(self.state.post)
        self.jobs.finished.connect(self.state.post)
        self.jobs.failed.connect(self._error)

    def _error(self, text: str) -> None:
        self._show_error(text, kind="export")

    # -- asking for a path ---------------------------------------------------------------
    def _require_result(self) -> Optional[ResultBundle]:
        b = self.state.bundle
        if b is None:
            self._error("Nothing to export yet: open a photo and run the model first (F5)")
        return b

    def _stem(self) -> str:
        return self.state.image_path.stem if self.state.image_path else "sam3dbody"

    def _default_path(self, suffix: str, what: str) -> str:
        return str(last_folder(self.store, "export") / f"{self._stem()}_{what}{suffix}")

    def _save_dialog(self, title: str, default: str, filters: str) -> Optional[Path]:
        # The platform dialog asks before overwriting an existing file.
        picked = file_dialogs.save_file(self.parent, title, default, filters)
        if not picked:
            return None
        path, chosen = picked
        p = Path(path)
        if not p.suffix:  # no extension typed: take the chosen filter's
            ext = chosen.split("*")[1].split(")")[0].split()[0] if "*" in chosen else ""
            p = p.with_suffix(ext) if ext.startswith(".") else p
        remember_folder(self.store, "export", p.parent)
        return p

    def export_mesh_dialog(self) -> None:
        if self._require_result() is None:
            return
        frame = self.state.settings.mesh_frame
        path = self._save_dialog(f"Export mesh ({frame} frame)", self._default_path(".obj", "mesh"), MESH_FILTER)
        if path:
            self.export_mesh(path)

    def export_json_dialog(self) -> None:
        if self._require_result() is None:
            return
        path = self._save_dialog("Export parameters", self._default_path(".json", "params"), "JSON (*.json)")
        if path:
            self.export_json(path)

    def export_image_dialog(self, what: str) -> None:
        """`what`: "overlay", "pca" or "view"."""
        if self._require_result() is None:
            return
        path = self._save_dialog(IMAGE_TITLES[what], self._default_path(".png", what), "PNG image (*.png)")
        if path:
            {"overlay": self.export_overlay_png, "pca": self.export_pca_png, "view": self.export_view_png}[what](path)

    def export_job_dialog(self, what: str) -> None:
        """`what`: "sheet", "turntable", "rigged" or "bvh" (JOB_DIALOGS)."""
        if self._require_result() is None:
            return
        title, suffix, name, filters, _job = JOB_DIALOGS[what]
        path = self._save_dialog(title, self._default_path(suffix, name), filters)
        if path:
            self.export_job(what, path)

    def export_all_dialog(self) -> None:
        if self._require_result() is None:
            return
        folder = file_dialogs.existing_folder(self.parent, "Export all into folder", str(last_folder(self.store, "export")))
        if not folder:
            return
        remember_folder(self.store, "export", Path(folder))
        existing = [p.name for p in export_jobs.all_paths(Path(folder), self._stem()).values() if p.exists()]
        if existing and QMessageBox.question(
                self.parent, "Replace files?", f"{', '.join(existing)} already exist in {folder}. Replace them?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel) != QMessageBox.StandardButton.Yes:
            return
        self.export_all(Path(folder))

    # -- the worker's exports ------------------------------------------------------------
    def _job_input(self, b: ResultBundle) -> ExportInput:
        people = list(b.people.values())
        listed = {p.id: p for p in self.state.people}
        sources = tuple("whole image" if p.box is None else
                        (listed[p.person_id].source if p.person_id in listed else "user") for p in people)
        scores = tuple(listed[p.person_id].score if p.person_id in listed else None for p in people)
        return ExportInput(self.state.image, b.result, self.state.image_path, self.state.settings.mesh_frame,
                           self._rig(), b.box is not None, tuple(p.result for p in people), sources, scores)

    def export_all(self, folder: Path, replace: bool = True) -> bool:
        """Mesh (OBJ, the chosen frame), overlay and PCA PNGs and parameters JSON into `folder`,
        named after the photo, written all or none. True if the job started."""
        b = self._require_result()
        if b is None:
            return False
        self.state.post(f"Exporting all into {folder}…")
        return self.jobs.start(export_jobs.write_all, self._job_input(b), Path(folder), self._stem(), replace)

    def export_job(self, what: str, path: Path) -> bool:
        """One of the worker's exports (JOB_DIALOGS) to `path`; True if the job started."""
        b = self._require_result()
        if b is None:
            return False
        self.state.post(f"{JOB_DIALOGS[what][0]} to {path}…")
        return self.jobs.start(JOB_DIALOGS[what][4], self._job_input(b), Path(path))

    # -- writing -------------------------------------------------------------------------
    def export_mesh(self, path: Path, frame: Optional[str] = None) -> bool:
        """The mesh (several people: a scene with an object per person, in the camera frame)."""
        b = self._require_result()
        if b is None:
            return False
        inp = replace(self._job_input(b), frame=frame or self.state.settings.mesh_frame)
        n = len(inp.results)
        what = f"{b.result.vertices.shape[0]} vertices" if n == 1 else f"{n} people, an object each"
        return self._guard(lambda: export_jobs.write_mesh(inp, Path(path)), f"Mesh saved: {path} ({what}, {inp.frame} frame)")

    def export_json(self, path: Path) -> bool:
        b = self._require_result()
        if b is None:
            return False
        inp = self._job_input(b)
        return self._guard(lambda: export_jobs.write_json(inp, Path(path)), f"Parameters saved: {path}")

    def export_overlay_png(self, path: Path) -> bool:
        """The photo with the mesh (at the chosen opacity), keypoints if shown, and the box."""
        from .render import compose_overlay

        b = self._require_result()
        if b is None:
            return False
        s = self.state.settings

        def save():
            picture = compose_overlay(self.state.image, b, s.overlay_opacity, s.show_keypoints)
            _save_pil_png(picture, Path(path))

        return self._guard(save, f"Overlay saved: {path}")

    def export_pca_png(self, path: Path) -> bool:
        from ..export.feature_pca import feature_pca_image

        b = self._require_result()
        if b is None:
            return False
        return self._guard(lambda: _save_pil_png(feature_pca_image(b.result.features), Path(path)),
                           f"PCA map saved: {path}")

    def export_view_png(self, path: Path) -> bool:
        if self._require_result() is None:
            return False
        if not self.mesh_view.view.isValid():
            self._error("The 3-D view cannot be exported: OpenGL is not available on this display")
            return False
        image = self.mesh_view.grab_image()
        return self._guard(lambda: _save_qimage_png(image, Path(path)), f"3-D view saved: {path}")

    def _guard(self, fn, success: str) -> bool:
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            fn()
        except UserError as exc:
            self._error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - show, keep going
            self._error(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.state.post(success)
        return True


def _save_pil_png(picture, path: Path) -> None:
    from ..atomic_file import atomic_path

    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _save_qimage_png(image, path: Path) -> None:
    from ..atomic_file import atomic_path

    if image.isNull():
        raise UserError("the 3-D view has nothing to save yet")
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise UserError(f"cannot write {path}: Qt could not encode the PNG")
