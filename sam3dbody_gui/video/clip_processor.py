"""One pass over a clip: each frame's people found (detector + tracker, or boxes carried from the
frame before), run through the pipeline in one batch, and the frame's record appended to the
work file. What the command line runs and what the window's worker will run:

    work = WorkFile.open(work_dir, clip, pass_settings(...))
    done = ClipProcessor(pipeline, reader, options, work, detector).run(progress, cancel, on_frame)

`progress(done, total)` after each frame, `cancel()` polled before each (True: stop; the frames
done stay in the work file and the next run resumes after them), `on_frame(frame, record,
results)` with the pipeline's MeshResults of a frame just computed (what the window shows while
the pass runs). Nothing here writes an output: that happens once the pass is complete.

Which frames run the detector: every `detect_every`-th (by frame index, so a resumed run makes
the same choice), and any frame where nobody is tracked. The frames between carry each person's
box from their keypoints; the tracker hears of them only at the next detector frame (norfair's
`period`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import UserError
from .box_carry import box_around_keypoints
from .reader import Frame, VideoReader
from .tracking import PeopleTracker
from .work_file import WorkFile

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
OnFrame = Callable[[Frame, dict, list], None]
# What the work file keeps of a person in a frame: the pipeline's parameters, from which motion.py
# re-rigs the body (after smoothing), and the 2-D keypoints the next frame's box is carried from.
KEPT = {"pose_raw": "pred_pose_raw", "hand": "hand", "shape": "shape", "scale": "scale", "face": "face",
        "pred_cam": "pred_cam"}


@dataclass(frozen=True)
class ClipOptions:
    """What the pass does. `boxes`: the people's boxes on the first frame (no detector), in
    order: ids 1, 2, …. `detect_every`: run the detector on every k-th frame (with a detector)."""

    boxes: tuple[tuple[float, float, float, float], ...] = ()
    detect_every: int = 1
    min_score: float = 0.5
    max_people: int = 20
    max_frames: Optional[int] = None
    intrinsics: Optional[tuple[float, float, float, float]] = None  # fx, fy, cx, cy

    def check(self, with_detector: bool) -> None:
        if not with_detector and not self.boxes:
            raise UserError("give the people's boxes on the first frame (--bbox), or use the detector (--detect)")
        if self.detect_every < 1:
            raise UserError("--detect-every must be at least 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise UserError("--max-frames must be at least 1")
        if self.max_people < 1:
            raise UserError("--max-people must be at least 1")


def pass_settings(options: ClipOptions, model: dict, detector: Optional[dict]) -> dict:
    """What a frame's record depends on (the work file's key): `model` names the model and its
    runtime (folder, files, backend, precision, device), `detector` the detector's folder."""
    return {"model": model, "detector": detector, "boxes": [list(b) for b in options.boxes],
            "detect_every": options.detect_every if detector else None,
            "min_score": options.min_score if detector else None,
            "max_people": options.max_people if detector else None,
            "intrinsics": list(options.intrinsics) if options.intrinsics else None}


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, np.float32).reshape(-1)]


def person_record(person_id: int, box, source: str, score: Optional[float], result) -> dict:
    rec = {"id": int(person_id), "box": _floats(box), "source": source,
           "score": None if score is None else float(np.float32(score))}
    for key, name in KEPT.items():
        rec[key] = _floats(result.params[name])
    rec["cam_t"] = _floats(result.cam_t)
    rec["hand_box"] = _floats(result.hand_boxes)
    rec["keypoints_2d"] = _floats(result.keypoints_2d)
    return rec


