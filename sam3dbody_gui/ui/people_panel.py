"""The list beside the photo: one row per person (their colour, number, where the box came from,
their status and warnings), with Detect people / Remove / Remove all; under it the selected
person's warnings in full and known height, and the photo's camera (its field of view, where it
came from: EXIF, the default, or typed in). Picking a row selects the person on the photo; the
photo's selection shows here. A thin view: the window says what each person's status is
(`status_of`) and applies the edits, the state holds who there is."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QToolButton, QVBoxLayout, QWidget)

from . import style
from .photo_painting import person_qcolour
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


def field_of_view_deg(intrinsics, image_hw) -> float:
    """The angle the photo's longer side spans (the 35 mm convention's side)."""
    import math

    return math.degrees(2 * math.atan(max(image_hw) / 2 / float(intrinsics[0, 0])))


def focal_for_fov(fov_deg: float, image_hw) -> float:
    import math

    return max(image_hw) / 2 / math.tan(math.radians(fov_deg) / 2)


CAMERA_WORDS = {"default": "the default (no EXIF focal length)", "user": "typed in"}


def _set_quietly(spin: QDoubleSpinBox, value: float) -> None:
    if abs(spin.value() - value) > 1e-9:
        spin.blockSignals(True)
        spin.setValue(value)
        spin.blockSignals(False)


class PeoplePanel(QWidget):
    detectClicked = Signal()
    removeClicked = Signal()  # the selected person
    removeAllClicked = Signal()
    heightEdited = Signal(object)  # the selected person's height in metres, or None (not known)
    fovEdited = Signal(float)  # the photo's field of view in degrees, typed in
    cameraReset = Signal()  # back to the photo's own camera (EXIF or the default)
    promptRemoved = Signal(int)  # the selected person's prompt on this keypoint (-1: all)
    placeToggled = Signal(int)  # the MHR70 index to place with the next click on the photo (-1: none)

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
        self.warnings = QLabel("")  # the selected person's warnings, in full
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(f"color: {style.WARNING};")
        self.warnings.setAccessibleName("Warnings of the selected person")
        self.prompts = QListWidget(self)  # the selected person's keypoint prompts
        self.prompts.setAccessibleName("Keypoint prompts of the selected person")
        self.prompts.setToolTip("Keypoints you placed (drag a shown keypoint on the photo). Delete removes one.")
        self.prompts.setMaximumHeight(64)
        self.keypoint_pick = QComboBox()  # the MHR70 names, filled once a model ran (torch is loaded then)
        self.keypoint_pick.setToolTip("A keypoint by name: choose it, press Place, then click where it is on the photo")
        self.keypoint_pick.setAccessibleName("Keypoint to place")
        self.place = QToolButton()
        self.place.setText("Place")
        self.place.setCheckable(True)
        self.place.setToolTip("The next click on the photo puts the chosen keypoint there (drag to refine)")
        self.remove_prompt = QToolButton()
        self.remove_prompt.setText("Remove prompt")
        self.remove_prompt.setToolTip("Take the chosen prompt away (all of them if none is chosen)")
        self.height = QDoubleSpinBox()
        self.height.setRange(0.0, 2.8)
        self.height.setDecimals(2)
        self.height.setSingleStep(0.01)
        self.height.setSuffix(" m")
        self.height.setSpecialValueText("not known")
        self.height.setToolTip("This person's standing height: the body and its distance are scaled together, so the "
                               "mesh stays on the photo (0: not known, the model's own size)")
        self.fov = QDoubleSpinBox()
        self.fov.setRange(5.0, 150.0)
        self.fov.setDecimals(1)
        self.fov.setSuffix("°")
        self.fov.setToolTip("The camera's field of view across the photo's longer side (type one in if the photo's "
                            "EXIF has no focal length)")
        self.fov_reset = QToolButton()
        self.fov_reset.setText("↺")
        self.fov_reset.setToolTip("Back to the photo's own camera (EXIF focal length, or the default)")
        self.camera_source = QLabel("")
        self.camera_source.setObjectName("dim")
        self.camera_source.setWordWrap(True)
        fov_row = QHBoxLayout()
        fov_row.setContentsMargins(0, 0, 0, 0)
        fov_row.addWidget(self.fov, 1)
        fov_row.addWidget(self.fov_reset)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Height", self.height)
        form.addRow("Camera", fov_row)
        form.addRow("", self.camera_source)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.detect)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.warnings)
        pick_row = QHBoxLayout()
        pick_row.setContentsMargins(0, 0, 0, 0)
        pick_row.addWidget(self.keypoint_pick, 1)
        pick_row.addWidget(self.place)
        layout.addLayout(pick_row)
        layout.addWidget(self.prompts)
        layout.addWidget(self.remove_prompt)
        layout.addLayout(buttons)
        layout.addLayout(form)
        self.setMinimumWidth(150)
        self.height.valueChanged.connect(lambda v: self.heightEdited.emit(None if v < 0.3 else round(float(v), 3)))
        self.fov.valueChanged.connect(lambda v: self.fovEdited.emit(float(v)))
        self.fov_reset.clicked.connect(self.cameraReset)
        self.remove_prompt.clicked.connect(self._remove_prompt)
        self.place.toggled.connect(lambda on: self.placeToggled.emit(self.keypoint_pick.currentIndex() if on else -1))
        self.detect.clicked.connect(self.detectClicked)
        self.remove.clicked.connect(self.removeClicked)
        self.remove_all.clicked.connect(self.removeAllClicked)
        self.list.currentRowChanged.connect(self._row_picked)
        for signal in (state.boxChanged, state.resultChanged, state.imageChanged, state.cameraChanged):
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
        person = s.selected_person
        said = self.status_of(person.id)[1] if person is not None else ()
        self.warnings.setText("\n".join(f"⚠ {w}" for w in said))
        self.warnings.setVisible(bool(said))
        if person is not None and self.keypoint_pick.count() == 0 and s.bundle is not None:
            from ..pipeline.keypoint_prompts import MHR70_NAMES  # torch is loaded by now: a model ran

            self.keypoint_pick.addItems(list(MHR70_NAMES))
        self.keypoint_pick.setEnabled(person is not None and self.keypoint_pick.count() > 0)
        self.place.setEnabled(self.keypoint_pick.isEnabled())
        prompts = person.prompts if person is not None else ()
        self.prompts.clear()
        for q in prompts:
            item = QListWidgetItem(f"{q.name} → {q.x:.0f}, {q.y:.0f}")
            item.setData(Qt.ItemDataRole.UserRole, q.index)
            self.prompts.addItem(item)
        self.prompts.setVisible(bool(prompts))
        self.remove_prompt.setVisible(bool(prompts))
        self.height.setEnabled(person is not None)
        _set_quietly(self.height, 0.0 if person is None or person.height_m is None else person.height_m)
        self.fov.setEnabled(has_photo)
        self.fov_reset.setEnabled(s.camera is not None and s.camera.source == "user")
        if s.camera is not None and has_photo:
            _set_quietly(self.fov, round(field_of_view_deg(s.camera.intrinsics, s.image_hw), 1))
            self.camera_source.setText(f"from {CAMERA_WORDS.get(s.camera.source, s.camera.source)}")
        else:
            self.camera_source.setText("")

    def _remove_prompt(self) -> None:
        item = self.prompts.currentItem()
        self.promptRemoved.emit(-1 if item is None else int(item.data(Qt.ItemDataRole.UserRole)))

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
