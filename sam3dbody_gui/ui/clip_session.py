"""The open clip and the work on it, for the video panel: a model with signals, no widgets.

    session = ClipSession()
    info = session.open(path)          # UserError: one line for the banner (corrupt, unsupported)
    session.request_frame(i)           # → frameReady(ShownFrame), decoded (and drawn) on a worker
    session.process(pipeline, detector)  # → progress, frameProcessed, passFinished, motionReady
    session.cancel()                   # the frames done stay in the work file: process() resumes

Three kinds of background job, on superqt workers, each never more than one at a time:
  * show: decode frame i (the session's own VideoReader, used by one job at a time) and draw its
    people's mesh layer. Latest wins: a request while one runs replaces the pending one (never
    a queue while scrubbing), and a result whose clip was closed since is dropped;
  * pass: ClipProcessor over the clip (a second reader), into the WorkFile the command line
    would use for the same clip, model and settings (video/work_settings.py); a cancelled or
    crashed pass resumes from it. The frames already there come back first (`resumed`);
  * motion: once the pass is complete, and again when the smoothing or the ids change
    (latest wins): `clip_motion`, what the exports write.
The people shown at a frame: the motion's (ClipMotion.at) once it is made, before that the
pipeline's own results as they arrive (the last RAW_CACHE frames kept), and for older frames of
the pass the same results rebuilt from the work file's record (motion.rerig, strength 0).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import create_worker

from ..errors import UserError
from ..video.clip_processor import ClipOptions
from ..video.tracking import IdFixes
from .clip_jobs import PassRelay, deliver_to, guarded, pass_job, rebuilt
from .frame_layer import ShownFrame, shown_frame

RAW_CACHE = 120  # frames of the pipeline's own results kept for display while the pass runs
# A pass holds a pool thread for minutes; Qt's pool has as many as the CPU has cores (2 on a
# small machine), which would leave the frame display and the window's own jobs waiting.
MIN_POOL_THREADS = 4


@dataclass(frozen=True)
class PassOptions:
    """What the user chose: the detector every k frames, or their boxes on the first frame."""

    use_detector: bool = True
    detect_every: int = 1
    boxes: tuple = ()
    max_people: int = 20
    max_frames: Optional[int] = None

    def clip_options(self) -> ClipOptions:
        return ClipOptions(boxes=() if self.use_detector else tuple(tuple(map(float, b)) for b in self.boxes),
                           detect_every=max(int(self.detect_every), 1), max_people=self.max_people,
                           max_frames=self.max_frames)


class ClipSession(QObject):
    opened = Signal(object)  # ClipInfo
    closed = Signal()
    frameReady = Signal(object)  # ShownFrame (rgb None: the frame does not decode)
    progress = Signal(int, int, float)  # frames done, total, frames/s computed this run
    frameProcessed = Signal(int, bool)  # frame index, skipped (it does not decode)
    frameComputed = Signal(int)  # a frame just run through the pipeline (the view may follow)
    processingChanged = Signal(bool)
    passFinished = Signal(object)  # ClipPass (complete or cancelled)
    motionReady = Signal(object)  # ClipMotion
    idsChanged = Signal(object)  # {id: frames} after the fixes
    problem = Signal(str)
    note = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), MIN_POOL_THREADS))
        self._relay = PassRelay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.resumed.connect(self._on_resumed)
        self._relay.frame.connect(self._on_frame)
        self._relay.skipped.connect(self._on_skipped)
        self._relay.note.connect(lambda gen, m: gen == self._gen and self.note.emit(m))
        self.work_dir: Optional[Path] = None  # None: the user cache, as the command line
        self.precision = "auto"  # what the window asked for (part of the work file's key)
        self.options = PassOptions()
        self.smoothing = 0.5
        self.fixes = IdFixes()
        self.info = None
        self.path: Optional[Path] = None
        self.work_path: Optional[Path] = None
        self.records: dict[int, dict] = {}
        self.motion = None
        self.last_pass = None
        self.model = None  # the pipeline's model of the last pass (rebuilding, motion)
        self.backend = ""
        self.shows = 0  # show jobs run (tests: a scrub runs far fewer than it asks)
        self._gen = 0
        self._reader = None
        self._raw: OrderedDict[int, list] = OrderedDict()
        self._show_busy = False
        self._show_pending: Optional[tuple] = None
        self._retire = None  # a closed clip's reader, still in use by the running show job
        self._show_reader = None  # the reader the running show job uses
        self.last_computed: Optional[tuple] = None  # (frame index, rgb) the pass did last
        self._known: set[int] = set()  # the raw ids seen so far
        self._cancel = threading.Event()
        self._processing = False  # a pass of this clip runs
        self._pass_alive = False  # a pass runs on a worker, maybe one of a closed clip still stopping
        self._motion_busy = False
        self._motion_pending = False

    # -- the clip --------------------------------------------------------------------------------
    def open(self, path: Path):
        """Open a clip (UserError for one that cannot be read); the previous one is closed."""
        from ..video.reader import VideoReader

        reader = VideoReader(Path(path))  # raises before anything of the open clip changes
        if reader.frame_at(0) is None:
            reader.close()
            raise UserError(f"cannot read the video {path}: its first frame does not decode")
        self.close()
        self._reader, self.path, self.info = reader, Path(path), reader.info
        self.opened.emit(self.info)
        return self.info

    def close(self) -> None:
        self.cancel()
        self._gen += 1  # what the old clip's jobs send back is dropped
        if self._reader is not None:
            reader, self._reader = self._reader, None
            if self._show_busy and reader is self._show_reader:
                self._retire = reader  # the running show job still reads it: closed when it ends
            else:
                reader.close()
        self.info = self.path = self.work_path = self.motion = self.last_pass = None
        self.records, self.fixes = {}, IdFixes()
        self.last_computed = None
        self._raw.clear()
        self._show_pending = None
        self._motion_pending = False
        self._processing = False
        self.closed.emit()

    @property
    def is_open(self) -> bool:
        return self._reader is not None

    @property
    def processing(self) -> bool:
        return self._processing

    # -- showing a frame ---------------------------------------------------------------------------
    def people_at(self, index: int):
        """(people, record to rebuild them from): what is known now of the people at a frame."""
        if self.motion is not None:
            return self.motion.at(index), None
        if index in self._raw:
            return self._raw[index], None
        record = self.records.get(index)
        if record is not None and record.get("people") and self.model is not None:
            return None, record
        return [], None

    def request_frame(self, index: int, rgb=None) -> None:
        """Show frame `index` (`rgb`: already decoded). Latest wins."""
        if self._reader is None:
            return
        people, record = self.people_at(index)
        self._show_pending = (self._gen, int(index), rgb, people, record)
        self._next_show()

    def _next_show(self) -> None:
        if self._show_busy or self._show_pending is None:
            return
        gen, index, rgb, people, record = self._show_pending
        self._show_pending = None
        self._show_busy = True
        self.shows += 1
        reader, model, hw, backend = self._reader, self.model, self.info.size_hw, self.backend
        self._show_reader = reader

        def job():
            frame = None
            if rgb is None:
                frame = reader.frame_at(index)
                if frame is None:
                    return ShownFrame(index, None, note=f"frame {index} does not decode")
            picture = rgb if frame is None else frame.rgb
            who = people if record is None else rebuilt(model, record, hw, backend)
            return shown_frame(index, picture, who, reader.time_of(index))

        create_worker(guarded(job), _connect={"returned": deliver_to(self, lambda out: self._on_shown(gen, out))},
                      _start_thread=True)

    def _on_shown(self, gen: int, outcome) -> None:
        self._show_busy = False
        if self._retire is not None:
            self._retire.close()
            self._retire = None
        ok, value = outcome
        if gen == self._gen:
            if ok:
                self.frameReady.emit(value)
            else:
                self.problem.emit(value)
        self._next_show()

    # -- the pass ----------------------------------------------------------------------------------
    def work_settings(self, pipeline, detector) -> dict:
        """The work file's key, as the command line makes it for the same clip and settings."""
        from ..video.clip_processor import pass_settings
        from ..video.work_settings import detector_settings, model_settings

        model = model_settings(pipeline.loaded.files.folder, pipeline, self.precision)
        folder = getattr(detector, "folder", None) if detector is not None else None
        return pass_settings(self.options.clip_options(), model, detector_settings(folder))

    def process(self, pipeline, detector=None) -> bool:
        """Start (or resume) the pass; False with a `problem` when it cannot start."""
        if self._reader is None:
            self.problem.emit("Open a video first")
            return False
        if self._processing:
            return False
        if self._pass_alive:
            self.problem.emit("The previous clip's pass is still stopping: try again in a moment")
            return False
        if pipeline is None:
            self.problem.emit("Load a model first (Settings): the pass runs the model on every frame")
            return False
        if not self.options.use_detector:
            detector = None
        try:
            if self.options.use_detector and detector is None:
                raise UserError("no person detector is loaded: download it (Models ▸ Detector), or choose "
                                "'My boxes' and draw the people's boxes on the first frame")
            options = self.options.clip_options()
            options.check(with_detector=detector is not None)
            settings = self.work_settings(pipeline, detector)
        except UserError as exc:
            self.problem.emit(str(exc))
            return False
        from ..video.work_settings import default_work_dir

        self._cancel = threading.Event()
        self._processing = self._pass_alive = True
        self.model, self.backend = pipeline.model, pipeline.backbone.info.label()
        self.motion = None
        self.processingChanged.emit(True)
        gen = self._gen
        work = guarded(pass_job, self.path, self.work_dir or default_work_dir(), settings, options, pipeline,
                        detector, self._cancel, self._relay, gen)
        create_worker(work, _connect={"returned": deliver_to(self, lambda out: self._on_pass(gen, out))}, _start_thread=True)
        return True

    def cancel(self) -> None:
        """Stop the pass after the frame it is on (what is done stays in the work file)."""
        self._cancel.set()

    def _on_resumed(self, gen: int, records, path: str) -> None:
        if gen != self._gen:
            return
        self.work_path = Path(path)
        self.records = {r["frame"]: r for r in records}
        for r in records:
            self.frameProcessed.emit(r["frame"], bool(r.get("skipped")))
        self._ids_changed()

    def _on_frame(self, gen: int, frame, record, results) -> None:
        if gen != self._gen:
            return
        self.records[frame.index] = record
        self._raw[frame.index] = list(zip([p["id"] for p in record["people"]], results))
        while len(self._raw) > RAW_CACHE:
            self._raw.popitem(last=False)
        self.last_computed = (frame.index, frame.rgb)
        self.frameProcessed.emit(frame.index, False)
        self.frameComputed.emit(frame.index)
        if any(p["id"] not in self._known for p in record["people"]):
            self._ids_changed()

    def _on_progress(self, gen: int, done: int, total: int, fps: float) -> None:
        if gen == self._gen:
            self.progress.emit(done, total, fps)

    def _on_skipped(self, gen: int, record: dict) -> None:
        if gen == self._gen:
            self.records[record["frame"]] = record
            self.frameProcessed.emit(record["frame"], True)

    def _on_pass(self, gen: int, outcome) -> None:
        self._pass_alive = False
        if gen != self._gen:
            return
        self._processing = False
        self.processingChanged.emit(False)
        ok, value = outcome
        if not ok:
            self.problem.emit(value)
            return
        self.last_pass = value
        self.records = {r["frame"]: r for r in value.records}
        self._ids_changed()
        self.passFinished.emit(value)
        if value.complete:
            self.update_motion()

    def forget_pass(self) -> None:
        """The pass's settings changed (another work file): forget its frames here (its work file
        stays: choosing the same settings again resumes it)."""
        if self._processing:
            return
        self.records, self.motion, self.last_pass, self.work_path, self.last_computed = {}, None, None, None, None
        self.fixes = IdFixes()
        self._raw.clear()
        self._ids_changed()

    # -- ids and motion --------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.last_pass is not None and self.last_pass.complete

    def ordered_records(self) -> list[dict]:
        return [self.records[i] for i in sorted(self.records)]

    def _ids_changed(self) -> None:
        from ..video.id_edits import id_frames

        try:
            ids = id_frames(self.ordered_records(), self.fixes)
        except UserError as exc:  # frames found since make a fix impossible: forget the fixes
            self.fixes = IdFixes()
            self.problem.emit(f"{exc}; the id changes were undone")
            ids = id_frames(self.ordered_records(), self.fixes)
        self._known = {p["id"] for r in self.records.values() for p in r.get("people", ())}
        self.idsChanged.emit(ids)

    def edit_ids(self, edit) -> bool:
        """Apply `edit(fixes, records) -> fixes` (video/id_edits.py); False with a problem when
        the records refuse it."""
        try:
            self.fixes = edit(self.fixes, self.ordered_records())
        except UserError as exc:
            self.problem.emit(str(exc))
            return False
        self._ids_changed()
        if self.complete:
            self.update_motion()
        return True

    def set_smoothing(self, strength: float) -> None:
        self.smoothing = float(strength)
        if self.complete:
            self.update_motion()

    def update_motion(self) -> None:
        """Make the motion again (latest wins) from the complete pass."""
        if not self.complete or self.model is None:
            return
        if self._motion_busy:
            self._motion_pending = True
            return
        from ..video.motion import clip_motion

        self._motion_busy, self._motion_pending = True, False
        gen, records, info = self._gen, self.ordered_records(), self.info
        args = (records, self.model, info.size_hw, info.fps)
        kwargs = dict(strength=self.smoothing, fixes=self.fixes, backend=self.backend)
        create_worker(guarded(lambda: clip_motion(*args, **kwargs)),
                      _connect={"returned": deliver_to(self, lambda out: self._on_motion(gen, out))}, _start_thread=True)

    def _on_motion(self, gen: int, outcome) -> None:
        self._motion_busy = False
        if self._motion_pending:  # asked again meanwhile (this clip's, since close() forgets it)
            self.update_motion()
            return
        if gen != self._gen:
            return
        ok, value = outcome
        if not ok:
            self.problem.emit(value)
            return
        self.motion = value
        self.motionReady.emit(value)

    @property
    def motion_current(self) -> bool:
        """The motion matches the smoothing and ids chosen (what the exports need)."""
        return self.motion is not None and not self._motion_busy and not self._motion_pending
