"""Background work for the window and the controller that feeds it (latest-wins).

One job runs at a time, on a thread of Qt's pool (superqt's `create_worker`, as napari does):
load a model, or run an inference (+ the post-processing the views need). The controller lives
on the UI thread and keeps at most one pending job of each kind:

  * a new inference request replaces the pending one (never a queue of stale boxes), and a
    result whose request is no longer the newest is dropped when it arrives;
  * a model load is cancellable: a torch load cannot be interrupted, so cancelling marks the
    job and its result is discarded when it arrives (the previous model stays in use);
  * pending loads run before pending inferences, so an inference uses the newest model.

A job never touches a widget; it sends plain Python objects back through queued signals.
Errors come back as one readable line: a `UserError`'s own message, anything else as
"TypeName: message" (and the window keeps going); the traceback of an unexpected one goes to
this module's logger.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from superqt.utils import create_worker

from .state import Settings

log = logging.getLogger(__name__)
# What Python's default warning filter hides outside __main__.
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@dataclass
class Job:
    id: int
    kind: str  # "load" | "infer"
    settings: Optional[Settings] = None  # load
    model_dir: Optional[Path] = None  # load (None with settings.use_demo_model)
    pipeline: Any = None  # infer: the pipeline to use (only ever used on the worker)
    image: Optional[np.ndarray] = None
    runs: tuple = ()  # infer: (person id, box, result key, colour) of each person to run
    kept: tuple = ()  # infer: PersonShown of the people whose results are still good
    redecodes: tuple = ()  # infer: (person id, key, colour, MeshResult) to decode again with new prompts
    order: tuple = ()  # infer: every person's id, in the list's order
    selected: int = 0
    camera: Any = None  # infer: pipeline.photo_camera.PhotoCamera (None: the default camera)
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
    details: str = ""  # traceback of an unexpected error (for the log)
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


class JobRunner:
    """Does one job on a pool thread and always returns an Outcome (never raises). Plain
    Python: it knows nothing of Qt, and jobs reach it one at a time."""

    def __init__(self) -> None:
        self._photo_key: tuple = ()  # (pipeline, photo) of the last inference

    def run(self, job: Job, say: Callable[[str], None]) -> Outcome:
        t0 = time.perf_counter()
        try:
            value = self._load(job, say) if job.kind == "load" else self._infer(job)
            outcome = Outcome(job, value=value)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
            message, user = describe_error(exc)
            outcome = Outcome(job, error=message, user_error=user,
                              details="" if user else traceback.format_exc())
        outcome.seconds = time.perf_counter() - t0
        return outcome

    def _load(self, job: Job, say: Callable[[str], None]) -> Optional[LoadedPipeline]:
        from ..synthetic.make import is_synthetic
        from .backends import build_pipeline_for, resolve_model_dir

        def progress(message, *_args) -> bool:
            say(str(message))
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
        prepare_hands = getattr(pipeline.hand_decoder, "prepare", None)
        if callable(prepare_hands):  # full mode's hand pass captured now, not on the first full-mode run
            progress("capturing full mode's hand decoder")
            prepare_hands()
        return LoadedPipeline(pipeline, Path(folder), pipeline.backbone.info.name, pipeline.backbone.info.label(),
                              is_synthetic(folder), _decoder_label(pipeline))

    def _infer(self, job: Job):
        from ..pipeline.result import CACHED_DECODER_STAGE
        from .render import make_bundle, person_shown

        key = (id(job.pipeline), job.image_id)
        if key != self._photo_key:
            # The pipeline may keep the photo on the GPU, keyed by its memory address; a new
            # photo can reuse a freed one's address, so say explicitly that the photo changed.
            forget = getattr(job.pipeline, "forget_image", None)
            if callable(forget):
                forget()
            self._photo_key = key
        shown = {p.person_id: p for p in job.kept}
        timings: dict = {}
        redecode_ms = 0.0
        for person_id, key, colour, old in job.redecodes:  # the decoder alone, on the kept features
            result = _finished(job.pipeline, job.pipeline.redecode(old, list(key[2]), mode=key[1]), job.camera, key[3])
            stage = result.timings_ms.get("total", 0.0)
            redecode_ms += stage
            shown[person_id] = person_shown(person_id, key, colour, result, stage)
        if job.redecodes:
            timings = {"decoder+MHR": redecode_ms, CACHED_DECODER_STAGE: redecode_ms, "total": redecode_ms}
        if job.runs:
            intrinsics = None if job.camera is None else job.camera.intrinsics
            results = job.pipeline.run_people(job.image, [box for _, box, _, _ in job.runs], intrinsics, mode=job.mode,
                                              prompts=[list(key[2]) for _, _, key, _ in job.runs])
            timings = dict(results[0].timings_ms, **({CACHED_DECODER_STAGE: redecode_ms} if job.redecodes else {}))
            timings["total"] += redecode_ms
            for (person_id, _box, key, colour), result in zip(job.runs, results):
                result = _finished(job.pipeline, result, job.camera, height_m=key[3])
                shown[person_id] = person_shown(person_id, key, colour, result, timings.get("total", 0.0))
        people = [shown[i] for i in job.order if i in shown]
        ran = tuple(r[0] for r in job.runs) + tuple(r[0] for r in job.redecodes)
        return make_bundle(job.id, people, job.image_id, job.submitted_at, ran=ran,
                           timings_ms=timings, selected=job.selected)


def _finished(pipeline, result, camera, height_m):
    """A person's result as the window shows it: the camera's source noted, a known height applied."""
    if camera is not None:
        result.camera_source = camera.source
    if height_m is not None:
        from ..pipeline.metric_scale import rest_height_m, scale_to_height

        result = scale_to_height(result, height_m, rest_height_m(pipeline.model, result))
    return result


class _ProgressRelay(QObject):
    """Carries a running load's progress lines to the UI thread (queued: it lives there).
    It has no parent, so a job that outlives its window still has somewhere to say things."""

    progress = Signal(int, str)  # job id, message


class InferenceController(QObject):
    """Feeds the pool one job at a time; all its methods run on the UI thread."""

    resultReady = Signal(object)  # ResultBundle (only the newest request's)
    inferenceFailed = Signal(str, bool)  # message, user_error
    modelLoaded = Signal(object)  # LoadedPipeline
    modelFailed = Signal(str, bool)
    loadCancelled = Signal()
    loadProgress = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._runner = JobRunner()
        self._relay = _ProgressRelay()
        self._relay.progress.connect(self._on_progress)
        self._idle = threading.Event()  # no job is executing on the pool
        self._idle.set()
        self._started = threading.Event()  # the last job dispatched has begun on the pool
        self._closing = threading.Event()  # shut down: jobs not begun yet are skipped
        self._warned: set[tuple] = set()  # job warnings already logged (see _on_warning)
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

    def request_inference(self, image: np.ndarray, runs, image_id: int, mode: str = "body", kept=(),
                          order=None, selected: int = 0, camera=None, redecodes=()) -> int:
        """Run `runs` ((person id, box, result key, colour) each) on the photo and show them with the
        `kept` results (PersonShown) in `order` (default: kept, then runs)."""
        runs, kept = tuple(runs), tuple(kept)
        if order is None:
            order = tuple(p.person_id for p in kept) + tuple(r[0] for r in runs) + tuple(r[0] for r in redecodes)
        job = Job(next(self._ids), "infer", image=image, runs=runs, kept=kept, order=tuple(order),
                  selected=selected, camera=camera, redecodes=tuple(redecodes), image_id=image_id, mode=mode)
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
        """Take no more jobs and wait for the running one; False if it still runs after
        `timeout_ms` (a model load or a long CPU inference cannot be interrupted): it then
        finishes on its pool thread by itself and its result goes nowhere."""
        self._closing.set()
        self.pending_infer = self.pending_load = None
        if not self._started.is_set():
            # superqt starts a job one timer tick after it is asked to, a tick this thread
            # cannot give while it waits here; seeing `_closing`, the job will skip itself.
            return True
        return self._idle.wait(timeout_ms / 1000)

    def is_running(self) -> bool:
        """Whether a job is executing on the pool right now (the window's exit asks)."""
        return self._started.is_set() and not self._idle.is_set()

    # -- plumbing ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self.running is None and not self._closing.is_set():
            job = None
            if self.pending_load is not None:
                job, self.pending_load = self.pending_load, None
            elif self.pending_infer is not None and self.pipeline is not None:
                job, self.pending_infer = self.pending_infer, None
                job.pipeline = self.pipeline
            if job is not None:
                self.running = job
                self._start(job)
        self._emit_busy()

    def _start(self, job: Job) -> None:
        # The job gets what it needs, not the controller: the window (and this object with
        # it) may be gone before a long load ends.
        runner, relay, idle, started, closing = self._runner, self._relay, self._idle, self._started, self._closing

        def say(message: str) -> None:
            relay.progress.emit(job.id, message)

        def work() -> Optional[Outcome]:
            started.set()  # before looking at `closing`: shutdown looks at them the other way round
            try:
                return None if closing.is_set() else runner.run(job, say)
            finally:
                idle.set()

        idle.clear()
        started.clear()
        create_worker(work, _connect={"returned": self._on_done, "errored": self._on_crash,
                                      "warned": self._on_warning}, _start_thread=True)

    def _emit_busy(self) -> None:
        self.busyChanged.emit(self.busy)

    @Slot(int, str)
    def _on_progress(self, job_id: int, message: str) -> None:
        if job_id == self.latest_load_id:
            self.loadProgress.emit(message)

    @Slot(object)
    def _on_warning(self, args: tuple) -> None:
        # superqt catches a job's warnings (under an "always" filter, with `showwarning` swapped
        # for its signal, so they must not be issued again: that would come straight back
        # here). Log them as Python's default filter would show them: once per place, and not
        # the kinds it hides (a library's DeprecationWarning).
        message, category, filename, lineno = args[:4]
        key = (category, str(message), filename, lineno)
        if not issubclass(category, HIDDEN_WARNINGS) and key not in self._warned:
            self._warned.add(key)
            log.warning("%s", warnings.formatwarning(message, category, filename, lineno).rstrip())

    @Slot(object)
    def _on_crash(self, exc: BaseException) -> None:
        # JobRunner.run catches everything, so this means the plumbing itself broke.
        log.error("background job crashed", exc_info=(type(exc), exc, exc.__traceback__))
        self.running = None
        self._dispatch()

    @Slot(object)
    def _on_done(self, outcome: Optional[Outcome]) -> None:
        self.running = None
        if outcome is None:
            return  # skipped: it began after the shutdown
        job = outcome.job
        if job.kind == "load":
            if job.cancelled or job.id != self.latest_load_id:
                pass  # cancelled or superseded: discard (the previous model stays)
            elif outcome.error:
                self._log_failure("model load", outcome)
                self.modelFailed.emit(outcome.error, outcome.user_error)
            elif outcome.value is not None:
                self.loaded = outcome.value
                self.pipeline = outcome.value.pipeline
                self.modelLoaded.emit(outcome.value)
        else:
            if job.id != self.latest_infer_id:
                self.dropped += 1  # a newer request exists: this result is stale
            elif outcome.error:
                self._log_failure("inference", outcome)
                self.inferenceFailed.emit(outcome.error, outcome.user_error)
            else:
                outcome.value.shown_ms = (time.perf_counter() - job.submitted_at) * 1e3
                self.resultReady.emit(outcome.value)
        self._dispatch()

    def _log_failure(self, what: str, outcome: Outcome) -> None:
        self.last_error = outcome.error
        if outcome.details:  # an unexpected error: the traceback is for whoever reads the log
            log.error("%s failed: %s\n%s", what, outcome.error, outcome.details.rstrip())
