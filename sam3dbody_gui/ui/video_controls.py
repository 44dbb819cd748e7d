"""The video panel's column of controls: the source (a file or the camera), who is in the clip
(the detector every k frames, or the user's boxes on the first frame), the pass (Process /
Cancel, progress, rate), the id list, the motion (smoothing, keypoints) and the exports. Widgets
only, in a scroll area (a short window scrolls the column): the panel wires them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QRadioButton, QScrollArea, QSizePolicy, QSlider, QSpinBox, QStyle,
                               QVBoxLayout, QWidget)

from .video_exports import KINDS
from .video_ids import IdList

SIDE_WIDTH = 270


class VideoControls(QScrollArea):
    def __init__(self, smoothing: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        side = QWidget()
        col = QVBoxLayout(side)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(8)
        self.open_button = QPushButton("Open video…")
        self.camera_button = QPushButton("Camera")
        self.camera_button.setCheckable(True)
        self.camera_button.setToolTip("The live camera as the source (newest frame processed, older ones dropped)")
        row = QHBoxLayout()
        row.addWidget(self.open_button, 1)
        row.addWidget(self.camera_button)
        col.addLayout(row)

        who = QGroupBox("People")
        form = QVBoxLayout(who)
        form.setSpacing(4)
        self.detect_radio = QRadioButton("Detector, every")
        self.boxes_radio = QRadioButton("My boxes on the first frame")
        self.boxes_radio.setToolTip("Drag on the first frame to draw each person's box; right-click one to remove it")
        group = QButtonGroup(self)
        group.addButton(self.detect_radio)
        group.addButton(self.boxes_radio)
        self.detect_radio.setChecked(True)
        self.every = QSpinBox()
        self.every.setRange(1, 120)
        self.every.setSuffix(" frame(s)")
        self.every.setToolTip("Run the detector on every k-th frame; the frames between carry each box")
        line = QHBoxLayout()
        line.addWidget(self.detect_radio)
        line.addWidget(self.every, 1)
        form.addLayout(line)
        form.addWidget(self.boxes_radio)
        self.clear_boxes = QPushButton("Clear boxes")
        form.addWidget(self.clear_boxes)
        col.addWidget(who)

        run = QGroupBox("Pass")
        grid = QVBoxLayout(run)
        grid.setSpacing(4)
        self.process_button = QPushButton("Process")
        self.process_button.setObjectName("primary")
        self.cancel_button = QPushButton("Cancel")
        row = QHBoxLayout()
        row.addWidget(self.process_button, 1)
        row.addWidget(self.cancel_button, 1)
        grid.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no clip")
        self.rate = QLabel(" ")
        self.rate.setObjectName("dim")
        grid.addWidget(self.progress)
        grid.addWidget(self.rate)
        col.addWidget(run)

        ids = QGroupBox("Ids")
        box = QVBoxLayout(ids)
        self.ids = IdList()
        box.addWidget(self.ids)
        col.addWidget(ids, 1)

        motion = QGroupBox("Motion")
        mform = QFormLayout(motion)
        self.smooth = QSlider(Qt.Orientation.Horizontal)
        self.smooth.setRange(0, 100)
        self.smooth.setValue(int(round(smoothing * 100)))
        self.smooth.setToolTip("Smoothing over time: 0 off, 1 strong (the One-Euro filter on the pose)")
        self.smooth_label = QLabel(f"{smoothing:.2f}")
        srow = QHBoxLayout()
        srow.addWidget(self.smooth, 1)
        srow.addWidget(self.smooth_label)
        mform.addRow("Smoothing", srow)
        self.keypoints = QCheckBox("Show keypoints")
        mform.addRow(self.keypoints)
        col.addWidget(motion)

        export = QGroupBox("Export")
        egrid = QVBoxLayout(export)
        egrid.setSpacing(4)
        self.export_buttons = {}
        for i in range(0, len(KINDS), 2):
            row = QHBoxLayout()
            for kind in list(KINDS)[i:i + 2]:
                b = QPushButton(KINDS[kind].label)
                b.setToolTip(f"Save the clip's motion as {KINDS[kind].filters}")
                self.export_buttons[kind] = b
                row.addWidget(b, 1)
            egrid.addLayout(row)
        col.addWidget(export)
        self.setWidget(side)
        self.setWidgetResizable(True)
        # Room for the scroll bar, so that a short window scrolls the column instead of covering it.
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.setFixedWidth(SIDE_WIDTH + bar + 4)
        side.setMinimumWidth(SIDE_WIDTH)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
