"""The video panel's background jobs, as plain functions of plain values (they never touch a
widget): the pass over a clip, with what it finds carried to the UI thread by a PassRelay
(queued signals), and the helpers every job of the panel uses: `guarded` (a failure becomes one
line for the user) and `deliver_to` (a result that arrives after its panel closed goes nowhere).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..video.clip_processor import ClipOptions


class PassRelay(QObject):
    """Carries a worker's news to the UI thread (queued: it lives there)."""

    progress = Signal(int, int, int, float)  # generation, done, total, frames/s
    resumed = Signal(int, object, str)  # generation, records, work file path
    frame = Signal(int, object, object, object)  # generation, Frame, record, results
    skipped = Signal(int, object)  # generation, the record of a frame that does not decode
    note = Signal(int, str)


def stripped(result):
    """A result without its feature map (the largest array, which display never uses)."""
    import numpy as np

    return replace(result, features=np.zeros((0, 0, 0), np.float32))


def rebuilt(model, record: dict, image_hw, backend: str) -> list:
    """The pipeline's results of a work-file record, again (strength 0, the frame's own identity)."""
    from ..video.motion import rerig, tracks_from_records

    return [(pid, rerig(model, track, image_hw, backend=backend)[0])
            for pid, track in tracks_from_records([record]).items()]


def pass_job(clip: Path, work_dir: Path, settings: dict, options: ClipOptions, pipeline, detector,
             cancel: threading.Event, relay: PassRelay, gen: int):
    from ..video.clip_processor import ClipProcessor
    from ..video.reader import VideoReader
    from ..video.work_file import WorkFile

    work = WorkFile.open(work_dir, clip, settings)
    relay.resumed.emit(gen, list(work.in_order()), str(work.path))
    t0, computed = time.perf_counter(), [0]

    def on_frame(frame, record, results) -> None:
        computed[0] += 1
        relay.frame.emit(gen, frame, record, [stripped(r) for r in results])

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - t0
        relay.progress.emit(gen, done, total, computed[0] / elapsed if elapsed > 0 and computed[0] else 0.0)

    def on_note(message: str) -> None:
        # A frame that does not decode is appended to the work file just before its note.
        last = next(reversed(work.records.values()), None)
        if last is not None and last.get("skipped") and last["frame"] not in sent:
            sent.add(last["frame"])
            relay.skipped.emit(gen, last)
        relay.note.emit(gen, message)

    sent = set(work.records)
    try:
        with VideoReader(clip) as reader:
            processor = ClipProcessor(pipeline, reader, options, work, detector)
            return processor.run(progress, cancel.is_set, on_frame, on_note)
    finally:
        work.close()


def deliver_to(obj: QObject, slot):
    """A worker's `returned` handler that does nothing once `obj` is deleted (the panel closed)."""
    from shiboken6 import isValid

    def deliver(*args):
        if isValid(obj):
            slot(*args)
    return deliver


def guarded(fn, *args):
    """Run a job; (True, value) or (False, one line for the user)."""
    def work():
        from .worker import describe_error

        try:
            return True, fn(*args)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes one message
            return False, describe_error(exc)[0]
    return work
