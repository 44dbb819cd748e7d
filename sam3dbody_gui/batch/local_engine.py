"""The local engine: one process keeping one device busy.

    feeder ─▶ reader threads (hash, skip, decode) ─▶ people thread (detector) ─▶ main thread
    (the model: every person of a photo in one batch) ─▶ writer thread (files, manifest lines)
                                                          └▶ writer processes (mesh files)

Turning a mesh into file bytes holds the GIL: an OBJ of the real model's person (18,439
vertices) takes ~90 ms of one core, a GLB ~10 ms. So with `writers` > 1 the files are made and
written by that many worker processes (the writer thread hands them the jobs and appends their
lines in order); with 1, by the writer thread itself (small machines, tests: no process start).

A video is decoded by the feeder itself, frame after frame (decoding is sequential), each frame
handed on as a job of its own, like a photo.

Batches span photos: the people thread takes the photos already read (up to DETECT_BATCH) and
runs the detector once for all of them, and the main thread takes the photos already waiting (up
to PERSON_BATCH people, the largest batch bucket) and runs all their people as one batch
(photo_work.infer_many; full mode goes photo by photo). Neither ever waits to fill a batch: when
the model keeps up, a batch is the one photo there is; when it does not, photos queue and the
batches grow, which is when the GPU needs them (one photo of 2.5 people would leave it mostly
idle between launches).

On a GPU the detector is runtime/detector_fast.py's: its own CUDA stream, pinned uploads, one
graph replay and one host copy per batch, so the people thread overlaps the model stage instead
of queueing behind it (the plain detector cost 21-52 ms of host time a call and was the run's
bottleneck). Mesh files cost ~13 ms of a core per GLB person: at 300 persons/s that is about
four cores, hence `writers` processes (the CLI's default: half the cores, at most 8).

Every hand-over is a bounded queue, so a slow disk or a slow decoder holds the producers back
instead of filling memory, and at most READ_AHEAD + PEOPLE_AHEAD + one batch of decoded photos
exist at a time however long the run. The model runs in the main thread (where a GPU context and Ctrl+C both live); reading
and writing overlap with it, so the device does not wait for files. Torch releases the GIL in
its kernels, which is what lets threads overlap here. Jobs stay in input order end to end: the
manifest lists photos in the order they were given.

Ctrl+C (or SIGTERM, see cli/__init__.py): the readers stop, the photos already computed are
written, and their lines appended; nothing is half-written (each file is atomic, a photo's
lines go in one write) and the next run picks up where this one ended.
"""

from __future__ import annotations

import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO

from . import photo_work
from .video_work import video_jobs
from .inputs import Source
from .manifest import Manifest, write_parquet
from .progress import Progress, Tally, outcome
from .resume import sweep_temp_files
from .settings import BatchSettings, record_settings

READERS = 2  # decoding threads: PIL releases the GIL; a 1080p JPEG is ~5 ms, two feed ~400 photos/s
READ_AHEAD = 16  # photos hashed / decoded ahead of the detector, at most
PEOPLE_AHEAD = 16  # photos with their people found, waiting for the model, at most
DETECT_BATCH = 8  # photos a detector run takes at most
PERSON_BATCH = 16  # people a model batch takes at most (the largest batch bucket); one photo may have more
_POLL_S = 0.1
_END = object()


class _Stopped(Exception):
    """A thread's wait ended because the run is stopping."""


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Ready:
    """A job already read (a video frame), queued like a reader's future."""

    def __init__(self, job: photo_work.Job) -> None:
        self.job = job

    def result(self) -> photo_work.Job:
        return self.job


def prepare_output(out_dir: Path, settings: BatchSettings, log: Callable[[str], None]) -> Manifest:
    """OUTDIR ready for a run (both engines): created, a killed run's temp files removed, the
    settings recorded, the manifest opened (its torn last line cut off) with what is done."""
    from ..errors import UserError, describe_os_error

    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out_dir}: {describe_os_error(exc)}") from None
    swept = sweep_temp_files(out_dir)
    if swept:
        log(f"removed {swept} temporary file{'s' if swept > 1 else ''} left by an interrupted run")
    record_settings(out_dir, settings)
    return Manifest(out_dir)