@dataclass
class ClipPass:
    """What `ClipProcessor.run` did: `complete` when every frame to the end (or max_frames) is in
    the work file."""

    records: list[dict]
    complete: bool
    computed: int = 0  # frames run through the pipeline this time
    resumed: int = 0  # frames read back from an earlier run
    seconds: float = 0.0  # wall time of the computed frames, decoding included
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (frame, why) not decodable

    @property
    def fps(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


class ClipProcessor:
    def __init__(self, pipeline, reader: VideoReader, options: ClipOptions, work: WorkFile, detector=None) -> None:
        options.check(detector is not None)
        self.pipeline, self.reader, self.options, self.work, self.detector = pipeline, reader, options, work, detector
        self.intrinsics = None
        if options.intrinsics is not None:
            from ..pipeline.preprocess import intrinsics_from

            self.intrinsics = intrinsics_from(*options.intrinsics)
        self.tracker = PeopleTracker() if detector is not None else None
        self._previous: dict[int, np.ndarray] = {}  # id → keypoints of the last frame with people
        self._started = False  # a frame with people has been seen (the user's boxes are used up)
        self._last_detection: Optional[int] = None

    @property
    def total(self) -> int:
        count = self.reader.info.frame_count
        limit = self.options.max_frames
        return min(count, limit) if limit is not None and count else (limit or count)

    def _replay(self, record: dict) -> None:
        """The tracker and the carried boxes as they were after `record` (resume)."""
        if record.get("skipped"):
            return
        dets = record.get("detections")
        if dets is not None and self.tracker is not None:
            self.tracker.update([d[:4] for d in dets], [d[4] for d in dets], period=self._period(record["frame"]))
            self._last_detection = record["frame"]
        self._started = True
        self._previous = {p["id"]: np.asarray(p["keypoints_2d"], np.float64).reshape(-1, 2) for p in record["people"]}

    def _period(self, index: int) -> int:
        return 1 if self._last_detection is None else index - self._last_detection

    def _people(self, frame: Frame) -> tuple[list[tuple[int, tuple, str, Optional[float]]], Optional[list], list[int]]:
        """This frame's (id, box, source, score), the detections if the detector ran, and the ids lost."""
        hw = frame.rgb.shape[:2]
        if self.detector is not None and (frame.index % self.options.detect_every == 0 or not self._previous):
            found = self.detector.detect(frame.rgb, min_score=self.options.min_score,
                                         max_people=self.options.max_people)
            dets = [[*map(float, p.box_xyxy), float(p.score)] for p in found.people]
            tracked = self.tracker.update([d[:4] for d in dets], [d[4] for d in dets], period=self._period(frame.index))
            self._last_detection = frame.index
            lost = sorted(set(self._previous) - {t.id for t in tracked})
            return [(t.id, t.box, "detector", t.score) for t in tracked], dets, lost
        if not self._started:
            return [(i + 1, tuple(box), "user", None) for i, box in enumerate(self.options.boxes)], None, []
        people, lost = [], []
        for person, keypoints in self._previous.items():
            box = box_around_keypoints(keypoints, hw)
            if box is None:
                lost.append(person)
            else:
                people.append((person, box, "carried", None))
        return people, None, lost

    def run(self, progress: Progress = lambda done, total: None, cancel: Cancel = lambda: False,
            on_frame: Optional[OnFrame] = None, on_note: Callable[[str], None] = lambda m: None) -> ClipPass:
        from ..pipeline.box import validate_box

        limit = self.options.max_frames
        done = [r for r in self.work.in_order() if limit is None or r["frame"] < limit]
        for record in done:
            self._replay(record)
        result = ClipPass(records=list(done), complete=False, resumed=len(done))
        result.skipped = [(r["frame"], r["skipped"]) for r in done if r.get("skipped")]
        start = done[-1]["frame"] + 1 if done else 0
        total = self.total
        progress(len(done), total)

        def bad(index: int, why: str) -> None:
            if index in self.work:
                return
            record = {"frame": index, "time": self.reader.time_of(index), "skipped": why}
            self.work.append(record)
            result.records.append(record)
            result.skipped.append((index, why))
            on_note(f"frame {index} skipped: {why}")

        tick = time.perf_counter()  # a frame's time runs from the end of the one before: decoding counts
        for frame in self.reader.frames(start, limit, on_bad_frame=bad):
            if cancel():
                return result
            people, dets, lost = self._people(frame)
            hw = frame.rgb.shape[:2]
            for _, box, _, _ in people:
                validate_box(box, hw)
            results = self.pipeline.run_people(frame.rgb, [p[1] for p in people], self.intrinsics) if people else []
            record = {"frame": frame.index, "time": frame.time_s, "detections": dets,
                      "people": [person_record(pid, box, source, score, r)
                                 for (pid, box, source, score), r in zip(people, results)]}
            if lost:
                record["lost"] = lost
                on_note(f"frame {frame.index}: lost {', '.join(f'id {i}' for i in lost)}")
            self.work.append(record)
            record = self.work.records[frame.index]
            result.records.append(record)
            self._started = True
            self._previous = {p["id"]: np.asarray(p["keypoints_2d"], np.float64).reshape(-1, 2)
                              for p in record["people"]}
            result.computed += 1
            now = time.perf_counter()
            result.seconds += now - tick
            tick = now
            if on_frame is not None:
                on_frame(frame, record, results)
            progress(len(result.records), max(total, len(result.records)))
        result.complete = True
        result.records.sort(key=lambda r: r["frame"])
        return result
