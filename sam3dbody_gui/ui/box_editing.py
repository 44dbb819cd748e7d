"""The people's boxes as the user edits them: every change from the photo (draw, drag, keys,
Delete), the people list, the menus, the box dialog and a detection goes through here, which
checks it (AppState), says why a box is refused, and records the edit for Undo / Redo
(AppState.box_history holds (people, selected) snapshots; Ctrl+Z and Ctrl+Shift+Z). A whole drag
is one step: the snapshot before the drag is recorded when the mouse lets go (and nothing when
Esc put everything back). Selecting a person is not an edit.

Qt-light: it only relays signals; the window shows refusals and re-runs the model on `changed`.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from .people import People
from .state import AppState, Box

_NO_DRAG = object()


class BoxEditor(QObject):
    refused = Signal(str)  # why the box was refused (the window shows it as "box" news)
    accepted = Signal()  # a box was taken (a refusal shown before can go)
    changed = Signal()  # the boxes changed: run the model again (debounced by the window)
    historyChanged = Signal()  # what Undo / Redo can do changed

    def __init__(self, state: AppState, photo, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.photo = state, photo
        self._drag_before = _NO_DRAG
        photo.boxEdited.connect(self.set_box)
        photo.personDrawn.connect(self.add_person)
        photo.personClicked.connect(state.select)
        photo.personDeleted.connect(self.remove_person)
        photo.selectionStepped.connect(self.step_selection)
        photo.dragStarted.connect(self._drag_started)
        photo.dragCancelled.connect(self._drag_cancelled)
        photo.dragFinished.connect(self._drag_finished)
        state.imageChanged.connect(self.historyChanged)

    @property
    def history(self):
        return self.state.box_history

    # -- edits ---------------------------------------------------------------------------
    def set_box(self, box: Optional[Box], record: bool = True) -> bool:
        """The selected person's box becomes `box` (a new person if nobody is selected; None:
        remove everyone, the whole image is used); False, with a message, if refused."""
        return self._edit(lambda: self.state.set_box(box), record)

    def add_person(self, box: Box, source: str = "user", score: Optional[float] = None) -> bool:
        return self._edit(lambda: self.state.add_person(box, source, score) is not None)

    def remove_person(self, person_id: Optional[int] = None) -> bool:
        """Remove a person (default: the selected one)."""
        person_id = self.state.selected if person_id is None else person_id
        if person_id is None:
            return False
        return self._edit(lambda: self.state.remove_person(person_id))

    def set_people(self, people: People, selected: Optional[int]) -> bool:
        """Replace the whole list as one step (a detection, "Remove all")."""
        return self._edit(lambda: (self.state.set_people(people, selected), True)[1])

    def edit(self, apply, record: bool = True) -> bool:
        """Any change of the people (`apply()` → accepted?), checked, recorded and re-run like a box edit."""
        return self._edit(apply, record)

    def _edit(self, apply, record: bool = True) -> bool:
        before = self.state.snapshot()
        if not apply():
            self.refused.emit(self.state.last_message[0])
            return False
        self.accepted.emit()
        if self.state.snapshot() != before:
            if record and self._drag_before is _NO_DRAG:
                self.history.record(before, self.state.snapshot())
                self.historyChanged.emit()
            self.changed.emit()
        return True

    def step_selection(self, step: int) -> None:
        people = self.state.people
        if not people:
            return
        ids = [p.id for p in people]
        at = ids.index(self.state.selected) if self.state.selected in ids else -1
        self.state.select(ids[(at + step) % len(ids)])

    # -- undo ----------------------------------------------------------------------------
    def undo(self) -> bool:
        return self._step(self.history.undo, "Nothing to undo", "Undone")

    def redo(self) -> bool:
        return self._step(self.history.redo, "Nothing to redo", "Redone")

    def _step(self, take, nothing: str, done: str) -> bool:
        if self.state.image is None or self.photo.dragging:
            return False
        ok, snapshot = take(self.state.snapshot())
        if not ok:
            self.state.post(nothing, "warning")
            return False
        self.historyChanged.emit()
        people, selected = snapshot
        self.state.set_people(people, selected)
        self.changed.emit()
        self.state.post(f"{done}: {_describe(self.state)}")
        return True

    # -- drags ---------------------------------------------------------------------------
    def _drag_started(self) -> None:
        self._drag_before = self.state.snapshot()

    def _drag_cancelled(self) -> None:
        if self._drag_before is not _NO_DRAG and self._drag_before != self.state.snapshot():
            self.state.set_people(*self._drag_before)
            self.changed.emit()

    def _drag_finished(self) -> None:
        before, self._drag_before = self._drag_before, _NO_DRAG
        if before is not _NO_DRAG and before[0] != self.state.people:  # selecting alone is no edit
            self.history.record(before, self.state.snapshot())
            self.historyChanged.emit()


def _describe(state: AppState) -> str:
    if not state.people:
        return "no boxes, the whole photo is used"
    if len(state.people) > 1:
        return f"{len(state.people)} people"
    x1, y1, x2, y2 = state.people[0].box
    return f"the box is {x1:.0f}, {y1:.0f} – {x2:.0f}, {y2:.0f}"