def load_pipeline(settings: BatchSettings, log: Callable[[str], None]):
    from ..pipeline.build import build_pipeline

    pipe = build_pipeline(settings.model_dir, settings.device, settings.precision, backend=settings.backend,
                          progress=log)
    log(f"model: {settings.model_dir} (backbone: {pipe.backbone.info.label()}; decoder: {pipe.decoder_label})")
    return pipe


def load_person_detector(settings: BatchSettings, log: Callable[[str], None] = print):
    """On a GPU the batched fast path (CUDA graphs, resize on the device, its own stream; checked
    against the plain path when it loads, which it falls back to), on the CPU the plain one."""
    from ..device import resolve_device
    from ..runtime.detector_fast import load_batch_detector

    return load_batch_detector(settings.detector_dir, resolve_device(settings.device), log)


class _Run:
    def __init__(self, sources: Sequence[Source], settings: BatchSettings, out_dir: Path, manifest: Manifest,
                 progress: Progress, pipeline, detector, log: Callable[[str], None], readers: int,
                 writers: int = 1) -> None:
        self.sources, self.settings, self.out_dir = sources, settings, Path(out_dir)
        self.fp = settings.fingerprint()
        self.manifest, self.progress, self.log = manifest, progress, log
        self.pipeline, self.detector = pipeline, detector
        self.stop = threading.Event()
        self.failure: Optional[BaseException] = None
        self.slots = threading.Semaphore(READ_AHEAD)
        self.read_q: queue.Queue = queue.Queue(READ_AHEAD)
        self.people_q: queue.Queue = queue.Queue(PEOPLE_AHEAD)
        self.write_q: queue.Queue = queue.Queue(4)
        self.pool = ThreadPoolExecutor(max(1, readers), thread_name_prefix="batch-read")
        self.writers = max(1, writers)

    # -- waiting, stoppably ---------------------------------------------------------------
    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        raise _Stopped()

    def _thread(self, target, name: str) -> threading.Thread:
        def body():
            try:
                target()
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
                self.failure = self.failure or exc
                self.stop.set()

        # Daemon: a second Ctrl+C during the clean-up must still end the process.
        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        return t

    # -- the stages -----------------------------------------------------------------------
    def _slot(self) -> None:
        while not self.slots.acquire(timeout=_POLL_S):
            if self.stop.is_set():
                raise _Stopped()

    def _feed(self) -> None:
        for i, source in enumerate(self.sources):
            job = photo_work.Job(i, str(source.path), source.kind)
            if source.kind == "video":
                for one in video_jobs(job, self.fp, self.manifest.done):
                    self._slot()
                    self._put(self.read_q, _Ready(one))
                continue
            self._slot()
            self._put(self.read_q, self.pool.submit(photo_work.read, job, self.fp, self.manifest.done))
        self._put(self.read_q, _END)

    def _more(self, q: queue.Queue, first, room) -> tuple[list, object, bool]:
        """`first` and the items already waiting in `q` while `room(items, next)` says the next one
        fits: (the items, an item taken that did not fit or None, whether _END was taken). Never
        waits for an item."""
        items, extra, ended = [first], None, False
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                ended = True
                break
            if not room(items, item):
                extra = item
                break
            items.append(item)
        return items, extra, ended

    def _find_people(self) -> None:
        ended, extra = False, None
        while not ended:
            first = extra if extra is not None else self._get(self.read_q)
            if first is _END:
                break
            futures, extra, ended = self._more(self.read_q, first, lambda items, _: len(items) < DETECT_BATCH)
            jobs = []
            for future in futures:
                jobs.append(future.result())  # a reader's exception is a bug: it ends the run
                self.slots.release()
            if (any(not job.settled for job in jobs) and self.settings.people == "detect"
                    and self.detector is None):
                self.detector = load_person_detector(self.settings, self.log)
            for job in photo_work.find_people_many(jobs, self.settings, self.fp, self.detector):
                self._put(self.people_q, job)
        self._put(self.people_q, _END)

    def _write(self) -> None:
        # Not stoppable: on Ctrl+C it still writes what was computed, up to the _END it is sent.
        if self.writers == 1:
            while (job := self.write_q.get()) is not _END:
                self._record(job, photo_work.write(job, self.out_dir, self.settings, self.fp))
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: this process has threads (and maybe a CUDA context), which a fork copies
        # half-way. The workers ignore SIGINT: Ctrl+C reaches the whole process group, and the
        # main process decides what still gets written.
        with ProcessPoolExecutor(self.writers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_ignore_sigint) as pool:
            pending: deque = deque()
            while True:
                job = self.write_q.get()
                if job is not _END:
                    settled = job.skipped or job.outcome is not None  # no files: not worth a trip
                    pending.append((job, None if settled else pool.submit(
                        photo_work.write, job, self.out_dir, self.settings, self.fp)))
                while pending and (job is _END or len(pending) > 2 * self.writers or pending[0][1] is None
                                   or pending[0][1].done()):
                    done, future = pending.popleft()
                    self._record(done, future.result() if future is not None else
                                 photo_work.write(done, self.out_dir, self.settings, self.fp))
                if job is _END:
                    return

    def _record(self, job: photo_work.Job, lines: list[dict]) -> None:
        self.manifest.append(lines)
        self.progress.update(job.kind, *outcome(lines), job.skipped)

    def run(self) -> None:
        threads = [self._thread(self._feed, "batch-feed"), self._thread(self._find_people, "batch-people")]
        writer = self._thread(self._write, "batch-write")
        def room(jobs, job) -> bool:
            return sum(map(photo_work.persons_in, jobs)) + photo_work.persons_in(job) <= PERSON_BATCH

        try:
            ended, extra = False, None
            while not ended:
                first = extra if extra is not None else self._get(self.people_q)
                if first is _END:
                    break
                jobs, extra, ended = self._more(self.people_q, first, room)
                if any(not job.settled for job in jobs):
                    if self.pipeline is None:
                        self.pipeline = load_pipeline(self.settings, self.log)
                    jobs = photo_work.infer_many(jobs, self.pipeline, self.settings, self.fp)
                for job in jobs:  # each handed on as soon as it is done
                    self._put_for_writer(job, writer)
        except _Stopped:
            pass
        finally:
            self.stop.set()  # readers and detector stop; the writer finishes what it was given
            for t in threads:
                t.join()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self._put_for_writer(_END, writer)
            writer.join()
        if self.failure is not None:
            raise self.failure

    def _put_for_writer(self, item, writer: threading.Thread) -> None:
        while writer.is_alive():
            try:
                self.write_q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        if self.failure is not None:  # the writer died (e.g. the disk is full): say why
            raise self.failure


def run_local(sources: Sequence[Source], settings: BatchSettings, out_dir: Path, *, pipeline=None, detector=None,
              readers: int = READERS, writers: int = 1, parquet: bool = False, log: Callable[[str], None] = print,
              progress_out: TextIO = sys.stderr, bar: Optional[bool] = None) -> Tally:
    """Run the batch in this process. `pipeline` / `detector`: already loaded ones (tests, or a
    caller running several batches); by default they load on the first photo that needs them,
    so a rerun with everything done loads nothing. `writers`: processes making the files (1:
    the writer thread does)."""
    settings = settings if settings.identities else settings.checked()
    manifest = prepare_output(out_dir, settings, log)
    tally = Tally(inputs=len(sources))
    progress = Progress(tally, progress_out, bar)
    try:
        _Run(sources, settings, out_dir, manifest, progress, pipeline, detector, log, readers, writers).run()
    finally:
        progress.close()
        manifest.close()
    if parquet:
        written = write_parquet(out_dir)
        log(f"parquet manifest: {written}" if written else "no Parquet manifest: pyarrow is not installed "
            "(pip install pyarrow)")
    return tally
