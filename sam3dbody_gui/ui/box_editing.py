"""The person box as the user edits it: every change from the photo (drag, keys, Delete), the
menus and the box dialog goes through `set_box`, which checks it (AppState.set_box), says why
a box is refused, and records the edit for Undo / Redo (AppState.box_history, Ctrl+Z and
Ctrl+Shift+Z). A whole drag is one step: the box before the drag is recorded when the mouse
lets go (and nothing when Esc put the box back).

Qt-light: it only relays signals; the window shows refusals and re-runs the model on `changed`.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal

from .state import AppState, Box

_NO_DRAG = object()


class BoxEditor(QObject):
    refused = Signal(str)  # why the box was refused (the window shows it as "box" news)
    accepted = Signal()  # a box was taken (a refusal shown before can go)
    changed = Signal()  # the box changed: run the model again (debounced by the window)
    historyChanged = Signal()  # what Undo / Redo can do changed

    def __init__(self, state: AppState, photo, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.photo = state, photo
        self._drag_before = _NO_DRAG
        photo.boxEdited.connect(self.set_box)
        photo.dragStarted.connect(self._drag_started)
        photo.dragFinished.connect(self._drag_finished)
        state.imageChanged.connect(self.historyChanged)

    @property
    def history(self):
        return self.state.box_history

    def set_box(self, box: Optional[Box], record: bool = True) -> bool:
        """Change the person box (None: the whole image); False, with a message, if refused."""
        before = self.state.box
        if not self.state.set_box(box):
            self.refused.emit(self.state.last_message[0])
            return False
        self.accepted.emit()
        if self.state.box != before:
            if record and self._drag_before is _NO_DRAG:
                self.history.record(before, self.state.box)
                self.historyChanged.emit()
            self.changed.emit()
        return True

    def undo(self) -> bool:
        return self._step(self.history.undo, "Nothing to undo", "Undone")

    def redo(self) -> bool:
        return self._step(self.history.redo, "Nothing to redo", "Redone")

    def _step(self, take, nothing: str, done: str) -> bool:
        if self.state.image is None or self.photo.dragging:
            return False
        ok, box = take(self.state.box)
        if not ok:
            self.state.post(nothing, "warning")
            return False
        self.historyChanged.emit()
        if not self.set_box(box, record=False):
            return False
        self.state.post(f"{done}: the box is {'the whole photo' if box is None else _describe(box)}")
        return True

    def _drag_started(self) -> None:
        self._drag_before = self.photo.drag_start_box

    def _drag_finished(self) -> None:
        before, self._drag_before = self._drag_before, _NO_DRAG
        if before is not _NO_DRAG and before != self.state.box:
            self.history.record(before, self.state.box)
            self.historyChanged.emit()


def _describe(box: Box) -> str:
    x1, y1, x2, y2 = box
    return f"{x1:.0f}, {y1:.0f} – {x2:.0f}, {y2:.0f}"
