"""The worker thread and the controller that feeds it (latest-wins).

One QThread runs one job at a time: load a model, or run an inference (+ the post-processing
the views need). The controller lives on the UI thread and keeps at most one pending job of
each kind:

  * a new inference request replaces the pending one (never a queue of stale boxes), and a
    result whose request is no longer the newest is dropped when it arrives;
  * a model load is cancellable: a torch load cannot be interrupted, so cancelling marks the
    job and its result is discarded when it arrives (the previous model stays in use);
  * pending loads run before pending inferences, so an inference uses the newest model.

The worker never touches a widget; it sends plain Python objects back through queued signals.
Errors come back as one readable line: a `UserError`'s own message, anything else as
"TypeName: message" (and the window keeps going).
"""

from __future__ import annotations

import itertools
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from .state import Box, Settings


@dataclass
class Job:
    id: int
    kind: str  # "load" | "infer"
    settings: Optional[Settings] = None  # load
    model_dir: Optional[Path] = None  # load (None with settings.use_demo_model)
    pipeline: Any = None  # infer: the pipeline to use (only ever used on the worker)
    image: Optional[np.ndarray] = None
    box: Optional[Box] = None
    image_id: int = 0
    mode: str = "body"  # infer: "body" or "full" (hand refinement)
    submitted_at: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


@dataclass
class Outcome:
    job: Job
    value: Any = None  # load: LoadedPipeline; infer: ResultBundle
    error: str = ""  # one line for the user
    user_error: bool = False  # a UserError (the user can fix it) rather than a bug
    details: str = ""  # traceback of an unexpected error (for the log / details box)
    seconds: float = 0.0


@dataclass
class LoadedPipeline:
    pipeline: Any
    model_dir: Path
    backend: str
    label: str  # e.g. "pytorch fp32 on cpu"
    synthetic: bool
    decoder: str = "eager"  # or "CUDA graph"


def describe_error(exc: BaseException) -> tuple[str, bool]:
    from ..errors import UserError

    if isinstance(exc, UserError):
        return str(exc), True
    try:  # torch's OOM is common enough to deserve words
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return "the GPU ran out of memory; close other GPU programs or choose the CPU in Settings", True
    except ImportError:
        pass
    if isinstance(exc, MemoryError):
        return "out of memory: the model does not fit in this machine's RAM", True
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}", False


def _decoder_label(pipeline) -> str:
    return getattr(pipeline, "decoder_label", "eager")  # test doubles may lack it


class Worker(QObject):
    done = Signal(object)  # Outcome
    progress = Signal(int, str)  # job id, message

    @Slot(object)
    def run(self, job: Job) -> None:
        t0 = time.perf_counter()
        try:
            value = self._load(job) if job.kind == "load" else self._infer(job)
            outcome = Outcome(job, value=value)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
            message, user = describe_error(exc)
            outcome = Outcome(job, error=message, user_error=user,
                              details="" if user else traceback.format_exc())
        outcome.seconds = time.perf_counter() - t0
        self.done.emit(outcome)

    def _load(self, job: Job) -> LoadedPipeline:
        from ..synthetic.make import is_synthetic
        from .backends import build_pipeline_for, resolve_model_dir

        def progress(message, *_args) -> bool:
            self.progress.emit(job.id, str(message))
            return not job.cancelled

        if job.settings.use_demo_model:
            progress("making the demo model (random weights) in the user cache")
        folder = job.model_dir or resolve_model_dir(job.settings)
        pipeline = build_pipeline_for(job.settings, Path(folder), progress)
        if job.cancelled:
            return None
        progress("warming up")
        warm_up = getattr(pipeline.backbone, "warm_up", None)
        if callable(warm_up):
            warm_up(pipeline.config.crop_size, iterations=1)
        return LoadedPipeline(pipeline, Path(folder), pipeline.backbone.info.name, pipeline.backbone.info.label(),
                              is_synthetic(folder), _decoder_label(pipeline))

    _last_image: tuple = ()

    def _infer(self, job: Job):
        from .render import make_bundle

        key = (id(job.pipeline), job.image_id)
        if key != self._last_image:
            # The pipeline may keep the photo on the GPU, keyed by its memory address; a new
            # photo can reuse a freed one's address, so say explicitly that the photo changed.
            forget = getattr(job.pipeline, "forget_image", None)
            if callable(forget):
                forget()
            self._last_image = key
        result = job.pipeline.run(job.image, job.box, None, mode=job.mode)
        return make_bundle(job.id, result, job.box, job.image_id, job.submitted_at)


_ORPHANS: list = []  # worker threads still finishing a job after their window closed


