"""Detect people for the window: the person detector found (downloaded with the model manager,
or the demo detector beside the demo model), loaded once and run on a worker thread; the boxes
come back as plain lists. One detection at a time: asking again while one runs waits for it and
then runs once more on the newest photo."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from .state import Settings

DEMO_DETECTOR = "demo-detector-tiny"


def detector_folder(settings: Settings) -> tuple[Optional[Path], str]:
    """(the detector folder to use, why there is none). The downloaded detector first; with the
    demo model, the demo detector (random weights like it, made in the user cache)."""
    from ..hub_detector import find_installed_detector, transformers_problem

    problem = transformers_problem()
    if problem:
        return None, problem
    folder = find_installed_detector()
    if folder is not None:
        return folder, ""
    if settings.use_demo_model:
        from ..app_paths import cache_dir

        return cache_dir(DEMO_DETECTOR), ""
    return None, ("no person detector yet: get it in Model ▸ Models… (tick \"Also download the person detector\"), "
                  "or draw a box around each person")


class _Detector:
    """The loaded detector, kept between detections (plain Python: it lives on the workers)."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._detector = None
        self._lock = threading.Lock()

    def loaded(self, folder: Path, device: str):
        """The detector of `folder` (made first for the demo detector), loaded once."""
        from ..device import resolve_device
        from ..model.detector import load_detector
        from ..synthetic.detector import make_synthetic_detector

        with self._lock:
            if folder.name == DEMO_DETECTOR and not (folder / "config.json").is_file():
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
                make_synthetic_detector(folder)
            key = (str(folder), device)
            if key != self._key:
                self._detector, self._key = load_detector(folder, device=resolve_device(device)), key
            return self._detector

    def detect(self, folder: Path, device: str, image: np.ndarray, min_score: float, max_people: int):
        detector = self.loaded(folder, device)
        with self._lock:
            found = detector.detect(image, min_score=min_score, max_people=max_people)
            note = found.message()
            if detector.synthetic:
                note += " (demo detector: random weights, its boxes are not anyone's)"
            return [tuple(p.box_xyxy) for p in found.people], [float(p.score) for p in found.people], note


class PersonDetection(QObject):
    found = Signal(int, object, object, str)  # image id, boxes, scores, what to say
    failed = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._detector = _Detector()
        self._running = False
        self._pending: Optional[tuple] = None

    @property
    def busy(self) -> bool:
        return self._running

    def loaded_detector(self, settings: Settings):
        """The detector for a clip's pass (loaded here, once: a second), or None without one."""
        folder, _why = detector_folder(settings)
        if folder is None:
            return None
        try:
            return self._detector.loaded(folder, settings.device)
        except Exception as exc:  # noqa: BLE001 - a broken detector folder: say so, the pass uses boxes
            from .worker import describe_error

            self.failed.emit(f"The person detector did not load: {describe_error(exc)[0]}")
            return None

    def detect(self, settings: Settings, image: np.ndarray, image_id: int, min_score: float = 0.5,
               max_people: int = 20) -> bool:
        """Start a detection; False (and `failed`) when there is no detector to use."""
        folder, why = detector_folder(settings)
        if folder is None:
            self.failed.emit(why)
            return False
        job = (folder, settings.device, image, image_id, min_score, max_people)
        if self._running:
            self._pending = job
            return True
        self._start(job)
        return True

    def _start(self, job: tuple) -> None:
        folder, device, image, image_id, min_score, max_people = job
        detector = self._detector

        def work():
            from .worker import describe_error

            try:
                return image_id, detector.detect(folder, device, image, min_score, max_people), ""
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                return image_id, None, describe_error(exc)[0]

        self._running = True
        self.busyChanged.emit(True)
        create_worker(work, _connect={"returned": self._on_done}, _start_thread=True)

    def _on_done(self, outcome: tuple) -> None:
        self._running = False
        image_id, value, error = outcome
        if self._pending is not None:
            job, self._pending = self._pending, None
            self._start(job)
        else:
            self.busyChanged.emit(False)
        if error:
            self.failed.emit(f"Detection failed: {error}")
        elif value is not None:
            boxes, scores, note = value
            self.found.emit(image_id, boxes, scores, note)
