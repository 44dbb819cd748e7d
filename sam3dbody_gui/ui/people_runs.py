"""Which people a run covers and what each person's row says: Qt-free.

Editing one box re-runs only that person: a person whose shown result was made with their
current key (box, mode) keeps it, the rest run, all as one batch. While a box is being dragged
only the dragged person runs (in the fast body mode); the others keep what they show, whatever
mode it was made in, and catch up when the drag ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from .people import WHOLE_PHOTO, people_to_run, result_key


@dataclass
class RunPlan:
    runs: tuple  # (person id, box, result key, colour) of each person to run (the key holds the height)
    kept: tuple  # PersonShown still good
    order: tuple  # every person's id, in the list's order
    selected: int
    redecodes: tuple = ()  # (person id, result key, colour, their shown MeshResult): only the prompts changed


def _only_prompts_changed(have, key: tuple) -> bool:
    """The same box, mode, height and camera: the decoder alone can run again on the kept features."""
    old = have.key
    return old[0] == key[0] and old[1] == key[1] and old[3:] == key[3:] and old[2] != key[2] and \
        have.result.decode_state is not None


def plan_run(state, mode: str, dragging: bool = False, force: bool = False) -> RunPlan:
    """`force`: run everyone (Run / F5, a new model), whatever they show."""
    people = people_to_run(state.people)
    bundle = state.current_bundle
    shown = bundle.people if bundle is not None else {}
    runs, kept, redecodes = [], [], []
    camera = state.camera_key
    for person in people:
        key = result_key(person, mode, camera=camera)
        have = shown.get(person.id)
        still_good = not force and have is not None and (have.key == key or (
            dragging and person.id != state.selected and have.box == person.box))
        if still_good:
            kept.append(have if have.colour == person.colour else replace(have, colour=person.colour))
        elif not force and have is not None and _only_prompts_changed(have, key):
            redecodes.append((person.id, key, person.colour, have.result))
        else:
            runs.append((person.id, person.box, key, person.colour))
    selected = state.selected if state.selected is not None else people[0].id
    return RunPlan(tuple(runs), tuple(kept), tuple(p.id for p in people), selected, tuple(redecodes))


@dataclass
class RunStatus:
    """What the window knows of each person's run, for their row in the list."""

    running: set = field(default_factory=set)  # ids in the request in flight or waiting
    failed: dict = field(default_factory=dict)  # id → why their last run failed

    def started(self, plan: RunPlan) -> None:
        self.running = {r[0] for r in plan.runs} | {r[0] for r in plan.redecodes}
        for person_id in self.running:
            self.failed.pop(person_id, None)

    def finished(self) -> None:
        self.running = set()

    def failed_run(self, message: str) -> None:
        for person_id in self.running:
            self.failed[person_id] = message
        self.running = set()

    def forget(self) -> None:
        self.running, self.failed = set(), {}

    def line(self, state, person_id: int) -> tuple[str, tuple]:
        """(status line, warnings) of a person."""
        bundle = state.current_bundle
        have = bundle.people.get(person_id) if bundle is not None else None
        warnings = have.warnings if have is not None else ()
        if person_id in self.running:
            return "running…", warnings
        if person_id in self.failed:
            return f"failed: {self.failed[person_id]}", ()
        if have is None:
            return "waiting", ()
        person = state.person(person_id)
        box = None if person_id == WHOLE_PHOTO else (person.box if person is not None else None)
        if have.box != box:
            return "box moved: waiting", warnings
        return f"done · {have.ran_ms:.0f} ms · {have.key[1]} mode", warnings


def describe_done(bundle, mode: Optional[str] = None) -> str:
    """The status bar's line for a finished run."""
    n_ran, n = len(bundle.ran), len(bundle.people)
    total = bundle.timings_ms.get("total", 0.0)
    if not n_ran:
        return f"Shown: {n} {'person' if n == 1 else 'people'} (nothing needed running)"
    if n == 1 and WHOLE_PHOTO in bundle.people:
        return f"Done on the whole photo: {total:.0f} ms in the model, {bundle.shown_ms:.0f} ms from request to screen"
    who = f"{n_ran} of {n} people" if n_ran != n else (f"{n} people" if n > 1 else "1 person")
    return f"Done: {who} in {total:.0f} ms in the model, {bundle.shown_ms:.0f} ms from request to screen"
