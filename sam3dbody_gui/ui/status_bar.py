"""The status bar: the latest message (coloured by its level) and, on the right, the box, a
running light and the model in use. It observes the AppState; nothing else writes to it."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from . import style
from .state import AppState

INFO_SECONDS = 8  # errors stay until the next message


class StatusBar(QStatusBar):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.box_label = QLabel("")
        self.busy_label = QLabel("")
        self.export_label = QLabel("")  # an export running on its worker
        self.addPermanentWidget(self.export_label)
        self.model_label = QLabel("no model")
        self.addPermanentWidget(self.box_label)
        self.addPermanentWidget(self.busy_label)
        self.addPermanentWidget(self.model_label)
        state.message.connect(self.show_message)
        state.busyChanged.connect(self._show_busy)
        state.boxChanged.connect(self._show_box)
        state.imageChanged.connect(self._show_box)
        state.modelChanged.connect(self._show_model)

    def show_message(self, text: str, level: str) -> None:
        colour = {"error": style.ERROR, "warning": style.WARNING}.get(level, style.TEXT_DIM)
        self.setStyleSheet(f"QStatusBar {{ color: {colour}; }}")
        self.showMessage(text, 0 if level == "error" else INFO_SECONDS * 1000)

    def _show_busy(self, busy: bool) -> None:
        self.busy_label.setText("● running" if busy else "")
        self.busy_label.setStyleSheet(f"color: {style.ACCENT};" if busy else "")

    def show_export_busy(self, busy: bool) -> None:
        self.export_label.setText("● exporting" if busy else "")
        self.export_label.setStyleSheet(f"color: {style.MESH};" if busy else "")

    def _show_box(self) -> None:
        s = self.state
        b = s.box
        n = len(s.people)
        who = f"{n} people · person {s.selected} " if n > 1 and s.selected is not None else ""
        if s.image is None:
            self.box_label.setText("")
        elif not s.people:
            h, w = s.image_hw
            self.box_label.setText(f"box: whole image ({w}×{h})")
        elif b is None:
            self.box_label.setText(f"{n} people · none selected")
        else:
            self.box_label.setText(f"{who}box: {b[0]:.0f}, {b[1]:.0f} – {b[2]:.0f}, {b[3]:.0f} "
                                   f"({b[2] - b[0]:.0f}×{b[3] - b[1]:.0f})")

    def _show_model(self) -> None:
        m = self.state.model
        if m.loaded:
            self.model_label.setText(("⚠ " if m.synthetic else "") + f"{m.short_name} · {m.backend_label}")
            self.model_label.setStyleSheet(f"color: {style.WARNING};" if m.synthetic else "")
        elif m.loading:
            self.model_label.setText("loading model…")
        else:
            self.model_label.setText("no model")
        self._show_box()
