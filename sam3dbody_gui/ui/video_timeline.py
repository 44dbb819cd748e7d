"""The video panel's timeline: a scrub slider over a band that shows which frames are processed,
play/pause, a frame step back and forward, and the frame number with its time (mm:ss.ff, ff the
hundredths of a second).

Keyboard (when the timeline or the panel around it has focus): Space plays or pauses, Left and
Right step one frame (Shift: one second), Home and End go to the first and the last frame.

It only asks: every move (scrub, step, a play tick) goes out as `frameRequested(i)`; the panel
decodes (latest request wins) and the timeline follows `set_frame`. Playing ticks at the clip's
frame rate and skips ahead when decoding is slower, so the clip plays in its own time.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
from PySide6.QtCore import QByteArray, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget

from . import style

BAND_PX = 5
PROCESSED = "#5fd38d"
SKIPPED = "#ff6b6b"
# Drawn, not glyphs (⏮ ⏸ are missing from common fonts); 24 × 24 view boxes.
GLYPHS = {"back": "<rect x='5' y='5' width='2.5' height='14' rx='1'/><path d='M19 5 V19 L9 12 Z'/>",
          "play": "<path d='M7 4.5 V19.5 L19.5 12 Z'/>",
          "pause": "<rect x='6' y='5' width='4' height='14' rx='1'/><rect x='14' y='5' width='4' height='14' rx='1'/>",
          "forward": "<rect x='16.5' y='5' width='2.5' height='14' rx='1'/><path d='M5 5 V19 L15 12 Z'/>"}


def timecode(seconds: float) -> str:
    """mm:ss.ff (hundredths), e.g. 01:02.50; hours fold into the minutes."""
    hundredths = max(int(round(seconds * 100)), 0)
    minutes, rest = divmod(hundredths, 6000)
    return f"{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}"


class ProcessedBand(QWidget):
    """A thin bar under the slider: green where a frame is processed, red where it did not decode."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedHeight(BAND_PX)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.state = np.zeros(0, np.int8)  # per frame: 0 not yet, 1 processed, 2 skipped

    def reset(self, frames: int) -> None:
        self.state = np.zeros(max(frames, 0), np.int8)
        self.update()

    def mark(self, frame: int, skipped: bool = False) -> None:
        if frame >= len(self.state):  # the header's frame count was an estimate
            self.state = np.concatenate([self.state, np.zeros(frame + 1 - len(self.state), np.int8)])
        self.state[frame] = 2 if skipped else 1
        self.update()

    def processed(self) -> int:
        return int(np.count_nonzero(self.state))

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(style.BORDER))
        n = len(self.state)
        if not n:
            return
        w = self.width()
        for value, colour in ((1, PROCESSED), (2, SKIPPED)):
            hit = np.flatnonzero(self.state == value)
            if not len(hit):
                continue
            # Runs of consecutive frames, one rectangle each.
            breaks = np.flatnonzero(np.diff(hit) > 1)
            starts = np.concatenate([[hit[0]], hit[breaks + 1]])
            ends = np.concatenate([hit[breaks], [hit[-1]]]) + 1
            for a, b in zip(starts, ends):
                x0, x1 = a * w / n, b * w / n
                p.fillRect(QRectF(x0, 0, max(x1 - x0, 1.0), self.height()), QColor(colour))


@lru_cache(maxsize=None)
def glyph(name: str, colour: str = style.TEXT) -> QIcon:
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='{colour}'>{GLYPHS[name]}</svg>"
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    icon = QIcon()
    for side in (16, 32):
        image = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        p = QPainter(image)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(p, QRectF(0, 0, side, side))
        p.end()
        icon.addPixmap(QPixmap.fromImage(image))
    return icon


def _button(name: str, tip: str) -> QToolButton:
    b = QToolButton()
    b.setIcon(glyph(name))
    b.setIconSize(QSize(16, 16))
    b.setToolTip(tip)
    b.setAccessibleName(tip.split(" (")[0])
    b.setAutoRaise(True)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space belongs to play/pause, not to a focused button
    b.setMinimumSize(QSize(30, 26))
    return b


