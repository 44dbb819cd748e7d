"""The main window: four panels bound to one AppState, menus, toolbar, status bar.

    ┌ photo + box + overlay ─────────┬ 3-D mesh (OpenGL) ───────────┐
    │                                │                              │
    ├ model input + feature PCA ─────┼ latency ─────────────────────┤
    └────────────────────────────────┴──────────────────────────────┘

The window only moves data between the state, the views and the inference controller; the
controller's worker thread does every slow thing (model load, inference, the overlay / PCA /
normals the views draw). Problems arrive as one line in a banner above the panels and in the
status bar, never as a modal box that blocks the window.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QLabel, QMainWindow, QMessageBox, QProgressDialog, QSlider, QSplitter,
                               QToolBar, QVBoxLayout, QWidget)

from ..errors import UserError
from . import style
from .feature_view import FeatureView
from .latency_view import LatencyView
from .mesh_view import MeshView
from .photo_view import PhotoView
from .settings_store import (add_recent_file, clear_recent_files, default_qsettings, load_settings, recent_files,
                             save_settings)
from .state import AppState, Box, ModelStatus, ResultBundle, Settings
from .widgets import Banner, Panel, tool_button
from .worker import InferenceController, LoadedPipeline

APP_NAME = "SAM 3D Body"
DEBOUNCE_MS = 200
HF_URL = "https://huggingface.co/facebook/sam-3d-body-dinov3"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"
NO_MODEL_TEXT = (
    "<b>No model yet.</b> SAM 3D Body's weights are on Hugging Face, gated: accept the SAM License on "
    f"<a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a>, then <b>Get the model…</b> downloads them "
    "(or choose a folder you already have). The demo model shows how the app works, but its weights are "
    "<b>random</b>."
)


class MainWindow(QMainWindow):
    resultShown = Signal(object)  # ResultBundle, after the views took it
    errorShown = Signal(str)
    modelReady = Signal(object)  # LoadedPipeline

    def __init__(self, qsettings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = qsettings if qsettings is not None else default_qsettings()
        self.state = AppState(load_settings(self.store))
        self.controller = InferenceController(self)
        self._progress: Optional[QProgressDialog] = None
        self._model_error = ""
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_now)
        self._align_timer = QTimer(self)
        self._align_timer.setSingleShot(True)
        self._align_timer.timeout.connect(lambda: self._align_columns(self.top, self.bottom))
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_NAME)
        self.setMinimumSize(900, 600)

        self._build_views()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self._restore_geometry()
        self._sync_from_settings()
        self._update_title()
        self._update_actions()

    # ================================================================== construction ====
    def _build_views(self) -> None:
        s = self.state
        self.photo = PhotoView(s)
        self.features = FeatureView(s)
        self.mesh = MeshView(s)
        self.latency = LatencyView(s)

        self.photo_panel = Panel("Photo", self.photo, "drag to draw the person box")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Mesh overlay opacity ([ and ] change it)")
        self.opacity.setAccessibleName("Overlay opacity")
        self.opacity_label = QLabel("Overlay")
        self.opacity_label.setObjectName("dim")
        self.opacity_label.setBuddy(self.opacity)
        self.keypoints_box = QCheckBox("Keypoints")
        self.keypoints_box.setToolTip("Show the 70 2-D keypoints (K)")
        self.photo_panel.add_tool(self.opacity_label)
        self.photo_panel.add_tool(self.opacity)
        self.photo_panel.add_tool(self.keypoints_box)
        self.whole_button = self.photo_panel.add_tool(tool_button("Whole image", "Remove the box: use the whole photo"))

        self.feature_panel = Panel("Features", self.features, "what the backbone sees")
        self.mesh_panel = Panel("3-D mesh", self.mesh, "drag to orbit")
        self.view_buttons = {}
        for key, text, tip in (("front", "Front", "Front view (1, Ctrl+1)"), ("side", "Side", "Side view (2, Ctrl+2)"),
                               ("three_quarter", "¾", "Three-quarter view (3, Ctrl+3)"),
                               ("reset", "Reset", "Reset the view (R, Ctrl+0)")):
            b = self.mesh_panel.add_tool(tool_button(text, tip))
            b.clicked.connect(lambda _=False, k=key: self.mesh.set_view(k))
            self.view_buttons[key] = b
        self.wire_button = self.mesh_panel.add_tool(tool_button("Wireframe", "Show the triangle edges", checkable=True))
        self.wire_button.toggled.connect(self.mesh.set_wireframe)

        self.latency_panel = Panel("Latency", self.latency, "per stage, last runs")
        clear = self.latency_panel.add_tool(tool_button("Clear", "Clear the latency history"))
        clear.clicked.connect(self.state.clear_history)

        self.top = QSplitter(Qt.Orientation.Horizontal)
        self.top.addWidget(self.photo_panel)
        self.top.addWidget(self.mesh_panel)
        self.bottom = QSplitter(Qt.Orientation.Horizontal)
        self.bottom.addWidget(self.feature_panel)
        self.bottom.addWidget(self.latency_panel)
        self.rows = QSplitter(Qt.Orientation.Vertical)
        self.rows.addWidget(self.top)
        self.rows.addWidget(self.bottom)
        for sp in (self.top, self.bottom, self.rows):
            sp.setChildrenCollapsible(False)
            sp.setHandleWidth(8)
        self.rows.setStretchFactor(0, 3)
        self.rows.setStretchFactor(1, 2)
        self.top.setSizes([1000, 1000])
        self.bottom.setSizes([1000, 1000])
        self.rows.setSizes([600, 380])
        # Keep the two columns aligned: moving one row's divider moves the other's.
        self.top.splitterMoved.connect(lambda *_: self._align_columns(self.top, self.bottom))
        self.bottom.splitterMoved.connect(lambda *_: self._align_columns(self.bottom, self.top))

        self.banner = Banner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.banner)
        layout.addWidget(self.rows, 1)
        self.setCentralWidget(central)

    @staticmethod
    def _align_columns(source: QSplitter, target: QSplitter) -> None:
        if target.sizes() != source.sizes():
            target.blockSignals(True)
            target.setSizes(source.sizes())
            target.blockSignals(False)

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda _=False: slot())
        self.addAction(a)  # shortcuts work even with the menu bar hidden
        return a

    def _build_actions(self) -> None:
        A = self._action
        self.act_open = A("&Open photo…", self.open_dialog, QKeySequence.StandardKey.Open, "Open a photo (or drop one on the window)")
        self.act_sample = A("Open &sample photo", self.open_sample, "Ctrl+Shift+O", "The built-in public-domain photo")
        self.act_export_mesh = A("&Export mesh…", self.export_mesh_dialog, "Ctrl+E", "Save the mesh as OBJ, PLY or GLB")
        self.act_export_overlay = A("Export &overlay PNG…", lambda: self._export_image_dialog("overlay"), "Ctrl+Shift+E")
        self.act_export_pca = A("Export &PCA map PNG…", lambda: self._export_image_dialog("pca"))
        self.act_export_view = A("Export &3-D view PNG…", lambda: self._export_image_dialog("view"))
        self.act_export_json = A("Export parameters &JSON…", self.export_json_dialog, "Ctrl+Shift+J")
        self.act_settings = A("Se&ttings…", self.settings_dialog, "Ctrl+,", "Model folder, backend, precision, device")
        self.act_quit = A("&Quit", self.close, QKeySequence.StandardKey.Quit)

        self.act_run = A("&Run", self.run_now, "F5", "Run the model on the photo and box now")
        self.act_whole = A("Use &whole image", lambda: self.set_box(None), "Ctrl+Shift+A", "Remove the box")
        self.act_box = A("Set box &numerically…", self.box_dialog, "Ctrl+B", "Type the box corners in pixels")
        self.act_reload = A("Re&load model", self.reload_model, "Ctrl+R")
        self.act_demo = A("Use &demo model (random weights)", self.use_demo_model, None,
                          "A synthetic model with random weights: for trying the app, not for results")
        self.act_choose_model = A("Choose model &folder…", self.choose_model_folder)
        self.act_models = A("&Models…", self.models_dialog, None,
                            "What is installed; download the model from Hugging Face; choose a folder or the demo")

        self.act_keypoints = A("Show &keypoints", self._set_keypoints, "K", checkable=True)
        self.act_opacity_up = A("Overlay opacity &up", lambda: self._nudge_opacity(+10), "]")
        self.act_opacity_down = A("Overlay opacity &down", lambda: self._nudge_opacity(-10), "[")
        self.act_front = A("&Front view", lambda: self.mesh.set_view("front"), "Ctrl+1")
        self.act_side = A("&Side view", lambda: self.mesh.set_view("side"), "Ctrl+2")
        self.act_quarter = A("&Three-quarter view", lambda: self.mesh.set_view("three_quarter"), "Ctrl+3")
        self.act_reset_view = A("&Reset 3-D view", self.mesh.reset_view, "Ctrl+0")
        self.act_wire = A("&Wireframe", self.wire_button.setChecked, "Ctrl+Shift+W", checkable=True)
        self.wire_button.toggled.connect(self.act_wire.setChecked)
        self.act_focus_photo = A("Focus &photo (box keys)", lambda: self.photo.setFocus(), "Alt+1")
        self.act_focus_mesh = A("Focus 3-D &mesh (view keys)", lambda: self.mesh.view.setFocus(), "Alt+3")

        self.frame_group = QActionGroup(self)
        self.act_frame = {}
        for key, text in (("camera", "&Camera frame (lines up with the photo)"),
                          ("upright", "&Upright frame (Y up, centred)")):
            a = QAction(text, self, checkable=True)
            a.triggered.connect(lambda _=False, k=key: self.state.update_settings(mesh_frame=k))
            self.frame_group.addAction(a)
            self.act_frame[key] = a

        self.act_get_model = A("&Getting the model…", self.show_model_help)
        self.act_keys = A("&Keyboard and mouse…", self.show_keys_help, QKeySequence.StandardKey.HelpContents)
        self.act_about = A("&About", self.show_about)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_sample)
        m.addSeparator()
        m.addAction(self.act_export_mesh)
        frame = m.addMenu("Mesh export &frame")
        for a in self.act_frame.values():
            frame.addAction(a)
        m.addAction(self.act_export_overlay)
        m.addAction(self.act_export_pca)
        m.addAction(self.act_export_view)
        m.addAction(self.act_export_json)
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Box")
        for a in (self.act_run, self.act_whole, self.act_box, self.act_focus_photo):
            m.addAction(a)
        m = mb.addMenu("&View")
        for a in (self.act_keypoints, self.act_opacity_up, self.act_opacity_down):
            m.addAction(a)
        m.addSeparator()
        for a in (self.act_front, self.act_side, self.act_quarter, self.act_reset_view, self.act_wire,
                  self.act_focus_mesh):
            m.addAction(a)
        m = mb.addMenu("&Model")
        for a in (self.act_models, self.act_settings, self.act_choose_model, self.act_demo, self.act_reload):
            m.addAction(a)
        m = mb.addMenu("&Help")
        for a in (self.act_get_model, self.act_keys, self.act_about):
            m.addAction(a)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.act_open, self.act_sample):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_run)
        tb.addSeparator()
        tb.addAction(self.act_export_mesh)
        tb.addSeparator()
        tb.addAction(self.act_settings)
        self.act_open.setIconText("Open…")
        self.act_sample.setIconText("Sample")
        self.act_run.setIconText("▶ Run (F5)")
        self.act_whole.setIconText("Whole image")
        self.act_export_mesh.setIconText("Export mesh…")
        self.act_settings.setIconText("Settings…")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.box_label = QLabel("")
        self.busy_label = QLabel("")
        self.model_label = QLabel("no model")
        sb.addPermanentWidget(self.box_label)
        sb.addPermanentWidget(self.busy_label)
        sb.addPermanentWidget(self.model_label)

    def _connect(self) -> None:
        s, c = self.state, self.controller
        self.photo.boxEdited.connect(self.set_box)
        self.photo.dragFinished.connect(self._on_drag_finished)
        self.whole_button.clicked.connect(lambda: self.set_box(None))
        self.opacity.valueChanged.connect(lambda v: s.update_settings(overlay_opacity=v / 100.0))
        self.keypoints_box.toggled.connect(self._set_keypoints)
        s.settingsChanged.connect(self._sync_from_settings)
        s.boxChanged.connect(self._update_box_label)
        s.imageChanged.connect(self._update_title)
        s.imageChanged.connect(self._update_actions)
        s.resultChanged.connect(self._update_actions)
        s.modelChanged.connect(self._update_title)
        s.modelChanged.connect(self._update_actions)
        s.message.connect(self._show_message)
        c.resultReady.connect(self._on_result)
        c.inferenceFailed.connect(self._on_inference_failed)
        c.modelLoaded.connect(self._on_model_loaded)
        c.modelFailed.connect(self._on_model_failed)
        c.loadProgress.connect(self._on_load_progress)
        c.busyChanged.connect(self._on_busy)

    # ======================================================================== photo ====
    def open_dialog(self) -> None:
        start = str(self.store.value("paths/open", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", start, IMAGE_FILTER)
        if path:
            self.store.setValue("paths/open", str(Path(path).parent))
            self.open_image(Path(path))

    def open_image(self, path: Path, box: Optional[Box] = None) -> bool:
        """Load a photo (quick, on the UI thread); then run on it. False, with a message, if unreadable."""
        from ..pipeline.image_io import load_image

        path = Path(path)
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            image = load_image(path)
        except UserError as exc:
            self.show_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - never let a decoder bug close the window
            self.show_error(f"{type(exc).__name__}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.controller.forget_inference()
        self.state.set_image(image, path)
        self._dismiss_banner("error", "box", "inference", "export")
        add_recent_file(self.store, path)
        self.state.post(f"Opened {path.name} ({image.shape[1]}×{image.shape[0]})")
        if box is not None and not self.state.set_box(box):
            self.show_error(self.state.last_message[0], kind="box")  # e.g. --bbox outside this photo
        self.run_now()
        return True

    def open_sample(self) -> bool:
        from ..cli import SAMPLE_BOX, sample_image_path

        ok = self.open_image(sample_image_path(), box=SAMPLE_BOX)
        return ok

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = recent_files(self.store)
        for i, path in enumerate(files):
            label = f"&{i + 1} {path.name}" if i < 9 else path.name
            a = self.recent_menu.addAction(label)
            a.setToolTip(str(path))
            a.setStatusTip(str(path))
            a.triggered.connect(lambda _=False, p=path: self.open_image(p))
        if not files:
            a = self.recent_menu.addAction("(none yet)")
            a.setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear list")
        clear.setEnabled(bool(files))
        clear.triggered.connect(lambda: clear_recent_files(self.store))

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dragMoveEvent(self, ev) -> None:
        ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:
        files = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if files:
            ev.acceptProposedAction()
            self.open_image(Path(files[0]))

    # ========================================================================== box ====
    def set_box(self, box: Optional[Box]) -> bool:
        """Change the person box (None: the whole image); re-runs after a short pause."""
        before = self.state.box
        if not self.state.set_box(box):
            self.show_error(self.state.last_message[0], kind="box")
            return False
        self._dismiss_banner("box")
        if self.state.box != before:
            self._debounce.start()
        return True

    def box_dialog(self) -> None:
        if self.state.image is None:
            self.state.post("Open a photo first", "warning")
            return
        h, w = self.state.image_hw
        box = self.state.box or (0.0, 0.0, float(w), float(h))
        d = QDialog(self)
        d.setWindowTitle("Person box")
        form = QFormLayout(d)
        spins = []
        for label, value, limit in (("x1 (left)", box[0], w), ("y1 (top)", box[1], h),
                                    ("x2 (right)", box[2], w), ("y2 (bottom)", box[3], h)):
            sp = QDoubleSpinBox(d)
            sp.setRange(-limit, 2 * limit)
            sp.setDecimals(1)
            sp.setValue(value)
            form.addRow(label, sp)
            spins.append(sp)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, d)
        buttons.accepted.connect(d.accept)
        buttons.rejected.connect(d.reject)
        form.addRow(buttons)
        if d.exec() == QDialog.DialogCode.Accepted:
            if self.set_box(tuple(sp.value() for sp in spins)):
                self.run_now()

    # ==================================================================== inference ====
    def run_now(self) -> None:
        """Send the current photo and box to the worker (replacing any pending request). While
        the box is being dragged the fast body mode runs, whatever the mode setting."""
        self._debounce.stop()
        s = self.state
        if s.image is None:
            return
        mode = "body" if self.photo.dragging else s.settings.mode
        self.controller.request_inference(s.image, s.box, s.image_id, mode=mode)
        if not self.controller.has_model and not self.controller.loading:
            self._show_no_model()

    def _on_drag_finished(self) -> None:
        """Full mode: the drag ran body mode; now that the box is let go, refine the hands."""
        if self.state.settings.mode != "body" and self.state.image is not None:
            self._debounce.start()

    def _on_result(self, bundle: ResultBundle) -> None:
        if bundle.image_id != self.state.image_id:
            return
        self.state.set_result(bundle)
        self._dismiss_banner("inference")
        t = bundle.result.timings_ms.get("total", 0.0)
        self.state.post(f"Done: {t:.0f} ms in the model, {bundle.shown_ms:.0f} ms from request to screen")
        self.resultShown.emit(bundle)

    def _on_inference_failed(self, message: str, user_error: bool) -> None:
        self.show_error(message if user_error else f"Unexpected error: {message}", kind="inference")

    def _on_busy(self, busy: bool) -> None:
        self.state.set_busy(busy)
        self.busy_label.setText("● running" if busy else "")
        self.busy_label.setStyleSheet(f"color: {style.ACCENT};" if busy else "")

    # ======================================================================== model ====
    def start(self, model_dir: Optional[Path] = None, backend: Optional[str] = None,
              image: Optional[Path] = None, bbox: Optional[Box] = None) -> None:
        """What `sam3dbody-gui [gui]` does after showing the window: apply the command-line
        choices (for this session), open the photo (or the sample) and load the model."""
        if backend:
            self.state.update_settings(backend=backend)
        if model_dir is not None:
            self.state.update_settings(model_dir=str(model_dir), use_demo_model=False)
        elif not self.state.settings.model_dir and not self.state.settings.use_demo_model:
            from ..cli import MODEL_ENV

            env = os.environ.get(MODEL_ENV)
            if env:
                self.state.update_settings(model_dir=env)
            else:
                self._use_installed_model()
        if image is not None:
            self.open_image(image, box=bbox)
        else:
            from ..cli import SAMPLE_BOX, sample_image_path

            self.open_image(sample_image_path(), box=bbox or SAMPLE_BOX)
        self.load_model()

    def load_model(self) -> None:
        s = self.state.settings
        if not s.use_demo_model and not s.model_dir:
            self._show_no_model()
            return
        self.controller.load_model(s)
        folder = None if s.use_demo_model else Path(s.model_dir).expanduser()
        self.state.set_model(replace(self.state.model, loading=True, synthetic=s.use_demo_model))
        self._dismiss_banner("model")
        self._show_progress("Loading the demo model (random weights)…" if s.use_demo_model
                            else f"Loading the model from {folder}…")

    def reload_model(self) -> None:
        self.load_model()

    def use_demo_model(self) -> None:
        self.apply_settings(replace(self.state.settings, use_demo_model=True))

    def choose_model_folder(self) -> None:
        start = self.state.settings.model_dir or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Model folder (model.ckpt, model_config.yaml, assets/)", start)
        if folder:
            self.apply_settings(replace(self.state.settings, model_dir=folder, use_demo_model=False))

    def _use_installed_model(self) -> None:
        """First start with nothing chosen: a model already in the Hugging Face cache (e.g. from
        `sam3dbody-gui download` or `hf download`) is used, for this session."""
        from ..hub import find_installed_model

        found = find_installed_model()
        if found is not None:
            self.state.update_settings(model_dir=str(found))
            self.state.post(f"Using the model found in the Hugging Face cache ({found})")

    def models_dialog(self) -> None:
        """Model ▸ Models…: what is installed, download, choose a folder or the demo."""
        from .models_dialog import ModelsDialog

        d = ModelsDialog(self.state.settings, self)
        if d.exec() == QDialog.DialogCode.Accepted:
            self.apply_model_choice(d.chosen)

    def apply_model_choice(self, chosen) -> None:
        """("folder", path) or ("demo", None), as the Models dialog chose."""
        if not chosen:
            return
        kind, folder = chosen
        if kind == "demo":
            self.use_demo_model()
        else:
            self.apply_settings(replace(self.state.settings, model_dir=str(folder), use_demo_model=False))

    def apply_settings(self, settings: Settings, persist: bool = True) -> None:
        reload = settings.model_key() != self.state.settings.model_key() or not self.controller.has_model
        mode_changed = settings.mode != self.state.settings.mode
        self.state.set_settings(settings)
        if persist:
            save_settings(self.store, settings)
        if reload:
            self.load_model()
        elif mode_changed and self.state.image is not None:
            self.run_now()  # the same model runs both modes: show the photo in the new one

    def _show_progress(self, text: str) -> None:
        if self._progress is None:
            dlg = QProgressDialog(text, "Cancel", 0, 0, self)
            dlg.setWindowTitle("Loading model")
            dlg.setWindowModality(Qt.WindowModality.WindowModal)
            dlg.setMinimumDuration(400)
            dlg.setAutoClose(False)
            dlg.setAutoReset(False)
            dlg.canceled.connect(self.cancel_load)
            self._progress = dlg
        self._progress.setLabelText(text)
        self._progress.setValue(0)

    def _close_progress(self) -> None:
        if self._progress is not None:
            dlg, self._progress = self._progress, None
            dlg.canceled.disconnect(self.cancel_load)
            dlg.reset()
            dlg.hide()
            dlg.deleteLater()

    def cancel_load(self) -> None:
        self._close_progress()
        self.controller.cancel_load()
        self.state.set_model(replace(self.state.model, loading=False))
        what = f"still using {self.state.model.short_name}" if self.controller.has_model else "no model loaded"
        self.state.post(f"Model loading cancelled ({what})", "warning")
        if not self.controller.has_model:
            self._show_no_model(cancelled=True)

    def _on_load_progress(self, message: str) -> None:
        if self._progress is not None:
            self._progress.setLabelText(message[:1].upper() + message[1:] + "…")
        self.state.post(message[:1].upper() + message[1:] + "…")

    def _on_model_loaded(self, loaded: LoadedPipeline) -> None:
        self._close_progress()
        info = loaded.pipeline.backbone.info
        self.state.set_model(ModelStatus(
            folder=loaded.model_dir, synthetic=loaded.synthetic, loaded=True, backend_label=loaded.label,
            backend=info.name, precision=info.precision, device=info.device, decoder=loaded.decoder))
        self._dismiss_banner("model", "demo")
        note = " — RANDOM WEIGHTS: the mesh is not a real prediction" if loaded.synthetic else ""
        self.state.post(f"Model loaded: {loaded.model_dir} ({loaded.label}){note}",
                        "warning" if loaded.synthetic else "info")
        if loaded.synthetic:
            self.banner.show_message(
                "<b>Demo model:</b> its weights are <b>random</b>, so the mesh does not fit the person. "
                f"For real results get <a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a> and choose it in Settings.",
                "warning", [("Choose model folder…", self.choose_model_folder)])
            self._banner_kind = "demo"
        self.modelReady.emit(loaded)
        if self.state.image is not None:
            self.run_now()

    def _on_model_failed(self, message: str, user_error: bool) -> None:
        self._close_progress()
        self.state.set_model(replace(self.state.model, loading=False, problem=message))
        text = message if user_error else f"Unexpected error while loading the model: {message}"
        self._show_no_model(problem=text)
        self.state.post(text, "error")
        self.errorShown.emit(text)

    def _show_no_model(self, problem: str = "", cancelled: bool = False) -> None:
        if problem:
            text = (f"<b>The model could not be loaded:</b> {problem}<br>"
                    f"Real weights: <a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a> (gated; SAM License). "
                    "Or try the demo model (random weights).")
            level = "error"
        else:
            text = ("<b>Model loading cancelled.</b> " if cancelled else "") + NO_MODEL_TEXT
            level = "warning"
        self.banner.show_message(text, level, [("Use demo model (random weights)", self.use_demo_model),
                                               ("Get the model…", self.models_dialog),
                                               ("Choose model folder…", self.choose_model_folder)], closable=True)
        self._banner_kind = "model"
        self._model_error = problem

    # ======================================================================= export ====
    def _require_result(self) -> Optional[ResultBundle]:
        b = self.state.bundle
        if b is None:
            self.show_error("Nothing to export yet: open a photo and run the model first (F5)", kind="export")
        return b

    def _default_path(self, suffix: str, what: str) -> str:
        folder = Path(str(self.store.value("paths/export", str(Path.home()))))
        stem = self.state.image_path.stem if self.state.image_path else "sam3dbody"
        return str(folder / f"{stem}_{what}{suffix}")

    def _save_dialog(self, title: str, default: str, filters: str) -> Optional[Path]:
        # The platform dialog asks before overwriting an existing file.
        path, chosen = QFileDialog.getSaveFileName(self, title, default, filters)
        if not path:
            return None
        p = Path(path)
        if not p.suffix:  # no extension typed: take the chosen filter's
            ext = chosen.split("*")[1].split(")")[0].split()[0] if "*" in chosen else ""
            p = p.with_suffix(ext) if ext.startswith(".") else p
        self.store.setValue("paths/export", str(p.parent))
        return p

    def export_mesh_dialog(self) -> None:
        if self._require_result() is None:
            return
        frame = self.state.settings.mesh_frame
        path = self._save_dialog(f"Export mesh ({frame} frame)", self._default_path(".obj", "mesh"),
                                 "Wavefront OBJ (*.obj);;Stanford PLY (*.ply);;glTF binary (*.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: Path, frame: Optional[str] = None) -> bool:
        from ..export.mesh_file import mesh_in_frame, save_mesh

        b = self._require_result()
        if b is None:
            return False
        frame = frame or self.state.settings.mesh_frame
        return self._guard(lambda: save_mesh(Path(path), mesh_in_frame(b.result.vertices_camera, frame), b.result.faces),
                           f"Mesh saved: {path} ({b.result.vertices.shape[0]} vertices, {frame} frame)")

    def export_json_dialog(self) -> None:
        if self._require_result() is None:
            return
        path = self._save_dialog("Export parameters", self._default_path(".json", "params"), "JSON (*.json)")
        if path:
            self.export_json(path)

    def export_json(self, path: Path) -> bool:
        from ..export.atomic import write_bytes_atomic

        b = self._require_result()
        if b is None:
            return False
        data = json.dumps(b.result.to_json_dict(), indent=1).encode("utf-8")
        return self._guard(lambda: write_bytes_atomic(Path(path), data), f"Parameters saved: {path}")

    def _export_image_dialog(self, what: str) -> None:
        if self._require_result() is None:
            return
        titles = {"overlay": "Export overlay", "pca": "Export PCA map", "view": "Export 3-D view"}
        path = self._save_dialog(titles[what], self._default_path(".png", what), "PNG image (*.png)")
        if path:
            {"overlay": self.export_overlay_png, "pca": self.export_pca_png, "view": self.export_view_png}[what](path)

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
        if not self.mesh.view.isValid():
            self.show_error("The 3-D view cannot be exported: OpenGL is not available on this display", kind="export")
            return False
        image = self.mesh.grab_image()
        return self._guard(lambda: _save_qimage_png(image, Path(path)), f"3-D view saved: {path}")

    def _guard(self, fn, success: str) -> bool:
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            fn()
        except UserError as exc:
            self.show_error(str(exc), kind="export")
            return False
        except Exception as exc:  # noqa: BLE001 - show, keep going
            self.show_error(f"{type(exc).__name__}: {exc}", kind="export")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.state.post(success)
        return True

    # ===================================================================== settings ====
    def settings_dialog(self) -> None:
        from .settings_dialog import SettingsDialog

        d = SettingsDialog(self.state.settings, self)
        if d.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(d.result_settings())

    def _sync_from_settings(self) -> None:
        s = self.state.settings
        for w, value in ((self.opacity, round(s.overlay_opacity * 100)),):
            if w.value() != value:
                w.blockSignals(True)
                w.setValue(value)
                w.blockSignals(False)
        for w in (self.keypoints_box, self.act_keypoints):
            if w.isChecked() != s.show_keypoints:
                w.blockSignals(True)
                w.setChecked(s.show_keypoints)
                w.blockSignals(False)
        self.act_frame[s.mesh_frame].setChecked(True)

    def _set_keypoints(self, on: bool) -> None:
        self.state.update_settings(show_keypoints=bool(on))

    def _nudge_opacity(self, step: int) -> None:
        self.opacity.setValue(max(0, min(100, self.opacity.value() + step)))

    # ============================================================ messages / chrome ====
    _banner_kind = ""

    def show_error(self, text: str, kind: str = "error") -> None:
        self.banner.show_message(text, "error")
        self._banner_kind = kind
        self.state.post(text, "error")
        self.errorShown.emit(text)

    def _dismiss_banner(self, *kinds: str) -> None:
        """Hide the banner if it shows news of one of these kinds: "model" (none / failed),
        "demo" (random weights), "inference", "export", "box" (refused box), "error" (photo)."""
        if self.banner.isVisible() and self._banner_kind in kinds:
            self.banner.hide()
            self._banner_kind = ""

    def _show_message(self, text: str, level: str) -> None:
        colour = {"error": style.ERROR, "warning": style.WARNING}.get(level, style.TEXT_DIM)
        self.statusBar().setStyleSheet(f"QStatusBar {{ color: {colour}; }}")
        self.statusBar().showMessage(text, 0 if level == "error" else 8000)

    def _update_box_label(self) -> None:
        b = self.state.box
        if self.state.image is None:
            self.box_label.setText("")
        elif b is None:
            h, w = self.state.image_hw
            self.box_label.setText(f"box: whole image ({w}×{h})")
        else:
            self.box_label.setText(f"box: {b[0]:.0f}, {b[1]:.0f} – {b[2]:.0f}, {b[3]:.0f} "
                                   f"({b[2] - b[0]:.0f}×{b[3] - b[1]:.0f})")

    def _update_title(self) -> None:
        parts = [APP_NAME]
        if self.state.image_path is not None:
            parts.append(self.state.image_path.name)
        m = self.state.model
        if m.synthetic and (m.loaded or m.loading):
            parts.append("DEMO MODEL — RANDOM WEIGHTS")
        elif m.loaded and m.folder is not None:
            parts.append(m.folder.name)
        self.setWindowTitle(" — ".join(parts))
        if m.loaded:
            self.model_label.setText(("⚠ " if m.synthetic else "") + f"{m.short_name} · {m.backend_label}")
            self.model_label.setStyleSheet(f"color: {style.WARNING};" if m.synthetic else "")
        elif m.loading:
            self.model_label.setText("loading model…")
        else:
            self.model_label.setText("no model")
        self._update_box_label()

    def _update_actions(self) -> None:
        has_image = self.state.image is not None
        has_result = self.state.bundle is not None
        for a in (self.act_run, self.act_whole, self.act_box):
            a.setEnabled(has_image)
        for a in (self.act_export_mesh, self.act_export_overlay, self.act_export_pca, self.act_export_view,
                  self.act_export_json):
            a.setEnabled(has_result)
        self.whole_button.setEnabled(has_image)

    # ========================================================================= help ====
    def show_model_help(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Getting the model")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(
            "SAM 3D Body's weights are published by Meta on Hugging Face as "
            f"<a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a>. They are <b>gated</b>: sign in, accept the "
            "SAM License, then download the files (model.ckpt, model_config.yaml, assets/mhr_model.pt) with "
            "Model ▸ Models… or, in a terminal, <code>sam3dbody-gui download</code>: the app then finds them "
            "by itself. A folder you already have is chosen in Model ▸ Models… too."
            "<br><br>The <b>demo model</b> has the same layout with "
            "<b>random weights</b>: it exercises every part of the app, but its mesh is not a prediction.")
        box.exec()

    def show_keys_help(self) -> None:
        QMessageBox.information(self, "Keyboard and mouse", KEYS_HELP)

    def show_about(self) -> None:
        QMessageBox.about(self, "About", "<b>sam3dbody-gui</b><br>Point-and-click 3-D human mesh recovery with "
                          "Meta's SAM 3D Body. Our own PyTorch implementation; Apache-2.0 code, "
                          "model weights under the SAM License.")

    def open_url(self, url: str) -> None:
        QDesktopServices.openUrl(QUrl(url))

    # ===================================================================== geometry ====
    def _restore_geometry(self) -> None:
        geom = self.store.value("window/geometry")
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            self.restoreGeometry(geom)
        else:
            self.resize(1440, 900)
        state = self.store.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        for name, sp in (("rows", self.rows), ("top", self.top), ("bottom", self.bottom)):
            value = self.store.value(f"window/splitter_{name}")
            if isinstance(value, QByteArray) and not value.isEmpty():
                sp.restoreState(value)

    def save_window_state(self) -> None:
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/state", self.saveState())
        for name, sp in (("rows", self.rows), ("top", self.top), ("bottom", self.bottom)):
            self.store.setValue(f"window/splitter_{name}", sp.saveState())
        s = self.state.settings
        self.store.setValue("settings/overlay_opacity", s.overlay_opacity)
        self.store.setValue("settings/show_keypoints", s.show_keypoints)
        self.store.setValue("settings/mesh_frame", s.mesh_frame)
        self.store.sync()

    def closeEvent(self, ev: QCloseEvent) -> None:
        self.save_window_state()
        self._close_progress()
        self.controller.shutdown(timeout_ms=3000)
        super().closeEvent(ev)

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        self._align_timer.start(0)

    def keyPressEvent(self, ev) -> None:
        if ev.key() == Qt.Key.Key_Escape and self.banner.isVisible():
            self.banner.dismiss()
            return
        super().keyPressEvent(ev)


KEYS_HELP = """Photo (click it or Alt+1 to focus):
  drag on empty space: draw the person box
  drag inside the box: move it · drag a handle: resize
  arrows: move the box 1 px (Shift: 10 px)
  Ctrl+arrows: move the right / bottom edge (resize)
  Delete: no box (the whole image) · Esc: cancel a drag

3-D mesh (click it or Alt+3 to focus):
  drag: orbit · Shift/Ctrl-drag or middle-drag: pan
  wheel or right-drag: zoom · arrows: orbit · Shift+arrows: pan · +/-: zoom
  1 / 2 / 3: front / side / three-quarter view · R: reset

Everywhere:
  Ctrl+O open · Ctrl+Shift+O sample · F5 run · Ctrl+B type the box
  Ctrl+E export mesh · Ctrl+Shift+E export overlay · Ctrl+Shift+J export JSON
  K keypoints · [ / ] overlay opacity · Ctrl+1/2/3/0 3-D views · Ctrl+, settings"""


def _save_pil_png(picture, path: Path) -> None:
    from ..export.atomic import atomic_path

    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _save_qimage_png(image, path: Path) -> None:
    from ..export.atomic import atomic_path

    if image.isNull():
        raise UserError("the 3-D view has nothing to save yet")
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise UserError(f"cannot write {path}: Qt could not encode the PNG")