class InferenceController(QObject):
    """Owns the worker thread; all its methods run on the UI thread."""

    resultReady = Signal(object)  # ResultBundle (only the newest request's)
    inferenceFailed = Signal(str, bool)  # message, user_error
    modelLoaded = Signal(object)  # LoadedPipeline
    modelFailed = Signal(str, bool)
    loadCancelled = Signal()
    loadProgress = Signal(str)
    busyChanged = Signal(bool)
    _submit = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._thread = QThread()
        self._thread.setObjectName("sam3dbody-worker")
        self._worker = Worker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.done.connect(self._on_done)
        self._worker.progress.connect(self._on_progress)
        self._thread.start()
        self.pipeline: Any = None
        self.loaded: Optional[LoadedPipeline] = None
        self.running: Optional[Job] = None
        self.pending_load: Optional[Job] = None
        self.pending_infer: Optional[Job] = None
        self.latest_infer_id = 0
        self.latest_load_id = 0
        self.dropped = 0  # stale results thrown away
        self.superseded = 0  # pending requests replaced before they ran
        self.last_error: str = ""

    # -- requests ------------------------------------------------------------------------
    def load_model(self, settings: Settings, model_dir: Optional[Path] = None) -> int:
        if self.pending_load is not None:
            self.pending_load.cancelled = True
        if self.running is not None and self.running.kind == "load":
            self.running.cancelled = True  # a newer load makes the running one stale
        job = Job(next(self._ids), "load", settings=settings, model_dir=model_dir)
        self.pending_load = job
        self.latest_load_id = job.id
        self._dispatch()
        return job.id

    def cancel_load(self) -> None:
        """Forget the model load in progress: its result is discarded when it arrives."""
        for job in (self.pending_load, self.running):
            if job is not None and job.kind == "load":
                job.cancelled = True
        self.pending_load = None
        self.latest_load_id = 0
        self.loadCancelled.emit()
        self._emit_busy()

    def request_inference(self, image: np.ndarray, box: Optional[Box], image_id: int, mode: str = "body") -> int:
        job = Job(next(self._ids), "infer", image=image, box=box, image_id=image_id, mode=mode)
        if self.pending_infer is not None:
            self.superseded += 1
        self.pending_infer = job
        self.latest_infer_id = job.id
        self._dispatch()
        return job.id

    def forget_inference(self) -> None:
        """Drop the pending request and whatever is in flight (e.g. a new photo arrived)."""
        self.pending_infer = None
        self.latest_infer_id = 0
        self._emit_busy()

    @property
    def has_model(self) -> bool:
        return self.pipeline is not None

    @property
    def loading(self) -> bool:
        return self.pending_load is not None or (
            self.running is not None and self.running.kind == "load" and not self.running.cancelled)

    @property
    def busy(self) -> bool:
        return self.running is not None or self.pending_load is not None or (
            self.pending_infer is not None and self.pipeline is not None)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop the worker thread; False if a job still runs after `timeout_ms` (a model load or
        a long CPU inference cannot be interrupted): the thread is then kept alive, unowned,
        until it finishes, because destroying a running QThread aborts the process."""
        self.pending_infer = self.pending_load = None
        self._thread.quit()
        if self._thread.wait(timeout_ms):
            return True
        _ORPHANS.append((self._thread, self._worker))
        return False

    def is_running(self) -> bool:
        return self._thread.isRunning()

    # -- plumbing ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self.running is None:
            job = None
            if self.pending_load is not None:
                job, self.pending_load = self.pending_load, None
            elif self.pending_infer is not None and self.pipeline is not None:
                job, self.pending_infer = self.pending_infer, None
                job.pipeline = self.pipeline
            if job is not None:
                self.running = job
                self._submit.emit(job)
        self._emit_busy()

    def _emit_busy(self) -> None:
        self.busyChanged.emit(self.busy)

    @Slot(int, str)
    def _on_progress(self, job_id: int, message: str) -> None:
        if job_id == self.latest_load_id:
            self.loadProgress.emit(message)

    @Slot(object)
    def _on_done(self, outcome: Outcome) -> None:
        job = outcome.job
        self.running = None
        if job.kind == "load":
            if job.cancelled or job.id != self.latest_load_id:
                pass  # cancelled or superseded: discard (the previous model stays)
            elif outcome.error:
                self.last_error = outcome.error
                if outcome.details:
                    print(outcome.details, flush=True)
                self.modelFailed.emit(outcome.error, outcome.user_error)
            elif outcome.value is not None:
                self.loaded = outcome.value
                self.pipeline = outcome.value.pipeline
                self.modelLoaded.emit(outcome.value)
        else:
            if job.id != self.latest_infer_id:
                self.dropped += 1  # a newer request exists: this result is stale
            elif outcome.error:
                self.last_error = outcome.error
                if outcome.details:
                    print(outcome.details, flush=True)
                self.inferenceFailed.emit(outcome.error, outcome.user_error)
            else:
                outcome.value.shown_ms = (time.perf_counter() - job.submitted_at) * 1e3
                self.resultReady.emit(outcome.value)
        self._dispatch()
