"""Panel 4: live latency. The newest run's per-stage times (big numbers, with the median of
the recent runs), a rolling plot of the last runs, and what ran them (backend, precision,
device, and a plain warning when the weights are random). Full-mode runs add a second row for
the hand-refinement stages (hand crops, hand backbone, hand decoder, body re-run)."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget  # noqa: E402

from . import style  # noqa: E402
from .state import AppState  # noqa: E402

from ..pipeline.result import FULL_MODE_STAGES as HAND_STAGES  # noqa: E402 - full mode only
from ..pipeline.result import STAGES  # noqa: E402


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


class LatencyView(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Latency per stage and history")
        self.value_labels: dict[str, QLabel] = {}
        self.stat_labels: dict[str, QLabel] = {}
        self.tiles: dict[str, QFrame] = {}

        tiles = QGridLayout()
        tiles.setSpacing(8)
        for i, stage in enumerate(STAGES + HAND_STAGES):
            tile = QFrame(self)
            tile.setObjectName("stageTile")
            name = QLabel(style.STAGE_NAMES[stage].upper(), tile)
            name.setObjectName("stageName")
            swatch = QLabel("●", tile)
            swatch.setStyleSheet(f"color: {style.STAGE_COLOURS[stage]}; font-size: 9pt;")
            value = QLabel("–", tile)
            value.setObjectName("stageValue")
            value.setAccessibleName(f"{style.STAGE_NAMES[stage]} latency")
            stat = QLabel(" ", tile)
            stat.setObjectName("stageStat")
            # Let narrow tiles clip these texts rather than widen the whole panel.
            name.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            stat.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            head = QHBoxLayout()
            head.setSpacing(4)
            head.addWidget(swatch)
            head.addWidget(name, 1)
            v = QVBoxLayout(tile)
            v.setContentsMargins(9, 6, 9, 6)
            v.setSpacing(0)
            v.addLayout(head)
            v.addWidget(value)
            v.addWidget(stat)
            tiles.addWidget(tile, i // len(STAGES), i % len(STAGES))
            tile.setVisible(stage in STAGES)  # hand stages: shown after a full-mode run
            self.tiles[stage] = tile
            self.value_labels[stage] = value
            self.stat_labels[stage] = stat

        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(background=style.PANEL)
        self.plot.setMinimumHeight(90)
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

        self.backend_badge = QLabel("no model", self)
        self.backend_badge.setObjectName("badge")
        self.warn_badge = QLabel("RANDOM WEIGHTS (demo model)", self)
        self.warn_badge.setToolTip("The demo model has random weights: its mesh is not a prediction.\n"
                                   "Real weights: facebook/sam-3d-body-dinov3 on Hugging Face (gated, SAM License).")
        self.warn_badge.setObjectName("warnBadge")
        self.warn_badge.setVisible(False)
        self.footer = QLabel(" ", self)
        self.footer.setObjectName("dim")
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
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.footer)

        state.historyChanged.connect(self.refresh)
        state.modelChanged.connect(self.refresh_model)
        self.refresh_model()

    def refresh_model(self) -> None:
        m = self.state.model
        if m.loaded:
            decoder = f" · decoder {m.decoder}" if m.decoder else ""
            self.backend_badge.setText(f"backbone {m.backend} · {m.precision} · {m.device}{decoder}")
        elif m.loading:
            self.backend_badge.setText("loading model…")
        else:
            self.backend_badge.setText("no model loaded")
        self.backend_badge.setToolTip(m.backend_label)
        self.warn_badge.setVisible(m.synthetic and (m.loaded or m.loading))

    def refresh(self) -> None:
        history = list(self.state.history)
        if not history:
            for stage in STAGES + HAND_STAGES:
                self.value_labels[stage].setText("–")
                self.stat_labels[stage].setText(" ")
                self.curves[stage].setData([], [])
                self.tiles[stage].setVisible(stage in STAGES)
            self.footer.setText(" ")
            return
        last = history[-1]
        first_run = self.state.runs - len(history) + 1
        xs = np.arange(first_run, first_run + len(history))
        for stage in HAND_STAGES:  # the hand row follows the newest run's mode
            self.tiles[stage].setVisible(stage in last)
        for stage in STAGES + HAND_STAGES:
            values = np.array([h.get(stage, np.nan) for h in history], dtype=float)
            self.value_labels[stage].setText(format_ms(last[stage]) if stage in last else "–")
            recent = values[-20:]
            recent = recent[np.isfinite(recent)]
            if recent.size:
                med, low = format_ms(float(np.median(recent))), format_ms(float(recent.min()))
                self.stat_labels[stage].setText(f"median {med.split()[0]} · min {low.split()[0]}")
                self.stat_labels[stage].setToolTip(f"last {recent.size} runs: median {med}, minimum {low}")
            self.curves[stage].setData(xs, values)
        item = self.plot.getPlotItem()
        last_run = int(xs[-1])
        item.setXRange(max(1, last_run - len(history) + 1), max(last_run, 10), padding=0.02)
        top = max(float(np.nanmax([h.get("total", 0.0) for h in history])), 1.0)
        item.setYRange(0, top * 1.15, padding=0)
        b = self.state.bundle
        parts = [f"{self.state.runs} run{'s' if self.state.runs != 1 else ''}"]
        if b is not None:
            parts.append(f"display prep {format_ms(b.postprocess_ms)}")
            parts.append(f"box → screen {format_ms(b.shown_ms)}")
        self.footer.setText(" · ".join(parts))
