"""The people of a photo as the window holds them, Qt-free: each person's box, where it came from
and its colour, plus the rules for which results are still good after an edit.

A person is immutable; an edit makes a new tuple of people (so Undo / Redo keep whole lists and
a result can say exactly which box it was run with). No people means the whole photo is run as
one person (WHOLE_PHOTO), as the single-box window always did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Optional, Sequence

from ..box_overlap import box_iou

Box = tuple[float, float, float, float]
WHOLE_PHOTO = 0  # the id of the implicit person when the list is empty
MAX_PEOPLE = 64  # what the window keeps; a detector finding more is capped with a message
SOURCES = ("user", "detector", "command line", "sample")


@dataclass(frozen=True)
class Person:
    id: int  # stable while the photo is open (1, 2, …; never reused)
    box: Optional[Box]  # photo pixels; None only for WHOLE_PHOTO
    source: str = "user"  # see SOURCES
    score: Optional[float] = None  # the detector's score, when it found this person
    colour: int = 0  # index into the person colours (export/mesh_render.person_colour)
    height_m: Optional[float] = None  # "this person is H m tall" (None: not known, the model's own size)
    prompts: tuple = ()  # pipeline.keypoint_prompts.KeypointPrompt: keypoints the user placed

    def moved(self, box: Box) -> "Person":
        return replace(self, box=box)

    @property
    def origin(self) -> str:
        """What the JSON and the list say of where the box came from: the score, or who drew it."""
        return f"detector {self.score:.2f}" if self.score is not None else self.source


People = tuple[Person, ...]


def whole_photo_person() -> Person:
    return Person(WHOLE_PHOTO, None, "whole photo")


def people_to_run(people: People) -> People:
    """Who a run covers: the listed people, or the whole photo when there are none."""
    return people if people else (whole_photo_person(),)


def free_colour(people: Iterable[Person]) -> int:
    """The lowest colour index nobody uses (deleting a person frees its colour)."""
    used = {p.colour for p in people}
    colour = 0
    while colour in used:
        colour += 1
    return colour


def result_key(person: Person, mode: str, camera: tuple = ()) -> tuple:
    """What a person's result depends on: a result made with another key is stale. `camera`: the
    photo's intrinsics as a tuple (a new field of view re-runs everyone)."""
    return (person.box, mode, person.prompts, person.height_m, camera)


def with_prompt(person: Person, prompt, limit: int) -> Person:
    """`person` with `prompt` placed (replacing one on the same keypoint); a UserError past the
    model's limit of prompts per pass."""
    from ..pipeline.keypoint_prompts import check_prompt_count

    others = tuple(q for q in person.prompts if q.index != prompt.index)
    check_prompt_count(len(others) + 1, limit, f"person {person.id}")
    return replace(person, prompts=others + (prompt,))


def near_duplicates(people: People, threshold: float = 0.7) -> dict[int, list[int]]:
    """For each person whose box overlaps another's by more than `threshold` (IoU), the ids of the
    others: the window warns and keeps both (the user decides which one to delete)."""
    found: dict[int, list[int]] = {}
    boxed = [p for p in people if p.box is not None]
    for i, a in enumerate(boxed):
        for b in boxed[i + 1:]:
            if box_iou(a.box, b.box) > threshold:
                found.setdefault(a.id, []).append(b.id)
                found.setdefault(b.id, []).append(a.id)
    return found


def merge_detections(people: People, boxes: Sequence[Box], scores: Sequence[float], first_id: int,
                     overlap: float = 0.7) -> tuple[People, int]:
    """The list after a detection: the people the user drew stay, earlier detections are replaced
    by the new ones, and a detection on top of a drawn box (IoU > `overlap`) is left out (the
    user's box wins). Returns (people, how many detections were added)."""
    kept = tuple(p for p in people if p.source != "detector")
    added, next_id = [], first_id
    for box, score in zip(boxes, scores):
        if any(p.box is not None and box_iou(p.box, box) > overlap for p in kept):
            continue
        if len(kept) + len(added) >= MAX_PEOPLE:
            break
        colour = free_colour(kept + tuple(added))
        added.append(Person(next_id, tuple(float(v) for v in box), "detector", float(score), colour))
        next_id += 1
    return kept + tuple(added), len(added)
