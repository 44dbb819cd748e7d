"""Panel 2: what the model saw (the square crop around the box) beside the PCA map of its
backbone features (first three principal components → RGB, one square per patch)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from . import style
from .photo_view import numpy_to_qimage
from .state import AppState

GAP = 14
CAPTION = 20


class FeatureView(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setMinimumSize(200, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Model input crop and PCA map of the backbone features")
        self.pca_image: Optional[QImage] = None
        self._photo: Optional[QImage] = None
        self.show_crop = True
        self.captions: dict[str, str] = {}  # what the last paint wrote under each square
        state.resultChanged.connect(self._on_result)
        state.imageChanged.connect(self._on_image)

    def _on_image(self) -> None:
        self._photo = None if self.state.image is None else numpy_to_qimage(self.state.image)
        self.update()

    def _on_result(self) -> None:
        b = self.state.bundle
        self.pca_image = None if b is None else numpy_to_qimage(b.pca_rgb)
        self.update()

    def squares(self) -> tuple[QRectF, QRectF]:
        """(crop square, PCA square) in widget coordinates."""
        r = QRectF(self.rect()).adjusted(10, 8, -10, -8 - CAPTION)
        n = 2 if self.show_crop else 1
        side = max(10.0, min(r.height(), (r.width() - GAP * (n - 1)) / n))
        total = side * n + GAP * (n - 1)
        x0 = r.center().x() - total / 2
        y0 = r.top() + (r.height() - side) / 2
        crop = QRectF(x0, y0, side, side)
        pca = QRectF(x0 + (side + GAP) * (n - 1), y0, side, side)
        return crop, pca

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(style.PANEL))
        b = self.state.bundle
        if b is None or self.pca_image is None or b.image_id != self.state.image_id:
            p.setPen(QColor(style.TEXT_DIM))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "The feature map appears after the first run")
            return
        crop_r, pca_r = self.squares()
        if self.show_crop and self._photo is not None:
            self._draw_crop(p, crop_r, b)
            who = f"person {b.selected} · " if len(b.people) > 1 else ""
            self._caption(p, crop_r, f"{who}model input (512 × 512 crop)", f"{who}model input", "input")
        # Nearest neighbour: each backbone patch stays a crisp square.
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(pca_r, self.pca_image)
        c, h, w = b.result.features.shape
        self._caption(p, pca_r, f"feature PCA · {c} channels · {w}×{h} patches", f"PCA · {c} ch · {w}×{h}", "PCA")
        p.setPen(QPen(QColor(style.BORDER), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        for r in ((crop_r, pca_r) if self.show_crop else (pca_r,)):
            p.drawRect(r)

    def _draw_crop(self, p: QPainter, target: QRectF, bundle) -> None:
        """The crop square of the photo (black where it leaves the photo), as the model saw it."""
        geom = bundle.result.crop
        side = float(geom.scale[0])
        cx, cy = float(geom.center[0]), float(geom.center[1])
        src = QRectF(cx - side / 2, cy - side / 2, side, side)
        p.fillRect(target, QColor(0, 0, 0))
        inside = src.intersected(QRectF(0, 0, self._photo.width(), self._photo.height()))
        if inside.isEmpty():
            return
        s = target.width() / side
        dst = QRectF(target.x() + (inside.x() - src.x()) * s, target.y() + (inside.y() - src.y()) * s,
                     inside.width() * s, inside.height() * s)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(dst, self._photo, inside)

    def _caption(self, p: QPainter, r: QRectF, *variants: str) -> None:
        """The first of `variants` that fits under its square (captions never run into each other)."""
        f = QFont(self.font())
        f.setPointSizeF(max(7.5, f.pointSizeF() * 0.9))
        p.setFont(f)
        p.setPen(QColor(style.TEXT_DIM))
        room = r.width() + GAP - 4
        fm = p.fontMetrics()
        text = next((v for v in variants if fm.horizontalAdvance(v) <= room), variants[-1])
        self.captions[variants[0].split()[0]] = text
        p.drawText(QRectF(r.center().x() - room / 2, r.bottom() + 3, room, CAPTION), Qt.AlignmentFlag.AlignHCenter, text)
