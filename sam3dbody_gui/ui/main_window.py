"""The main window: the panels bound to one AppState, a banner, menus, toolbar, status bar.

The window only moves data between the state, the views and two controllers: the
InferenceController (worker.py) runs every slow thing in background jobs (model load,
inference, the overlay / PCA / normals the views draw), and the ModelController
(model_controller.py) decides what to load. Its parts live beside it:

    panel_grid.py      the four panels and their tools     status_bar.py    the status bar
    actions.py         menus, toolbar, shortcuts (tables)   news_banner.py   the banner's news
    export_actions.py  File ▸ Export (export_jobs.py: the   photo_files.py   open, recent, drop
                       slow ones, on a worker)              box_editing.py   box edits, undo / redo
    load_progress.py   the model load's progress dialog     window_memory.py what it remembers
    box_dialog.py, help_dialogs.py, settings_dialog.py, models_dialog.py, file_dialogs.py: dialogs

Problems arrive as one line in the banner above the panels and in the status bar, never as a
modal box that blocks the window. A problem with the command line (`start`: a missing photo, a
--bbox outside it, a model that does not load) is also printed on stderr, and stays in the
banner until the user closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialog, QMainWindow, QVBoxLayout, QWidget

from ..bundled import SAMPLE_BOX, sample_image_path
from ..errors import UserError
from . import file_dialogs, help_dialogs
from .actions import NEEDS_PHOTO, NEEDS_RESULT, install_actions
from .box_dialog import ask_box
from .box_editing import BoxEditor
from .export_actions import ExportActions
from .load_progress import LoadProgress
from .model_controller import ModelController
from .news_banner import NewsBanner, print_problem
from .panel_grid import PanelGrid
from .people_actions import PeopleActions
from .people_runs import describe_done, plan_run
from .video_mode import VideoMode, is_video
from .photo_files import ask_photo, fill_recent_menu, local_files
from .settings_store import add_recent_file, default_qsettings, load_settings
from .state import AppState, Box, ResultBundle, Settings
from .status_bar import StatusBar
from .window_memory import restore_window, save_window
from .worker import InferenceController, LoadedPipeline

APP_NAME = "SAM 3D Body"
DEBOUNCE_MS = 200


class MainWindow(QMainWindow):
    resultShown = Signal(object)  # ResultBundle, after the views took it
    errorShown = Signal(str)
    modelReady = Signal(object)  # LoadedPipeline

    def __init__(self, qsettings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = qsettings if qsettings is not None else default_qsettings()
        self.state = AppState(load_settings(self.store))
        self.controller = InferenceController(self)
        self.model_controller = ModelController(self.state, self.store, self.controller, self)
        self.load_progress = LoadProgress(self.model_controller, self)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(lambda: self.run_now(force=False))
        self._align_timer = QTimer(self)  # lines the columns up once the window has its size
        self._align_timer.setSingleShot(True)
        self._starting = False  # inside start(): problems are the command line's
        self._startup_load = False  # the model load start() began has not ended yet
        self.hub_token = ""  # a token pasted in the Models dialog: this session only, never saved
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_NAME)
        self.setMinimumSize(900, 600)

        self.panels = PanelGrid(self.state)
        # The views and their tools, by the names the rest of the app and the tests use.
        p = self.panels
        self.photo, self.features, self.mesh, self.latency = p.photo, p.features, p.mesh, p.latency
        self.opacity, self.keypoints_box, self.whole_button = p.opacity, p.keypoints_box, p.whole_button
        self.view_buttons, self.wire_button = p.view_buttons, p.wire_button
        self.banner = NewsBanner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.banner)
        layout.addWidget(self.panels, 1)
        self.setCentralWidget(central)
        # The banner's row is the bottom row's to give: the photo keeps its size (panel_grid.py).
        margins = layout.contentsMargins()
        self.panels.reference = lambda: central.height() - margins.top() - margins.bottom()
        status = self.status_bar = StatusBar(self.state, self)
        self.setStatusBar(status)
        self.model_label = status.model_label
        self._align_timer.timeout.connect(self.panels.align_columns)
        self.box_editor = BoxEditor(self.state, self.photo, self)
        self.people = PeopleActions(self)
        self.video = VideoMode(self)
        self.exports = e = ExportActions(self, self.state, self.store, self.mesh, self.show_error, self._rig)
        self.export_mesh, self.export_json = e.export_mesh, e.export_json  # File ▸ Export, as scripts call it
        self.export_overlay_png, self.export_pca_png, self.export_view_png = \
            e.export_overlay_png, e.export_pca_png, e.export_view_png

        self.actions_by_name = install_actions(self)
        self.act_frame = {"camera": self.act_frame_camera, "upright": self.act_frame_upright}
        self.wire_button.toggled.connect(self.act_wire.setChecked)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._connect()
        restore_window(self, self.store, self.panels.splitters())
        self._show_settings()
        self._update_title()
        self._update_actions()

    def _connect(self) -> None:
        s, c, m, b = self.state, self.controller, self.model_controller, self.box_editor
        b.refused.connect(lambda text: self.show_error(text, kind="box"))
        b.accepted.connect(lambda: self.banner.dismiss_kinds("box"))
        b.changed.connect(self._debounce.start)
        b.historyChanged.connect(self._update_actions)
        self.photo.dragFinished.connect(self._on_drag_finished)
        self.exports.jobs.busyChanged.connect(self.status_bar.show_export_busy)
        self.whole_button.clicked.connect(lambda: self.set_box(None))
        s.settingsChanged.connect(self._show_settings)
        for signal in (s.imageChanged, s.modelChanged):
            signal.connect(self._update_title)
        for signal in (s.imageChanged, s.resultChanged, s.modelChanged):
            signal.connect(self._update_actions)
        c.resultReady.connect(self._on_result)
        c.inferenceFailed.connect(self._on_inference_failed)
        c.busyChanged.connect(s.set_busy)
        m.loadStarted.connect(lambda _text: self.banner.dismiss_kinds("model"))
        m.modelReady.connect(self._on_model_loaded)
        m.modelFailed.connect(self._on_model_failed)
        m.noModel.connect(lambda cancelled: self._show_no_model(cancelled=cancelled))
        m.rerunWanted.connect(self.run_now)

    # ======================================================================== photo ====
    def open_dialog(self) -> None:
        path = ask_photo(self, self.store)
        if path is not None:
            self.open_image(path)

    def open_image(self, path: Path, box: Optional[Box] = None) -> bool:
        """Load a photo (quick, on the UI thread); then run on it. False, with a message, if unreadable.
        A video goes to the video panel."""
        from ..pipeline.image_io import load_image

        path = Path(path)
        if is_video(path):
            return self.video.open(path)
        if self.video.active:
            self.video.close()
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
        from ..pipeline.photo_camera import photo_camera

        self.controller.forget_inference()
        self.state.set_image(image, path, photo_camera(path, image.shape[:2]))
        self.banner.dismiss_kinds("error", "box", "inference", "export")
        if path.resolve() != sample_image_path().resolve():  # the built-in sample is not the user's photo
            add_recent_file(self.store, path)
        self.state.post(f"Opened {path.name} ({image.shape[1]}×{image.shape[0]})")
        if box is not None and not self.state.set_box(box):
            self.show_error(self.state.last_message[0], kind="box")  # e.g. --bbox outside this photo
        self.run_now()
        return True

    def open_sample(self) -> bool:
        return self.open_image(sample_image_path(), box=SAMPLE_BOX)

    def _fill_recent_menu(self) -> None:
        fill_recent_menu(self.recent_menu, self.store, self.open_image)

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:
        if local_files(ev.mimeData()):
            ev.acceptProposedAction()

    def dragMoveEvent(self, ev) -> None:
        ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:
        files = local_files(ev.mimeData())
        if files:
            ev.acceptProposedAction()
            self.open_image(files[0])

    # ========================================================================== box ====
    def set_box(self, box: Optional[Box]) -> bool:
        """Change the selected person's box (a new person when nobody is selected; None: remove
        every box, the whole image is used); re-runs after a short pause."""
        return self.box_editor.set_box(box)

    def detect_people(self) -> bool:
        return self.people.detect()

    def schedule_run(self) -> None:
        """Run the people whose results are out of date, after the usual short pause."""
        self._debounce.start()

    def box_dialog(self) -> None:
        if self.state.image is None:
            self.state.post("Open a photo first", "warning")
            return
        box = ask_box(self, self.state.box, self.state.image_hw)
        if box is not None and self.set_box(box):
            self.run_now(force=False)

    # ==================================================================== inference ====
    def run_now(self, force: bool = True) -> None:
        """Send the photo and its people to the worker (replacing any pending request); after an
        edit (`force` False) only the people whose results are out of date (people_runs.py).
        While a box is being dragged the fast body mode runs, whatever the mode setting."""
        self._debounce.stop()
        s = self.state
        if s.image is None:
            return
        dragging = self.photo.dragging
        mode = "body" if dragging else s.settings.mode
        plan = plan_run(s, mode, dragging, force)
        self.people.status.started(plan)
        self.controller.request_inference(s.image, plan.runs, s.image_id, mode, plan.kept, plan.order, plan.selected,
                                          s.camera, plan.redecodes)
        if not self.controller.has_model and not self.controller.loading:
            self._show_no_model()

    def run_clicked(self) -> None:
        """Box ▸ Run / F5: run now, and say what is missing (a photo, a model)."""
        if self.state.image is None:
            self.state.post("Nothing to run on: open a photo first (Ctrl+O, or File ▸ Open sample photo)", "warning")
            return
        if self.controller.loading:
            self.state.post("The model is still loading: the photo runs as soon as it is ready", "warning")
        elif not self.controller.has_model:  # the request waits for a model; the banner says how to get one
            self.state.post("Cannot run: no model is loaded. Use the demo model, get the model (Model ▸ Models…) "
                            "or choose a model folder", "warning")
        self.run_now()

    def _on_drag_finished(self) -> None:
        """Full mode: the drag ran body mode; now that the box is let go, refine the hands."""
        if self.state.settings.mode != "body" and self.state.image is not None:
            self._debounce.start()

    def _on_result(self, bundle: ResultBundle) -> None:
        if bundle.image_id != self.state.image_id:
            return
        self.people.status.finished()
        self.state.set_result(bundle)
        self.banner.dismiss_kinds("inference")
        self.state.post(describe_done(bundle))
        self.resultShown.emit(bundle)

    def _on_inference_failed(self, message: str, user_error: bool) -> None:
        self.people.status.failed_run(message)
        self.panels.people.refresh()
        self.show_error(message if user_error else f"Unexpected error: {message}", kind="inference")

    # ======================================================================== model ====
    def start(self, model_dir: Optional[Path] = None, backend: Optional[str] = None,
              image: Optional[Path] = None, bbox: Optional[Box] = None) -> None:
        """What `sam3dbody-gui [gui]` does after showing the window: apply the command-line
        choices (for this session), open the photo (or the sample) and load the model. Its
        problems are printed on stderr too, and stay in the banner until closed."""
        self._starting = True
        try:
            self.model_controller.choose_at_start(model_dir, backend)
            if image is not None:
                self.open_image(image, box=bbox)
            else:
                self.open_image(sample_image_path(), box=bbox or SAMPLE_BOX)
        finally:
            self._starting = False
        self._startup_load = True
        self.model_controller.load_model()
        self._startup_load = self.controller.loading

    # What the menus, banners and dialogs choose; the ModelController decides what it means.
    def apply_settings(self, settings: Settings, persist: bool = True) -> None:
        self.model_controller.apply_settings(settings, persist)

    def apply_model_choice(self, chosen) -> None:
        self.model_controller.apply_model_choice(chosen)

    def choose_model_folder(self) -> None:
        start = self.state.settings.model_dir or str(Path.home())
        folder = file_dialogs.existing_folder(self, "Model folder (model.ckpt, model_config.yaml, assets/)", start)
        if folder:
            self.model_controller.use_folder(folder)

    def models_dialog(self) -> None:
        """Model ▸ Models…: what is installed, download, choose a folder or the demo."""
        from .models_dialog import ModelsDialog

        d = ModelsDialog(self.state.settings, self, token=self.hub_token)
        accepted = d.exec() == QDialog.DialogCode.Accepted
        self.hub_token = d.session_token
        if accepted:
            self.apply_model_choice(d.chosen)

    def settings_dialog(self) -> None:
        from .settings_dialog import SettingsDialog

        d = SettingsDialog(self.state.settings, self)
        if d.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(d.result_settings())

    def _rig(self):
        """The loaded model's MHR rig (the rigged exports need it), or None."""
        model = getattr(self.controller.pipeline, "model", None)
        return getattr(model, "mhr", None)

    def _on_model_loaded(self, loaded: LoadedPipeline) -> None:
        self._startup_load = False
        self.banner.dismiss_kinds("model", "demo")
        if loaded.synthetic:
            self.banner.show_demo_model(self.choose_model_folder)
        self.modelReady.emit(loaded)
        if self.state.image is not None:
            self.run_now()

    def _on_model_failed(self, text: str) -> None:
        if self._startup_load:
            self._startup_load = False
            print_problem(text)
        self._show_no_model(problem=text)
        self.state.post(text, "error")
        self.errorShown.emit(text)

    def _show_no_model(self, problem: str = "", cancelled: bool = False) -> None:
        self.banner.show_no_model([("Use demo model (random weights)", self.model_controller.use_demo_model),
                                   ("Get the model…", self.models_dialog),
                                   ("Choose model folder…", self.choose_model_folder)], problem, cancelled)

    # ================================================================ view settings ====
    def set_keypoints(self, on: bool) -> None:
        self.state.update_settings(show_keypoints=bool(on))

    def set_mesh_frame(self, frame: str) -> None:
        self.state.update_settings(mesh_frame=frame)

    def nudge_opacity(self, step: int) -> None:
        self.opacity.setValue(max(0, min(100, self.opacity.value() + step)))

    def _show_settings(self) -> None:
        s = self.state.settings
        if self.act_keypoints.isChecked() != s.show_keypoints:
            self.act_keypoints.blockSignals(True)
            self.act_keypoints.setChecked(s.show_keypoints)
            self.act_keypoints.blockSignals(False)
        self.act_frame[s.mesh_frame].setChecked(True)

    # ============================================================ messages / chrome ====
    def show_error(self, text: str, kind: str = "error") -> None:
        """One line in the banner and the status bar; `kind` says what news it is (news_banner.py).
        Inside `start` it is a start-up problem: printed on stderr, kept until closed."""
        if self._starting:
            kind = "startup"
            print_problem(text)
        self.banner.show_news(kind, text, "error")
        self.state.post(text, "error")
        self.errorShown.emit(text)

    def _update_title(self) -> None:
        # The app's name last: the platform adds the application's display name ("SAM 3D Body",
        # app.py) to a title unless the title already ends with it, so it appears once.
        parts = []
        if self.state.image_path is not None:
            parts.append(self.state.image_path.name)
        m = self.state.model
        if m.synthetic and (m.loaded or m.loading):
            parts.append("DEMO MODEL — RANDOM WEIGHTS")
        elif m.loaded and m.folder is not None:
            parts.append(m.folder.name)
        self.setWindowTitle(" — ".join(parts + [APP_NAME]))

    def _update_actions(self) -> None:
        for names, enabled in ((NEEDS_PHOTO, self.state.image is not None), (NEEDS_RESULT, self.state.bundle is not None)):
            for name in names:
                self.actions_by_name[name].setEnabled(enabled)
        self.whole_button.setEnabled(self.state.image is not None)
        history = self.state.box_history
        self.act_undo_box.setEnabled(history.can_undo)
        self.act_redo_box.setEnabled(history.can_redo)

    # Help ▸ (help_dialogs.py)
    def show_model_help(self) -> None:
        help_dialogs.show_model_help(self)

    def show_keys_help(self) -> None:
        help_dialogs.show_keys_help(self, self.actions_by_name.values())

    def show_about(self) -> None:
        help_dialogs.show_about(self)

    # ================================================================ window events ====
    def save_window_state(self) -> None:
        save_window(self, self.store, self.panels.splitters(), self.state.settings)

    def closeEvent(self, ev: QCloseEvent) -> None:
        self.save_window_state()
        self.load_progress.close()
        self.video.shutdown()
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
