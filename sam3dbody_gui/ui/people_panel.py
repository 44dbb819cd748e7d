"""The list beside the photo: one row per person (their colour, number, where the box came from,
their status and warnings), with Detect people / Remove / Remove all. Picking a row selects the
person on the photo; the photo's selection shows here. A thin view: the window says what each
person's status is (`status_of`), the state holds who there is."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from . import style
from .photo_view import person_qcolour
from .state import AppState

SWATCH = 14


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(SWATCH, SWATCH)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(colour)
    p.drawRoundedRect(1, 1, SWATCH - 2, SWATCH - 2, 3, 3)
    p.end()
    return QIcon(pixmap)


class PeoplePanel(QWidget):
    detectClicked = Signal()
    removeClicked = Signal()  # the selected person
    removeAllClicked = Signal()

    def __init__(self, state: AppState, status_of: Callable[[int], tuple[str, tuple]] = lambda i: ("", ()),
                 parent: QWidget | None = None) -> None:
        """`status_of(person id)` → (a short status line, the person's warnings)."""
        super().__init__(parent)
        self.state, self.status_of = state, status_of
        self.setAccessibleName("People in the photo")
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(SWATCH, SWATCH))
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list.setAccessibleName("People")
        self.list.setStyleSheet(f"QListWidget {{ background: {style.PANEL}; border: none; }}"
                                "QListWidget::item { padding: 3px 2px; }")
        self.detect = QPushButton("Detect people")
        self.detect.setToolTip("Find every person in the photo with the person detector (Ctrl+D)")
        self.remove = QPushButton("Remove")
        self.remove.setToolTip("Remove the selected person (Delete)")
        self.remove_all = QPushButton("Remove all")
        self.remove_all.setToolTip("Remove every box: the whole photo is used")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.remove)
        buttons.addWidget(self.remove_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.detect)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.setMinimumWidth(150)
        self.detect.clicked.connect(self.detectClicked)
        self.remove.clicked.connect(self.removeClicked)
        self.remove_all.clicked.connect(self.removeAllClicked)
        self.list.currentRowChanged.connect(self._row_picked)
        for signal in (state.boxChanged, state.resultChanged, state.imageChanged):
            signal.connect(self.refresh)
        self.refresh()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(190, 300)

    def refresh(self) -> None:
        """Rebuild the rows from the state (a handful of people: cheap)."""
        s = self.state
        self.list.blockSignals(True)
        self.list.clear()
        rows = s.people
        if not rows and s.image is not None:
            item = QListWidgetItem("Whole photo\n" + self._status_line(0))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip("No boxes: the whole photo is run as one person. Draw a box, or Detect people.")
            self.list.addItem(item)
        for person in rows:
            status, warnings = self.status_of(person.id)
            text = f"Person {person.id} · {person.origin}"
            if status:
                text += f"\n{status}"
            if warnings:
                text += f"\n⚠ {len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
            item = QListWidgetItem(_swatch(person_qcolour(person.colour)), text)
            item.setData(Qt.ItemDataRole.UserRole, person.id)
            x1, y1, x2, y2 = person.box
            tip = [f"Box {x1:.0f}, {y1:.0f} – {x2:.0f}, {y2:.0f}"] + [f"⚠ {w}" for w in warnings]
            item.setToolTip("\n".join(tip))
            if warnings:
                item.setForeground(QColor(style.WARNING))
            self.list.addItem(item)
            if person.id == s.selected:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        has_photo = s.image is not None
        self.detect.setEnabled(has_photo)
        self.remove.setEnabled(s.selected is not None)
        self.remove_all.setEnabled(bool(s.people))

    def _status_line(self, person_id: int) -> str:
        return self.status_of(person_id)[0]

    def _row_picked(self, row: int) -> None:
        item = self.list.item(row)
        if item is not None:
            person_id = item.data(Qt.ItemDataRole.UserRole)
            if person_id is not None:
                self.state.select(int(person_id))

    def row_texts(self) -> list[str]:
        """What the rows say (tests and the self-check read it)."""
        return [self.list.item(i).text() for i in range(self.list.count())]
