"""The window with a clip open: the video panel (video_panel.py) takes the photo panel's place,
its frames' people go to the 3-D view, and its messages to the banner and the status bar.
File ▸ Open video… (or a video dropped on the window) opens one; File ▸ Close video goes back to
the photo. The panel is made on first use (it raises Qt's thread pool for its long pass)."""

from __future__ import annotations

from pathlib import Path
from PySide6.QtCore import QObject, QThreadPool

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


class VideoMode(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.panel = None  # VideoPanel, once a clip was opened

    @property
    def active(self) -> bool:
        return self.panel is not None and self.window.panels.photo_stack.currentWidget() is self.panel

    def _ensure_panel(self):
        if self.panel is None:
            from .video_panel import VideoPanel

            w = self.window
            self.panel = VideoPanel(lambda: w.controller.pipeline,
                                    lambda: w.people.detection.loaded_detector(w.state.settings))
            self.panel.problem.connect(lambda text: w.show_error(text, kind="video"))
            self.panel.message.connect(w.state.post)
            self.panel.frameShown.connect(self._on_frame)
            w.panels.photo_stack.addWidget(self.panel)
        self.panel.session.precision = self.window.state.settings.precision
        return self.panel

    def open_dialog(self) -> None:
        self._ensure_panel()
        self.show()
        self.panel.ask_open()

    def open(self, path: Path) -> bool:
        panel = self._ensure_panel()
        if not panel.open_clip(Path(path)):
            return False
        self.show()
        self.window.banner.dismiss_kinds("video", "error")
        self.window.state.post(f"Opened the clip {Path(path).name}: Process runs every frame (Space plays)")
        return True

    def show(self) -> None:
        w = self.window
        w.panels.photo_stack.setCurrentWidget(self.panel)
        for tool in w.panels.photo_tools:  # the panel has its own (keypoints); these act on the photo
            tool.setVisible(False)
        w.panels.photo_panel.title.setText("Video")
        w.panels.photo_panel.subtitle.set_variants("process the clip, then play it · Space: play")
        self.panel.setFocus()

    def close(self) -> None:
        """Back to the photo (the clip's work stays on disk: opening it again resumes)."""
        w = self.window
        if self.panel is not None:
            self.panel.close_clip()
        w.panels.photo_stack.setCurrentIndex(0)
        for tool in w.panels.photo_tools:
            tool.setVisible(True)
        w.panels.photo_panel.title.setText("Photo")
        w.panels.photo_panel.subtitle.set_variants("drag to add a person's box · click one to select it")
        w.mesh.show_state()

    def shutdown(self, timeout_ms: int = 3000) -> None:
        if self.panel is not None:
            self.panel.close_clip()
            QThreadPool.globalInstance().waitForDone(timeout_ms)

    def _on_frame(self, shown) -> None:
        from .frame_layer import colour_key

        _index, _image, people = shown
        if self.active:  # each track in the colour the panel draws it in
            self.window.mesh.show_people([(colour_key(track_id), result) for track_id, result in people])
