"""The video panel's id list: one row per person of the pass (after the id fixes), in their
colour, with the frames they are in; the check box keeps them. Select two and Merge (a person
lost and found again under a new id), select one and Split at the current frame (two people
whose ids swapped where they crossed: split both, then merge the halves the right way round).
Thin: it says what was asked and shows what it is given."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from .frame_layer import id_colour

ID_ROLE = Qt.ItemDataRole.UserRole


def _swatch(track_id: int) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*id_colour(track_id)))
    return QIcon(pixmap)


class IdList(QWidget):
    keepToggled = Signal(int, bool)
    mergeRequested = Signal(int, int)
    splitRequested = Signal(int)
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setAccessibleName("People (track ids)")
        self.list.setToolTip("Check to keep a person · select two to merge · select one to split at this frame")
        self.list.setMinimumHeight(90)
        self.merge = QPushButton("Merge")
        self.merge.setToolTip("The two selected ids are one person (under the lower id)")
        self.split = QPushButton("Split here")
        self.split.setToolTip("From the current frame on, the selected id is a new person")
        self.reset = QPushButton("Reset")
        self.reset.setToolTip("Undo every keep, merge and split")
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        for b in (self.merge, self.split, self.reset):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._filling = False
        self.list.itemChanged.connect(self._on_item)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.merge.clicked.connect(self._merge)
        self.split.clicked.connect(self._split)
        self.reset.clicked.connect(self.resetRequested)
        self._update_buttons()

    def set_ids(self, frames_by_id: dict, kept: Optional[frozenset] = None) -> None:
        """Rows for {id: frames}; `kept` None: everyone."""
        selected = set(self.selected())
        self._filling = True
        self.list.clear()
        for pid, frames in sorted(frames_by_id.items()):
            item = QListWidgetItem(_swatch(pid), f"id {pid}  ·  {frames} frame{'s' if frames != 1 else ''}")
            item.setData(ID_ROLE, int(pid))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = kept is None or pid in kept
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.list.addItem(item)
            item.setSelected(pid in selected)
        self._filling = False
        self._update_buttons()

    def ids(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def selected(self) -> list[int]:
        return sorted(item.data(ID_ROLE) for item in self.list.selectedItems())

    def kept(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def _on_item(self, item: QListWidgetItem) -> None:
        if not self._filling:
            self.keepToggled.emit(item.data(ID_ROLE), item.checkState() == Qt.CheckState.Checked)

    def _merge(self) -> None:
        chosen = self.selected()
        if len(chosen) == 2:
            self.mergeRequested.emit(*chosen)

    def _split(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1:
            self.splitRequested.emit(chosen[0])

    def _update_buttons(self) -> None:
        n = len(self.selected())
        self.merge.setEnabled(n == 2)
        self.split.setEnabled(n == 1)
        self.reset.setEnabled(self.list.count() > 0)