class VideoTimeline(QWidget):
    frameRequested = Signal(int)
    playingChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Timeline")
        self.frame_count = 0
        self.fps = 30.0
        self.frame = 0
        self._syncing = False
        self._play_t0 = 0.0  # when playing started, and from which frame
        self._play_f0 = 0
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.back = _button("back", "One frame back (Left)")
        self.play_button = _button("play", "Play / pause (Space)")
        self.play_button.setCheckable(True)
        self.forward = _button("forward", "One frame forward (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName("Frame")
        self.slider.setToolTip("Drag to scrub · Left/Right: a frame · Home/End")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys are the timeline's
        self.band = ProcessedBand()
        self.band.setToolTip("Green: processed · red: the frame does not decode")
        self.label = QLabel("—")
        self.label.setObjectName("dim")
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("frame 00000 / 00000  ·  00:00.00") + 8)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        track = QVBoxLayout()
        track.setSpacing(1)
        track.setContentsMargins(0, 0, 0, 0)
        track.addWidget(self.slider)
        track.addWidget(self.band)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        row.setSpacing(4)
        for b in (self.back, self.play_button, self.forward):
            row.addWidget(b)
        row.addLayout(track, 1)
        row.addWidget(self.label)
        self.back.clicked.connect(lambda: self.step(-1))
        self.forward.clicked.connect(lambda: self.step(1))
        self.play_button.clicked.connect(lambda checked: self.play() if checked else self.pause())
        self.slider.valueChanged.connect(self._on_slider)
        self.set_clip(0, 30.0)

    # -- the clip ------------------------------------------------------------------------
    def set_clip(self, frame_count: int, fps: float) -> None:
        self.pause()
        self.frame_count, self.fps = max(int(frame_count), 0), float(fps) if fps > 0 else 30.0
        self._syncing = True
        self.slider.setRange(0, max(self.frame_count - 1, 0))
        self.slider.setPageStep(max(int(round(self.fps)), 1))
        self.slider.setValue(0)
        self._syncing = False
        self.frame = 0
        self.band.reset(self.frame_count)
        for w in (self.back, self.play_button, self.forward, self.slider):
            w.setEnabled(self.frame_count > 0)
        self._update_label()

    def set_frame(self, index: int) -> None:
        """Follow the frame shown (no request goes out)."""
        self.frame = int(np.clip(index, 0, max(self.frame_count - 1, 0)))
        self._syncing = True
        self.slider.setValue(self.frame)
        self._syncing = False
        self._update_label()

    def mark_processed(self, frame: int, skipped: bool = False) -> None:
        if frame >= self.frame_count:
            self.frame_count = frame + 1
            self.slider.setMaximum(frame)
        self.band.mark(frame, skipped)

    def reset_processed(self) -> None:
        self.band.reset(self.frame_count)

    # -- moving ------------------------------------------------------------------------
    def request(self, index: int) -> None:
        if self.frame_count <= 0:
            return
        index = int(np.clip(index, 0, self.frame_count - 1))
        self.set_frame(index)
        self.frameRequested.emit(index)

    def step(self, n: int) -> None:
        self.pause()
        self.request(self.frame + n)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def play(self) -> None:
        if self.frame_count <= 1 or self.playing:
            self.play_button.setChecked(self.playing)
            return
        if self.frame >= self.frame_count - 1:
            self.request(0)  # from the start again
        self._play_t0, self._play_f0 = time.perf_counter(), self.frame
        self.timer.start(max(int(1000 / self.fps), 5))
        self.play_button.setChecked(True)
        self.play_button.setIcon(glyph("pause"))
        self.playingChanged.emit(True)

    def pause(self) -> None:
        was = self.playing
        self.timer.stop()
        self.play_button.setChecked(False)
        self.play_button.setIcon(glyph("play"))
        if was:
            self.playingChanged.emit(False)

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def _tick(self) -> None:
        # The clip's own time: a slow decode skips frames instead of slowing the clip down.
        due = self._play_f0 + int((time.perf_counter() - self._play_t0) * self.fps)
        if due >= self.frame_count - 1:
            self.request(self.frame_count - 1)
            self.pause()
        elif due != self.frame:
            self.request(due)

    def _on_slider(self, value: int) -> None:
        if not self._syncing:
            self.pause()
            self.request(value)

    def handle_key(self, ev: QKeyEvent) -> bool:
        """The timeline's keys (the panel passes its own key presses here too)."""
        key, shift = ev.key(), bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        big = max(int(round(self.fps)), 1) if shift else 1
        if key == Qt.Key.Key_Space:
            self.toggle_play()
        elif key == Qt.Key.Key_Left:
            self.step(-big)
        elif key == Qt.Key.Key_Right:
            self.step(big)
        elif key == Qt.Key.Key_Home:
            self.step(-self.frame)
        elif key == Qt.Key.Key_End:
            self.step(self.frame_count - 1 - self.frame)
        else:
            return False
        return True

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if self.handle_key(ev):
            ev.accept()
        else:
            super().keyPressEvent(ev)

    def _update_label(self) -> None:
        if self.frame_count <= 0:
            self.label.setText("no clip")
            return
        self.label.setText(f"frame {self.frame} / {self.frame_count - 1}  ·  {timecode(self.frame / self.fps)}")
