"""The video panel: a clip (or the live camera) with its people's meshes, the timeline, the pass
(Process / Cancel, progress and rate), the id list, the smoothing and the exports. The window
places it and gives it its loaded pipeline and detector:

    panel = VideoPanel(lambda: controller.pipeline, lambda: detector_or_none)
    panel.frameShown.connect(...)   # (frame index, image (H, W, 3) uint8, [(track id, MeshResult)])
    panel.problem.connect(banner)   # one line: a file that cannot be read, a pass that failed
    panel.open_clip(path) -> bool;  panel.close_clip()

Thin: the clip and its work are ClipSession's (clip_session.py), the picture FrameView's, the
exports go through the command line's plan on a worker (video_exports.py); the live camera is
live_camera.py's. Keys (Space, Left/Right, Home/End) drive the timeline wherever the panel has
focus.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..errors import UserError
from .clip_session import ClipSession
from .export_jobs import ExportJobs
from .frame_view import FrameView
from .video_controls import VideoControls
from .video_exports import KINDS, ClipExport, default_name, write_clip_export
from .video_timeline import VideoTimeline

# The theme's primary button keeps its blue when disabled; here Process is often disabled.
PANEL_STYLE = ("QPushButton#primary:disabled { background: #263041; border-color: #313845; color: #5d6573; }"
               "QPushButton:checked { background: #33415a; border-color: #4a6390; }")
VIDEO_FILTERS = "Videos (*.mp4 *.mov *.mkv *.webm *.avi *.m4v);;All files (*)"


class VideoPanel(QWidget):
    frameShown = Signal(object)  # (frame index, image, [(track id, MeshResult)])
    problem = Signal(str)
    message = Signal(str)  # what an export wrote (one line, for the status bar)
    processingChanged = Signal(bool)

    def __init__(self, pipeline_provider: Callable[[], object], detector_provider: Callable[[], object],
                 parent: QWidget | None = None, work_dir: Optional[Path] = None) -> None:
        super().__init__(parent)
        self.pipeline_provider, self.detector_provider = pipeline_provider, detector_provider
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet(PANEL_STYLE)
        self.session = ClipSession(self)
        self.session.work_dir = work_dir
        self.exports = ExportJobs(self)
        self.live = None  # live_camera.LiveCamera once started
        self.follow = True  # show each frame as the pass computes it, until the user moves
        self.view = FrameView()
        self.timeline = VideoTimeline()
        c = self.controls = VideoControls(self.session.smoothing)
        self.open_button, self.camera_button = c.open_button, c.camera_button
        self.detect_radio, self.boxes_radio, self.every, self.clear_boxes = (c.detect_radio, c.boxes_radio, c.every,
                                                                            c.clear_boxes)
        self.process_button, self.cancel_button, self.progress, self.rate = (c.process_button, c.cancel_button,
                                                                            c.progress, c.rate)
        self.ids, self.smooth, self.smooth_label, self.keypoints = c.ids, c.smooth, c.smooth_label, c.keypoints
        self.export_buttons = c.export_buttons
        body = QHBoxLayout()
        body.setSpacing(6)
        body.addWidget(self.view, 1)
        body.addWidget(c)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(body, 1)
        layout.addWidget(self.timeline)
        self.status = QLabel(" ")
        self.status.setObjectName("dim")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._wire()
        self._update_enabled()

    def _wire(self) -> None:
        s = self.session
        self.open_button.clicked.connect(self.ask_open)
        self.camera_button.clicked.connect(self._on_camera_button)
        self.timeline.frameRequested.connect(self._on_requested)
        self.view.boxesChanged.connect(lambda boxes: self._options_changed())
        self.detect_radio.toggled.connect(lambda _: self._options_changed())
        self.every.valueChanged.connect(lambda _: self._options_changed())
        self.clear_boxes.clicked.connect(lambda: self.view.set_boxes([]))
        self.process_button.clicked.connect(self.process)
        self.cancel_button.clicked.connect(self.cancel)
        self.smooth.valueChanged.connect(self._on_smooth)
        self.keypoints.toggled.connect(self.view.set_keypoints)
        self.ids.keepToggled.connect(lambda pid, on: self._edit_ids("with_kept", pid, on))
        self.ids.mergeRequested.connect(lambda a, b: self._edit_ids("merged", a, b))
        self.ids.splitRequested.connect(lambda pid: self._edit_ids("split", pid))
        self.ids.resetRequested.connect(self._reset_ids)
        s.frameReady.connect(self._on_frame_ready)
        s.frameProcessed.connect(self.timeline.mark_processed)
        s.frameComputed.connect(self._on_computed)
        s.progress.connect(self._on_progress)
        s.processingChanged.connect(self._on_processing)
        s.passFinished.connect(self._on_pass)
        s.motionReady.connect(self._on_motion)
        s.idsChanged.connect(lambda ids: self.ids.set_ids(ids, s.fixes.keep))
        s.problem.connect(self._problem)
        s.note.connect(self._say)
        self.exports.progress.connect(self._say)
        self.exports.finished.connect(self._exported)
        self.exports.failed.connect(self._problem)
        self.exports.busyChanged.connect(lambda _: self._update_enabled())
        for kind, button in self.export_buttons.items():
            button.clicked.connect(lambda _=False, k=kind: self.ask_export(k))

    # -- the clip ----------------------------------------------------------------------------------
    def ask_open(self) -> None:
        from .file_dialogs import open_file

        chosen = open_file(self, "Open a video", str(self.session.path.parent if self.session.path else ""),
                           VIDEO_FILTERS)
        if chosen:
            self.open_clip(Path(chosen))

    def open_clip(self, path) -> bool:
        """Open a clip and show its first frame; False (and one `problem` line) if it cannot be read."""
        self.stop_live()
        try:
            info = self.session.open(Path(path))
        except UserError as exc:
            self._problem(str(exc))
            return False
        self.timeline.set_clip(info.frame_count, info.fps)
        self.progress.setRange(0, max(info.frame_count, 1))
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m frames")
        self.rate.setText(" ")
        self.ids.set_ids({})
        self.view.set_boxes([])
        self.view.empty_text = "decoding…"
        self.follow = True
        self._options_changed()
        self._say(f"{Path(path).name}: {info.width}×{info.height}, {info.fps:.3g} fps, ~{info.frame_count} frames, "
                  f"{info.codec}")
        self.session.request_frame(0)
        self._update_enabled()
        return True

    def close_clip(self) -> None:
        self.timeline.pause()
        self.session.close()
        self.timeline.set_clip(0, 30.0)
        self.view.set_boxes([])
        self.view.show_frame(None)
        self.view.empty_text = "Open a video (mp4, mov, mkv, webm)"
        self.ids.set_ids({})
        self.progress.setValue(0)
        self.progress.setFormat("no clip")
        self.rate.setText(" ")
        self._update_enabled()

    def show_frame(self, index: int) -> None:
        self.timeline.request(index)

    def _on_requested(self, index: int) -> None:
        self.follow = False
        self.session.request_frame(index)

    def _on_frame_ready(self, shown) -> None:
        if shown.rgb is None:
            self.view.set_pill(shown.note)
            return
        self.view.set_pill("")
        self.view.show_frame(shown)
        self.view.set_box_editing(self._editing_boxes() and shown.index == 0)
        # The timeline is where the user (or the pass being followed) put it: a result of an
        # older request, shown while a newer one decodes, does not move it back.
        self.frameShown.emit((shown.index, shown.rgb, list(shown.people)))

    # -- the pass ----------------------------------------------------------------------------------
    def _editing_boxes(self) -> bool:
        return self.boxes_radio.isChecked() and self.session.is_open and not self.session.processing \
            and not self.session.records

    def _options_changed(self) -> None:
        options = replace(self.session.options, use_detector=self.detect_radio.isChecked(),
                          detect_every=self.every.value(), boxes=tuple(self.view.boxes))
        if options != self.session.options and self.session.records and not self.session.processing:
            # Another pass (another work file): the frames shown so far are not its frames.
            self.session.forget_pass()
            self.timeline.reset_processed()
            self.progress.setValue(0)
            self.rate.setText(" ")
            self.session.request_frame(self.timeline.frame)
        self.session.options = options
        shown = self.view.shown
        self.view.set_box_editing(self._editing_boxes() and shown is not None and shown.index == 0)
        self._update_enabled()

    def process(self) -> bool:
        self.timeline.pause()
        self._options_changed()
        self.follow = True
        started = self.session.process(self.pipeline_provider(), self.detector_provider())
        if started and self.timeline.frame != 0 and not self.session.records:
            self.session.request_frame(0)
        return started

    def cancel(self) -> None:
        self.session.cancel()
        self._say("stopping after this frame… (Process resumes where it stopped)")

    def _on_computed(self, index: int) -> None:
        if self.follow and not self.timeline.playing and self.session.last_computed:
            self.timeline.set_frame(index)
            self.session.request_frame(index, rgb=self.session.last_computed[1])

    def _on_progress(self, done: int, total: int, fps: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.rate.setText(f"{fps:.1f} frames/s" if fps > 0 else "resuming…")

    def _on_processing(self, on: bool) -> None:
        self.view.set_pill("processing…" if on else "")
        self.view.set_box_editing(False)
        self._update_enabled()
        self.processingChanged.emit(on)

    def _on_pass(self, done) -> None:
        skipped = f", {len(done.skipped)} not decodable" if done.skipped else ""
        if done.complete:
            self._say(f"Processed {len(done.records)} frames ({done.computed} now, {done.resumed} resumed{skipped}); "
                      "smoothing the motion…")
        else:
            self._say(f"Stopped at {len(done.records)} frames: Process resumes from there")
        self._update_enabled()

    def _on_motion(self, motion) -> None:
        jitter = "; ".join(f"id {pid} {p.jitter_before_mm:.1f}→{p.jitter_after_mm:.1f}"
                           for pid, p in motion.people.items() if p.jitter_before_mm == p.jitter_before_mm)
        self._say(f"Motion ready: {len(motion.people)} people over {len(motion.frames)} frames"
                  + (f" · jitter mm/frame² {jitter}" if jitter else ""))
        self.session.request_frame(self.timeline.frame)
        self._update_enabled()

    def _on_smooth(self, value: int) -> None:
        self.smooth_label.setText(f"{value / 100:.2f}")
        self.session.set_smoothing(value / 100)
        self._update_enabled()

    def _edit_ids(self, name: str, *args) -> None:
        from ..video import id_edits

        if name == "split":
            frame = self.timeline.frame
            self.session.edit_ids(lambda fixes, records: id_edits.split(fixes, records, args[0], frame)[0])
        else:
            edit = getattr(id_edits, name)
            self.session.edit_ids(lambda fixes, records: edit(fixes, records, *args))
        self._update_enabled()

    def _reset_ids(self) -> None:
        from ..video.tracking import IdFixes

        self.session.edit_ids(lambda fixes, records: IdFixes())

    # -- exports ---------------------------------------------------------------------------------
    def ask_export(self, kind: str) -> None:
        from .file_dialogs import save_file

        default = str(self.session.path.with_name(default_name(self.session.path, kind)))
        chosen = save_file(self, f"Export {KINDS[kind].label}", default, KINDS[kind].filters)
        if chosen:
            path = Path(chosen[0])
            self.export(kind, path if path.suffix else path.with_suffix(KINDS[kind].suffix))

    def export(self, kind: str, path) -> bool:
        """Write one of the clip's files on a worker; False (and a problem) if it cannot start."""
        s = self.session
        if not s.motion_current:
            self._problem("Process the clip first (and wait for the motion): the exports write its smoothed motion")
            return False
        inp = ClipExport(s.motion, s.model, s.path, s.info.fps, s.info.size_hw, s.smoothing, s.options.max_frames)
        return self.exports.start(write_clip_export, kind, Path(path), inp)

    def _exported(self, text: str) -> None:
        self._say(text)
        self.message.emit(text)

    # -- the live camera ---------------------------------------------------------------------------
    def _on_camera_button(self, on: bool) -> None:
        if on:
            self.start_live()
        else:
            self.stop_live()

    def start_live(self, file: Optional[Path] = None) -> bool:
        """The camera (or `file` played as one) as the source; False with a problem if none."""
        from .live_camera import LiveCamera

        self.close_clip()
        live = LiveCamera(self.pipeline_provider, self.detector_provider, self)
        live.frameReady.connect(self._on_live_frame)
        live.problem.connect(self._problem)
        live.stats.connect(self.rate.setText)
        if not live.start(file):
            live.deleteLater()
            self.camera_button.setChecked(False)
            return False
        self.live = live
        self.camera_button.setChecked(True)
        self.view.empty_text = "waiting for the camera…"
        self._say(f"Live: {Path(file).name} played as the camera" if file is not None else "Live: the camera")
        self._update_enabled()
        return True

    def stop_live(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            live.stop()
            live.deleteLater()
            self.camera_button.setChecked(False)
            self._say(f"Live stopped ({live.shown} frames shown, {live.dropped} dropped)")
            self._update_enabled()

    def _on_live_frame(self, shown) -> None:
        self.view.show_frame(shown)
        self.frameShown.emit((shown.index, shown.rgb, list(shown.people)))

    # -- the rest ------------------------------------------------------------------------------------
    def _update_enabled(self) -> None:
        s = self.session
        open_ = s.is_open
        self.process_button.setEnabled(open_ and not s.processing)
        self.process_button.setText("Resume" if open_ and s.records and not s.complete and not s.processing
                                    else "Process")
        self.cancel_button.setEnabled(s.processing)
        for radio in (self.detect_radio, self.boxes_radio, self.every):
            radio.setEnabled(open_ and not s.processing)
        self.every.setEnabled(open_ and not s.processing and self.detect_radio.isChecked())
        self.clear_boxes.setVisible(self.boxes_radio.isChecked())
        self.clear_boxes.setEnabled(bool(self.view.boxes) and not s.processing)
        ready = s.motion_current and not self.exports.running
        for b in self.export_buttons.values():
            b.setEnabled(ready)
        self.ids.setEnabled(bool(s.records) and not s.processing)
        self.smooth.setEnabled(open_)

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _problem(self, text: str) -> None:
        self.status.setText(text)
        self.problem.emit(text)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if self.timeline.handle_key(ev):
            ev.accept()
        else:
            super().keyPressEvent(ev)

    def closeEvent(self, ev) -> None:
        self.stop_live()
        self.session.cancel()
        super().closeEvent(ev)
