"""Panel 4: live latency. The newest run's per-stage times (big numbers, with the median of
the recent runs), a rolling plot of the last runs, and what ran them (backend, precision,
device, and a plain warning when the weights are random). In full mode (the setting) a second,
compact row holds the hand-refinement stages (hand crops, hand backbone, hand decoder, body
re-run); its room is there from the moment the mode is chosen, whether the newest run refined
the hands or not (a box drag runs body mode), so results never change the panel's size. Where
the panel is short, the plot gives way first (cards keep their full height, stage_tile.py)."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import Qt, Signal  # noqa: E402
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget  # noqa: E402

from . import style  # noqa: E402
from .stage_tile import StageTile, format_ms  # noqa: E402
from .state import AppState  # noqa: E402
from .widgets import FittedBadge  # noqa: E402

from ..pipeline.result import FULL_MODE_STAGES as HAND_STAGES  # noqa: E402 - full mode only
from ..pipeline.result import CACHED_DECODER_STAGE, STAGES  # noqa: E402

PLOT_MIN_PX = 80  # below this the plot's labels run into each other


class LatencyView(QWidget):
    summaryChanged = Signal(str)  # "3 runs · display prep … · box → screen …" (the panel's subtitle)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Latency per stage and history")
        self.tiles: dict[str, StageTile] = {}
        tiles = QHBoxLayout()
        tiles.setSpacing(8)
        for stage in STAGES:
            self.tiles[stage] = StageTile(stage, parent=self)
            tiles.addWidget(self.tiles[stage])
        # Full mode's hand stages: a second, compact row, there while the mode is full (a hint
        # fills it until a run refines the hands), so a result never makes the panel taller.
        self.hand_row = QStackedWidget(self)
        self.hand_hint = QLabel("Hand stages: after the next full-mode run (a box drag runs body mode)",
                                self.hand_row)
        self.hand_hint.setObjectName("dim")
        self.hand_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hand_page = QWidget(self.hand_row)
        hand = QHBoxLayout(hand_page)
        hand.setContentsMargins(0, 0, 0, 0)
        hand.setSpacing(8)
        for stage in HAND_STAGES:
            tile = self.tiles[stage] = StageTile(stage, compact=True, parent=hand_page)
            policy = tile.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            tile.setSizePolicy(policy)
            hand.addWidget(tile)
        self.hand_row.addWidget(self.hand_hint)
        self.hand_row.addWidget(hand_page)  # a stack is as tall as its tallest page, shown or not
        self.hand_row.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.value_labels = {stage: tile.value for stage, tile in self.tiles.items()}
        self.stat_labels = {stage: tile.stat for stage, tile in self.tiles.items()}

        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(background=style.PANEL)
        self.plot.setMinimumSize(0, 0)  # the first to give way; hidden when too short to read
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        item = self.plot.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.15)
        for axis in ("left", "bottom"):
            ax = item.getAxis(axis)
            ax.setPen(pg.mkPen(style.BORDER))
            ax.setTextPen(pg.mkPen(style.TEXT_DIM))
        item.setLabel("left", "ms", color=style.TEXT_DIM)
        item.setLabel("bottom", "run", color=style.TEXT_DIM)
        item.getAxis("bottom").setTickSpacing(levels=[(10, 0), (1, 0)])
        item.setXRange(1, 10, padding=0.02)
        item.setYRange(0, 100, padding=0)
        # No legend: the tiles above carry the same colour swatches.
        self.curves = {}
        for stage in STAGES + HAND_STAGES:
            width = 2.4 if stage == "total" else 1.6
            self.curves[stage] = self.plot.plot(
                [], [], name=style.STAGE_NAMES[stage], pen=pg.mkPen(style.STAGE_COLOURS[stage], width=width),
                symbol="o", symbolSize=4, symbolBrush=style.STAGE_COLOURS[stage], symbolPen=None,
                connect="finite")  # body-mode runs have no hand stages: gaps, not zeros

        self.backend_badge = FittedBadge(self)  # a longer status shortens it, never widens the panel
        self.backend_badge.set_variants("no model")
        self.backend_badge.setObjectName("badge")
        self.warn_badge = QLabel("RANDOM WEIGHTS (demo model)", self)
        self.warn_badge.setToolTip("The demo model has random weights: its mesh is not a prediction.\n"
                                   "Real weights: facebook/sam-3d-body-dinov3 on Hugging Face (gated, SAM License).")
        self.warn_badge.setObjectName("warnBadge")
        self.warn_badge.setVisible(False)
        self.summary = " "
        self.warn_badge.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        badges = QHBoxLayout()
        badges.setSpacing(6)
        badges.addWidget(self.backend_badge)
        badges.addWidget(self.warn_badge)
        badges.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        layout.addLayout(badges)
        layout.addLayout(tiles)
        layout.addWidget(self.hand_row)
        layout.addWidget(self.plot, 1)
        layout.addStretch(0)  # the plot's room while it is hidden: the cards stay at the top

        state.historyChanged.connect(self.refresh)
        state.modelChanged.connect(self.refresh_model)
        state.settingsChanged.connect(self._show_mode)
        self.refresh_model()
        self._show_mode()

    def _show_mode(self) -> None:
        self.hand_row.setVisible(self.state.settings.mode == "full")

    def refresh_model(self) -> None:
        m = self.state.model
        if m.loaded:
            decoder = f" · decoder {m.decoder}" if m.decoder else ""
            fast = f" · fast path {m.fast_path.split(' (')[0]}" if m.fast_path else ""  # details in the tooltip
            # The fast path's state before the device and decoder: where the badge is shortened,
            # those go first.
            self.backend_badge.set_variants(f"backbone {m.backend} · {m.precision}{fast} · {m.device}{decoder}")
        elif m.loading:
            self.backend_badge.set_variants("loading model…")
        else:
            self.backend_badge.set_variants("no model loaded")
        self.backend_badge.setToolTip(m.backend_label + (f"\nfast path: {m.fast_path}" if m.fast_path else ""))
        self.warn_badge.setVisible(m.synthetic and (m.loaded or m.loading))

    def refresh(self) -> None:
        history = list(self.state.history)
        last = history[-1] if history else {}
        self.hand_row.setCurrentIndex(1 if any(stage in last for stage in HAND_STAGES) else 0)
        for stage in HAND_STAGES:  # the hand row follows the newest run's mode
            self.tiles[stage].setVisible(stage in last)
        if not history:
            for stage in STAGES + HAND_STAGES:
                self.tiles[stage].show_time(None)
                self._set_curve(stage, None, None)
            self._set_summary("per stage, last runs")
            return
        first_run = self.state.runs - len(history) + 1
        xs = np.arange(first_run, first_run + len(history))
        for stage in STAGES + HAND_STAGES:
            values = np.array([h.get(stage, np.nan) for h in history], dtype=float)
            recent = values[-20:]
            self.tiles[stage].show_time(last.get(stage), recent[np.isfinite(recent)])
            self._set_curve(stage, xs, values)
        item = self.plot.getPlotItem()
        last_run = int(xs[-1])
        item.setXRange(max(1, last_run - len(history) + 1), max(last_run, 10), padding=0.02)
        top = max([h.get("total", 0.0) for h in history] + [1.0])
        item.setYRange(0, top * 1.15, padding=0)
        b = self.state.bundle
        parts = [f"{self.state.runs} run{'s' if self.state.runs != 1 else ''}"]
        if CACHED_DECODER_STAGE in last and "backbone" not in last:
            parts.append("decoder only, on cached features (no backbone)")
        if b is not None:
            parts.append(f"display prep {format_ms(b.postprocess_ms)}")
            parts.append(f"box → screen {format_ms(b.shown_ms)}")
        self._set_summary(" · ".join(parts))

    def _set_summary(self, text: str) -> None:
        self.summary = text
        self.summaryChanged.emit(text)

    def _set_curve(self, stage: str, xs, values) -> None:
        """A stage that never ran in the history (body mode's hand stages) gets no data at all:
        pyqtgraph warns "All-NaN slice" measuring a curve of gaps only."""
        curve = self.curves[stage]
        if values is None or not np.isfinite(values).any():
            curve.setData([], [])
            curve.setVisible(False)
        else:
            curve.setData(xs, values)
            curve.setVisible(True)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        # A plot a few pixels tall is only noise: below PLOT_MIN_PX it goes, and comes back.
        spare = self.height() - self._height_without_plot()
        self.plot.setVisible(spare >= PLOT_MIN_PX)

    def _height_without_plot(self) -> int:
        lay = self.layout()
        m = lay.contentsMargins()
        items = [lay.itemAt(i) for i in range(lay.count())]
        heights = [it.sizeHint().height() for it in items
                   if it.widget() is not self.plot and it.spacerItem() is None and not it.isEmpty()]
        return m.top() + m.bottom() + sum(heights) + lay.spacing() * (len(items) - 1)
