"""A live source for the video panel: the camera through Qt Multimedia (QCamera and a
QMediaCaptureSession into a QVideoSink), or a file played into the same sink by a QMediaPlayer
(what the tests use, and a way to try the live path without a camera).

Each frame the sink gives is offered to a NewestWins (newest_wins.py): one frame is processed on
a worker (the detector and the tracker when the window has a detector, else each person's box
carried from their keypoints, the whole picture when nobody is tracked; the pipeline; the mesh
layer), one waits, and a newer frame replaces the waiting one, which is dropped and counted. A
QVideoFrame is turned into numpy only when its turn comes, so dropping one costs nothing.

Qt Multimedia is in PySide6-Addons, not PySide6-Essentials (which this package depends on); on
Linux it also needs the PulseAudio client library (libpulse0). Without them, or without a
camera, `start` says so in one line and returns False.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, QUrl, Signal
from superqt.utils import create_worker

from .clip_jobs import deliver_to
from .frame_layer import shown_frame
from .newest_wins import NewestWins

STATS_EVERY_S = 0.5


def multimedia_problem() -> Optional[str]:
    """Why Qt Multimedia cannot be used here (None: it can)."""
    try:
        from PySide6 import QtMultimedia  # noqa: F401
    except ImportError as exc:
        text = str(exc)
        if "cannot import name" in text or "No module named" in text:
            return ("the live camera needs Qt Multimedia, which comes with PySide6-Addons: "
                    "pip install 'sam3dbody-gui[camera]' (the same version as PySide6-Essentials)")
        return f"Qt Multimedia cannot load: {text} (on Linux: install the PulseAudio client library, libpulse0)"
    return None


def video_frame_to_rgb(frame) -> Optional[np.ndarray]:
    """A QVideoFrame → (H, W, 3) uint8 RGB, or None for an empty one (the end of a file)."""
    from .frame_view import qimage_to_rgb

    if not frame.isValid():
        return None
    image = frame.toImage()
    if image.isNull() or image.width() <= 0 or image.height() <= 0:
        return None
    return qimage_to_rgb(image)


class LiveTracker:
    """Who is in each live frame: detector + tracker, or boxes carried from keypoints. Used by
    one job at a time (NewestWins), so its state needs no lock."""

    def __init__(self, detector=None, min_score: float = 0.5, max_people: int = 20) -> None:
        from ..video.tracking import PeopleTracker

        self.detector, self.min_score, self.max_people = detector, min_score, max_people
        self.tracker = PeopleTracker() if detector is not None else None
        self.previous: dict[int, np.ndarray] = {}  # id → keypoints of the last frame

    def people(self, rgb: np.ndarray) -> list[tuple[int, tuple]]:
        from ..video.box_carry import box_around_keypoints

        if self.detector is not None:
            found = self.detector.detect(rgb, min_score=self.min_score, max_people=self.max_people)
            boxes = [[*map(float, p.box_xyxy)] for p in found.people]
            return [(t.id, t.box) for t in self.tracker.update(boxes, [p.score for p in found.people])]
        carried = [(pid, box_around_keypoints(k, rgb.shape[:2])) for pid, k in self.previous.items()]
        carried = [(pid, box) for pid, box in carried if box is not None]
        h, w = rgb.shape[:2]
        return carried or [(1, (0.0, 0.0, float(w), float(h)))]

    def run(self, pipeline, rgb: np.ndarray) -> list[tuple[int, object]]:
        people = self.people(rgb)
        results = pipeline.run_people(rgb, [box for _, box in people]) if people else []
        self.previous = {pid: np.asarray(r.keypoints_2d, np.float64) for (pid, _), r in zip(people, results)}
        return [(pid, r) for (pid, _), r in zip(people, results)]


class LiveCamera(QObject):
    frameReady = Signal(object)  # ShownFrame
    problem = Signal(str)
    stats = Signal(str)  # "12.5 frames/s · 40 dropped"

    def __init__(self, pipeline_provider: Callable[[], object], detector_provider: Callable[[], object],
                 parent: QObject | None = None, process: Optional[Callable] = None) -> None:
        """`process(rgb) -> [(id, MeshResult)]`: what is done to a frame (default: LiveTracker
        with the window's pipeline and detector)."""
        super().__init__(parent)
        self.pipeline_provider, self.detector_provider = pipeline_provider, detector_provider
        self.queue = NewestWins(self._begin)
        self.frames_seen = 0
        self.shown = 0
        self.running = False
        self._process = process
        self._tracker: Optional[LiveTracker] = None
        self._said_no_model = False
        self._t0 = time.perf_counter()
        self._last_stats = 0.0
        self._sink = self._player = self._camera = self._capture = None

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    def start(self, file: Optional[Path] = None) -> bool:
        """The camera (or `file` played as one) into the sink; False with one `problem` line."""
        problem = multimedia_problem()
        if problem is not None:
            self.problem.emit(problem)
            return False
        from PySide6.QtMultimedia import QCamera, QMediaCaptureSession, QMediaDevices, QMediaPlayer, QVideoSink

        self._sink = QVideoSink(self)
        self._sink.videoFrameChanged.connect(self.offer)
        if file is not None:
            if not Path(file).is_file():
                self.problem.emit(f"cannot play {file}: no such file")
                return False
            self._player = QMediaPlayer(self)
            self._player.setVideoSink(self._sink)
            self._player.errorOccurred.connect(lambda _e, text: self.problem.emit(f"cannot play {file}: {text}"))
            self._player.setSource(QUrl.fromLocalFile(str(Path(file).resolve())))
            self._player.play()
        else:
            device = QMediaDevices.defaultVideoInput()
            if device.isNull():
                self.problem.emit("no camera found: connect one (or open a video file instead)")
                return False
            self._camera = QCamera(device, self)
            self._camera.errorOccurred.connect(lambda _e, text: self.problem.emit(f"the camera failed: {text}"))
            self._capture = QMediaCaptureSession(self)
            self._capture.setCamera(self._camera)
            self._capture.setVideoSink(self._sink)
            self._camera.start()
        self.running = True
        self._t0 = time.perf_counter()
        return True

    def stop(self) -> None:
        self.running = False
        self.queue.clear()
        if self._player is not None:
            self._player.stop()
        if self._camera is not None:
            self._camera.stop()
        if self._sink is not None:
            try:
                self._sink.videoFrameChanged.disconnect(self.offer)
            except (RuntimeError, TypeError):
                pass

    def offer(self, frame) -> None:
        """A new frame from the sink (or a test): processed now, or waiting, or dropped."""
        if not self.running or (hasattr(frame, "isValid") and not frame.isValid()):
            return
        self.frames_seen += 1
        self.queue.offer((self.frames_seen - 1, frame))

    def _begin(self, item) -> None:
        index, frame = item
        rgb = frame if isinstance(frame, np.ndarray) else video_frame_to_rgb(frame)
        if rgb is None:
            self.queue.done()
            return
        process = self._process or self._default_process()

        def job():
            from .worker import describe_error

            try:
                return True, shown_frame(index, rgb, process(rgb) if process is not None else [])
            except BaseException as exc:  # noqa: BLE001 - one line for the user
                return False, describe_error(exc)[0]

        create_worker(job, _connect={"returned": deliver_to(self, self._on_done)}, _start_thread=True)

    def _default_process(self):
        pipeline = self.pipeline_provider()
        if pipeline is None:
            if not self._said_no_model:
                self._said_no_model = True
                self.problem.emit("No model loaded: the camera is shown without meshes (load one in Settings)")
            return None
        detector = self.detector_provider()
        if self._tracker is None or self._tracker.detector is not detector:
            self._tracker = LiveTracker(detector)
        tracker = self._tracker
        return lambda rgb: tracker.run(pipeline, rgb)

    def _on_done(self, outcome) -> None:
        ok, value = outcome
        if self.running:
            if ok:
                self.shown += 1
                self.frameReady.emit(value)
            else:
                self.problem.emit(value)
                self.stop()
        self.queue.done()
        now = time.perf_counter()
        if now - self._last_stats >= STATS_EVERY_S:
            self._last_stats = now
            rate = self.shown / max(now - self._t0, 1e-6)
            self.stats.emit(f"live: {rate:.1f} frames/s · {self.dropped} dropped")
