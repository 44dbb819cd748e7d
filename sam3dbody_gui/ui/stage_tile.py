"""One latency card: a stage's name, its newest time in large figures, and the median and
minimum of the recent runs, each text fitted to the card's width.

A card never shrinks below what its three lines need (so a crowded panel squeezes the plot
beside it, not the figures over their labels), and where the width is short it says less
rather than cut a word: "median 87.4 · min 87.4", then "med 87.4 · min 87.4", then "87.4";
the full sentence stays in the tooltip. A compact card (full mode's hand stages) has the name
and a smaller figure only.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from . import style
from .widgets import FittedLabel


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


class StageTile(QFrame):
    def __init__(self, stage: str, compact: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage, self.compact = stage, compact
        self.setObjectName("stageTile")
        name = style.STAGE_NAMES[stage]
        self.swatch = QLabel("●", self)
        self.swatch.setStyleSheet(f"color: {style.STAGE_COLOURS[stage]}; font-size: 9pt;")
        self.swatch.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.name = FittedLabel(self)
        self.name.setObjectName("stageName")
        short = {"decoder+MHR": "DECODER", "hand backbone": "HAND BB", "hand decoder": "HAND DEC",
                 "hand crops": "CROPS", "body re-run": "RE-RUN", "preprocess": "PREP"}.get(stage, name.upper())
        self.name.set_variants(name.upper(), short)
        self.name.setToolTip(name)
        self.value = FittedLabel(self)
        self.value.setObjectName("stageValueSmall" if compact else "stageValue")
        self.value.setAccessibleName(f"{name} latency")
        self.value.set_variants("–")
        self.stat = FittedLabel(self)
        self.stat.setObjectName("stageStat")
        self.stat.setVisible(not compact)
        head = QHBoxLayout()
        head.setSpacing(4)
        head.addWidget(self.swatch)
        head.addWidget(self.name, 1)
        v = QVBoxLayout(self)
        v.setContentsMargins(9, 5, 9, 5)
        v.setSpacing(0)
        v.addLayout(head)
        v.addWidget(self.value)
        v.addWidget(self.stat)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def show_time(self, ms: float | None, recent=None) -> None:
        """`ms`: the newest run's time (None: this stage did not run); `recent`: finite times of the
        last runs, for the median and minimum."""
        self.value.set_variants("–" if ms is None else format_ms(ms))
        if recent is None or not len(recent):
            self.stat.set_variants(" ")
            self.setToolTip(style.STAGE_NAMES[self.stage])
            return
        import numpy as np

        med, low = format_ms(float(np.median(recent))), format_ms(float(np.min(recent)))
        if med.split()[1] == low.split()[1]:  # one unit: the figure above shows it
            m, lo = med.split()[0], low.split()[0]
        else:  # "median 1.18 s · min 137 ms", never "median 1.18 · min 137"
            m, lo = med, low
        self.stat.set_variants(f"median {m} · min {lo}", f"med {m} · min {lo}", f"med {m}")
        self.setToolTip(f"{style.STAGE_NAMES[self.stage]}: last {len(recent)} runs, median {med}, minimum {low}")

    def texts_fit(self) -> bool:
        """Every shown text fits the card (the tests' check that nothing is cut)."""
        return all(label.fits() for label in (self.name, self.value, self.stat) if label.isVisibleTo(self))
