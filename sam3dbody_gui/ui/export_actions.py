"""File ▸ Export: the window's save dialogs and the files they write (mesh, parameters JSON,
overlay, PCA map, 3-D view PNG).

Each `export_*` saves the current result to a path, says what it did in the status bar, and
returns whether it worked; a problem is one line in the banner, never an exception. The
`*_dialog` methods ask for the path first (the platform dialog asks before overwriting).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from ..errors import UserError
from .state import AppState, ResultBundle
from .window_memory import last_folder, remember_folder

MESH_FILTER = "Wavefront OBJ (*.obj);;Stanford PLY (*.ply);;glTF binary (*.glb)"
IMAGE_TITLES = {"overlay": "Export overlay", "pca": "Export PCA map", "view": "Export 3-D view"}


class ExportActions:
    def __init__(self, parent: QWidget, state: AppState, store: QSettings, mesh_view,
                 show_error: Callable[..., None]) -> None:
        self.parent, self.state, self.store, self.mesh_view = parent, state, store, mesh_view
        self._show_error = show_error

    def _error(self, text: str) -> None:
        self._show_error(text, kind="export")

    # -- asking for a path ---------------------------------------------------------------
    def _require_result(self) -> Optional[ResultBundle]:
        b = self.state.bundle
        if b is None:
            self._error("Nothing to export yet: open a photo and run the model first (F5)")
        return b

    def _default_path(self, suffix: str, what: str) -> str:
        stem = self.state.image_path.stem if self.state.image_path else "sam3dbody"
        return str(last_folder(self.store, "export") / f"{stem}_{what}{suffix}")

    def _save_dialog(self, title: str, default: str, filters: str) -> Optional[Path]:
        # The platform dialog asks before overwriting an existing file.
        path, chosen = QFileDialog.getSaveFileName(self.parent, title, default, filters)
        if not path:
            return None
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

    # -- writing -------------------------------------------------------------------------
    def export_mesh(self, path: Path, frame: Optional[str] = None) -> bool:
        from ..export.mesh_file import mesh_in_frame, save_mesh

        b = self._require_result()
        if b is None:
            return False
        frame = frame or self.state.settings.mesh_frame
        return self._guard(lambda: save_mesh(Path(path), mesh_in_frame(b.result.vertices_camera, frame), b.result.faces),
                           f"Mesh saved: {path} ({b.result.vertices.shape[0]} vertices, {frame} frame)")

    def export_json(self, path: Path) -> bool:
        from ..atomic_file import write_bytes_atomic

        b = self._require_result()
        if b is None:
            return False
        data = json.dumps(b.result.to_json_dict(), indent=1).encode("utf-8")
        return self._guard(lambda: write_bytes_atomic(Path(path), data), f"Parameters saved: {path}")

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
