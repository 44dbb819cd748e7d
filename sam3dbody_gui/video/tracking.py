"""People found in each frame → stable ids through the clip, and the user's fixes to them.

The association is norfair's (BSD-3-Clause; the maintained fork `norfair-enough`, which runs on
NumPy 2 and needs neither OpenCV nor a GUI toolkit): a Kalman filter per person over the box's
two corners and a greedy match on 1 − IoU with the filter's prediction. The prediction carries
a person's velocity, so two people crossing keep their ids where a match on the last boxes alone
would swap them at the moment the boxes overlap most.

The fixes the user can make afterwards (the window's id list, `video --keep-ids/--merge-ids/
--swap-ids`) are a mapping (id, frame) → id applied to the finished pass: no frame is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from ..errors import UserError

# Match a detection to a track when their IoU (with the track's prediction) is above 1 − this.
MAX_IOU_DISTANCE = 0.9
# Frames a track survives without a detection (norfair's hit counter, in detector calls × period).
TRACK_MEMORY = 15


@dataclass(frozen=True)
class TrackedBox:
    id: int
    box: tuple[float, float, float, float]  # the detection's box (x1, y1, x2, y2), pixels
    score: Optional[float]


class PeopleTracker:
    """Detections of one frame at a time in, the people with their ids out. Deterministic: the
    same detections give the same ids, which is what lets a stopped run resume (the tracker is
    rebuilt by feeding it the stored detections again)."""

    def __init__(self, max_iou_distance: float = MAX_IOU_DISTANCE, memory: int = TRACK_MEMORY) -> None:
        from norfair import Tracker

        # initialization_delay 0: a person gets an id on the frame they are first seen (a short
        # clip has no frames to spare for confirming tracks).
        self._tracker = Tracker(distance_function="iou", distance_threshold=max_iou_distance,
                                hit_counter_max=memory, initialization_delay=0)

    def update(self, boxes: Sequence[Sequence[float]], scores: Sequence[Optional[float]] = (),
               period: int = 1) -> list[TrackedBox]:
        """The people matched to this frame's `boxes` (x1, y1, x2, y2), by id. `period`: frames
        since the previous call (a detector run every k-th frame)."""
        from norfair import Detection

        scores = list(scores) or [None] * len(boxes)
        detections = []
        for i, (box, score) in enumerate(zip(boxes, scores)):
            x1, y1, x2, y2 = (float(v) for v in box)
            points = np.array([[min(x1, x2), min(y1, y2)], [max(x1, x2), max(y1, y2)]])
            detections.append(Detection(points=points, data=i))
        objects = self._tracker.update(detections=detections or None, period=max(1, int(period)))
        out = []
        for obj in objects:
            last = obj.last_detection
            # A track matched now holds a copy of one of this frame's detections, stamped with the
            # track's age; one that was missed keeps an older copy (an older age).
            if obj.id is None or last is None or last.age != obj.age or not isinstance(last.data, int):
                continue
            i = last.data
            out.append(TrackedBox(int(obj.id), tuple(float(v) for v in boxes[i]), scores[i]))
        return sorted(out, key=lambda t: t.id)


# --- the user's fixes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IdFixes:
    """keep: the ids to keep (None: all). merge: (a, b) pairs, "b is a" (a track lost and found
    again under a new id). swap: (a, b, frame), "from `frame` on, a and b are each other" (two
    people whose ids crossed over). Swaps apply first, then merges, then keep."""

    keep: Optional[frozenset[int]] = None
    merge: tuple[tuple[int, int], ...] = ()
    swap: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)

    def any(self) -> bool:
        return self.keep is not None or bool(self.merge) or bool(self.swap)

    def map(self, person: int, frame: int) -> Optional[int]:
        """The id `person` has at `frame` after the fixes; None when it is not kept."""
        for a, b, start in self.swap:
            if frame >= start:
                person = b if person == a else a if person == b else person
        merged = dict((b, a) for a, b in self.merge)
        seen = set()
        while person in merged and person not in seen:  # chains: 3 is 2, 2 is 1
            seen.add(person)
            person = merged[person]
        if self.keep is not None and person not in self.keep:
            return None
        return person


def apply_id_fixes(frames: Iterable[tuple[int, Sequence[int]]], fixes: IdFixes) -> dict[tuple[int, int], int]:
    """(frame, ids present) pairs → {(frame, old id): new id} for the people kept. Raises UserError
    when a merge would put two people of one frame under one id."""
    out: dict[tuple[int, int], int] = {}
    for frame, ids in frames:
        taken: dict[int, int] = {}
        for person in ids:
            new = fixes.map(person, frame)
            if new is None:
                continue
            if new in taken:
                raise UserError(f"ids {taken[new]} and {person} are both in frame {frame}: they are two people, "
                                f"so they cannot be merged into id {new}")
            taken[new] = person
            out[(frame, person)] = new
    return out


def parse_ids(text: Optional[str]) -> Optional[frozenset[int]]:
    """'1,3' → {1, 3}."""
    if text is None:
        return None
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--keep-ids takes ids separated by commas, e.g. 1,3; got {text!r}") from None
    if not ids:
        raise UserError("--keep-ids names no id")
    return ids


def parse_merges(items: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """['1:3'] → ((1, 3),): id 3 becomes id 1."""
    out = []
    for item in items or ():
        try:
            a, b = (int(v) for v in item.split(":"))
        except ValueError:
            raise UserError(f"--merge-ids takes A:B (B's frames become A's), e.g. 1:3; got {item!r}") from None
        if a == b:
            raise UserError(f"--merge-ids {item}: an id cannot be merged with itself")
        out.append((a, b))
    return tuple(out)


def parse_swaps(items: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    """['1:2@40'] → ((1, 2, 40),): from frame 40 on, ids 1 and 2 trade places."""
    out = []
    for item in items or ():
        try:
            pair, frame = item.split("@")
            a, b = (int(v) for v in pair.split(":"))
            start = int(frame)
        except ValueError:
            raise UserError(f"--swap-ids takes A:B@FRAME (from FRAME on, A and B trade ids), e.g. 1:2@40; "
                            f"got {item!r}") from None
        if a == b or start < 0:
            raise UserError(f"--swap-ids {item}: give two different ids and a frame ≥ 0")
        out.append((a, b, start))
    return tuple(out)
