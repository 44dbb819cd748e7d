"""The four panels with their tool buttons, in two rows whose columns stay aligned:

    ┌ photo + box + overlay ─────────┬ 3-D mesh (OpenGL) ───────────┐
    ├ model input + feature PCA ─────┼ latency ─────────────────────┤
    └────────────────────────────────┴──────────────────────────────┘

Each view observes the AppState by itself; the grid only lays them out and keeps the overlay
slider and the keypoints box showing the settings.

Rows: the top row (the photo, where the user works) gets TOP_SHARE of the height, the bottom row
the rest but never less than its panels need (in full mode the latency cards keep room for the
hand stages, so a result never moves the divider). Dragging the divider changes the share. The
share is of the height with the banner's row included (`reference`): news appearing above the
panels takes its room from the bottom row, so the photo keeps its size under the pointer.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtWidgets import QCheckBox, QLabel, QSlider, QSplitter, QStackedWidget, QWidget

from .feature_view import FeatureView
from .latency_view import LatencyView
from .mesh_view import MeshView
from .people_panel import PeoplePanel
from .photo_view import PhotoView
from .state import AppState
from .widgets import Panel, tool_button

VIEW_BUTTONS = (("front", "Front", "Front view (1, Ctrl+1)"), ("side", "Side", "Side view (2, Ctrl+2)"),
                ("three_quarter", "¾", "Three-quarter view (3, Ctrl+3)"), ("reset", "Reset", "Reset the view (R, Ctrl+0)"))
TOP_SHARE = 0.58


def _set_quietly(widget, setter: str, getter: str, value) -> None:
    if getattr(widget, getter)() != value:
        widget.blockSignals(True)
        getattr(widget, setter)(value)
        widget.blockSignals(False)


class PanelGrid(QSplitter):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.state = state
        self.photo = PhotoView(state)
        self.features = FeatureView(state)
        self.mesh = MeshView(state)
        self.latency = LatencyView(state)

        self.people = PeoplePanel(state)
        self.photo_split = QSplitter(Qt.Orientation.Horizontal)  # the photo and its people list
        self.photo_split.addWidget(self.photo)
        self.photo_split.addWidget(self.people)
        self.photo_split.setStretchFactor(0, 1)
        self.photo_split.setStretchFactor(1, 0)
        self.photo_split.setChildrenCollapsible(True)
        self.photo_split.setSizes([800, 190])
        self.photo_stack = QStackedWidget()  # the photo, or a clip's video panel (video_mode.py)
        self.photo_stack.addWidget(self.photo_split)
        self.photo_panel = Panel("Photo", self.photo_stack, "drag to add a person's box · click one to select it")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Mesh overlay opacity ([ and ] change it)")
        self.opacity.setAccessibleName("Overlay opacity")
        opacity_label = QLabel("Overlay")
        opacity_label.setObjectName("dim")
        opacity_label.setBuddy(self.opacity)
        self.keypoints_box = QCheckBox("Keypoints")
        self.keypoints_box.setToolTip("Show the 70 2-D keypoints (K)")
        self.photo_panel.add_tool(opacity_label)
        self.photo_panel.add_tool(self.opacity)
        self.photo_panel.add_tool(self.keypoints_box)
        self.whole_button = self.photo_panel.add_tool(tool_button("Whole image", "Remove every box: use the whole photo"))
        self.photo_tools = (opacity_label, self.opacity, self.keypoints_box, self.whole_button)  # the photo's alone

        self.feature_panel = Panel("Features", self.features, "what the backbone sees")
        self.mesh_panel = Panel("3-D mesh", self.mesh, "drag to orbit")
        self.view_buttons = {}
        for key, text, tip in VIEW_BUTTONS:
            b = self.mesh_panel.add_tool(tool_button(text, tip))
            b.clicked.connect(lambda _=False, k=key: self.mesh.set_view(k))
            self.view_buttons[key] = b
        self.wire_button = self.mesh_panel.add_tool(tool_button("Wireframe", "Show the triangle edges", checkable=True))
        self.wire_button.toggled.connect(self.mesh.set_wireframe)

        self.latency_panel = Panel("Latency", self.latency, "per stage, last runs")
        self.latency.summaryChanged.connect(self.latency_panel.set_subtitle)
        clear = self.latency_panel.add_tool(tool_button("Clear", "Clear the latency history"))
        clear.clicked.connect(state.clear_history)

        self.top = QSplitter(Qt.Orientation.Horizontal)
        self.top.addWidget(self.photo_panel)
        self.top.addWidget(self.mesh_panel)
        self.bottom = QSplitter(Qt.Orientation.Horizontal)
        self.bottom.addWidget(self.feature_panel)
        self.bottom.addWidget(self.latency_panel)
        self.addWidget(self.top)
        self.addWidget(self.bottom)
        for sp in (self.top, self.bottom, self):
            sp.setChildrenCollapsible(False)
            sp.setHandleWidth(8)
        self.top.setSizes([1000, 1000])
        self.bottom.setSizes([1000, 1000])
        self.top_share = TOP_SHARE
        # The height the share is of: the grid's own, or (the window's) the grid's and the banner's.
        self.reference: Callable[[], int] = self.height
        self.splitterMoved.connect(self._rows_moved)
        # Keep the two columns aligned: moving one row's divider moves the other's.
        self.top.splitterMoved.connect(lambda *_: self._align_columns(self.top, self.bottom))
        self.bottom.splitterMoved.connect(lambda *_: self._align_columns(self.bottom, self.top))

        self.opacity.valueChanged.connect(lambda v: state.update_settings(overlay_opacity=v / 100.0))
        self.keypoints_box.toggled.connect(lambda on: state.update_settings(show_keypoints=bool(on)))
        state.settingsChanged.connect(self._show_settings)
        self._show_settings()

    # -- rows ------------------------------------------------------------------------------
    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self.place_rows()

    def place_rows(self) -> None:
        total = self.height() - self.handleWidth()
        if total <= 0:
            return
        top_min, bottom_min = self.top.minimumSizeHint().height(), self.bottom.minimumSizeHint().height()
        reference = max(total, self.reference() - self.handleWidth())
        bottom = max(bottom_min, total - round(self.top_share * reference))
        bottom = max(0, min(bottom, total - top_min))
        if self.sizes() != [total - bottom, bottom]:
            self.blockSignals(True)
            self.setSizes([total - bottom, bottom])
            self.blockSignals(False)

    def _rows_moved(self, *_args) -> None:
        top, bottom = self.sizes()
        if top + bottom > 0:
            self.top_share = top / max(top + bottom, self.reference() - self.handleWidth())

    def restoreState(self, state: QByteArray) -> bool:  # noqa: N802 - Qt's name
        ok = super().restoreState(state)
        top, bottom = self.sizes()
        if ok and top + bottom > 0:
            self.top_share = min(0.85, max(0.3, top / (top + bottom)))
        return ok

    def splitters(self) -> dict[str, QSplitter]:
        """By the names their positions are saved under."""
        return {"rows": self, "top": self.top, "bottom": self.bottom, "photo": self.photo_split}

    def align_columns(self) -> None:
        self._align_columns(self.top, self.bottom)

    @staticmethod
    def _align_columns(source: QSplitter, target: QSplitter) -> None:
        if target.sizes() != source.sizes():
            target.blockSignals(True)
            target.setSizes(source.sizes())
            target.blockSignals(False)

    def _show_settings(self) -> None:
        s = self.state.settings
        _set_quietly(self.opacity, "setValue", "value", round(s.overlay_opacity * 100))
        _set_quietly(self.keypoints_box, "setChecked", "isChecked", s.show_keypoints)
