"""The video panel's picture: a frame, its people's meshes (the layer made on the worker), their
boxes labelled with the track id in the person's colour, optional keypoints. Thin: it draws a
`ShownFrame` and knows nothing of clips or cameras.

On the first frame, before a pass without the detector, it also takes the people's boxes: drag
to draw one (ids 1, 2, … in the order drawn), right-click inside one to remove it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from . import style
from .frame_layer import ShownFrame, id_colour

MARGIN = 6
MIN_BOX_PX = 4.0
OPACITY = 0.7
Box = tuple[float, float, float, float]


def to_qimage(array: np.ndarray) -> QImage:
    """(H, W, 3|4) uint8 → a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    h, w, c = array.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(array.data, w, h, c * w, fmt).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """A QImage → (H, W, 3) uint8 RGB (a copy)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    data = np.frombuffer(image.constBits(), np.uint8, count=h * stride).reshape(h, stride)
    return data[:, : w * 3].reshape(h, w, 3).copy()


class FrameView(QWidget):
    boxesChanged = Signal(object)  # list of (x1, y1, x2, y2) in frame pixels

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Video frame with the people's meshes")
        self.shown: Optional[ShownFrame] = None
        self.show_keypoints = False
        self.empty_text = "Open a video (mp4, mov, mkv, webm)"
        self.pill = ""  # a short note drawn at the top (e.g. "processing…")
        self.boxes: list[Box] = []
        self._editing = False
        self._drag: Optional[tuple[QPointF, QPointF]] = None
        self._frame: Optional[QImage] = None
        self._layer: Optional[QImage] = None

    # -- what is shown ---------------------------------------------------------------------
    def show_frame(self, shown: Optional[ShownFrame]) -> None:
        self.shown = shown
        self._frame = None if shown is None else to_qimage(shown.rgb)
        self._layer = None if shown is None or shown.layer is None else to_qimage(shown.layer)
        self.update()

    def set_keypoints(self, on: bool) -> None:
        self.show_keypoints = bool(on)
        self.update()

    def set_pill(self, text: str) -> None:
        if text != self.pill:
            self.pill = text
            self.update()

    def set_box_editing(self, on: bool) -> None:
        """Take the people's boxes by mouse (the first frame, no detector)."""
        self._editing = bool(on)
        self._drag = None
        self.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
        self.update()

    def set_boxes(self, boxes) -> None:
        self.boxes = [tuple(float(v) for v in b) for b in boxes]
        self.boxesChanged.emit(list(self.boxes))
        self.update()

    def picture(self) -> QImage:
        """What is drawn over the frame, at the frame's own resolution (tests, screenshots)."""
        if self._frame is None:
            return QImage()
        out = QImage(self._frame.size(), QImage.Format.Format_RGB888)
        p = QPainter(out)
        self._draw(p, QRectF(0, 0, out.width(), out.height()))
        p.end()
        return out

    # -- geometry ------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        if self._frame is None:
            return QRectF()
        avail = QRectF(self.rect()).adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        w, h = self._frame.width(), self._frame.height()
        s = min(avail.width() / w, avail.height() / h)
        return QRectF(avail.center().x() - w * s / 2, avail.center().y() - h * s / 2, w * s, h * s)

    def to_frame(self, p: QPointF) -> QPointF:
        r = self.image_rect()
        s = r.width() / self._frame.width()
        return QPointF(min(max((p.x() - r.x()) / s, 0.0), self._frame.width()),
                       min(max((p.y() - r.y()) / s, 0.0), self._frame.height()))

    # -- mouse: the first frame's boxes ----------------------------------------------------------
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if not self._editing or self._frame is None:
            return super().mousePressEvent(ev)
        at = self.to_frame(ev.position())
        if ev.button() == Qt.MouseButton.RightButton:
            hit = [b for b in self.boxes if b[0] <= at.x() <= b[2] and b[1] <= at.y() <= b[3]]
            if hit:
                self.boxes.remove(hit[-1])
                self.set_boxes(self.boxes)
        elif ev.button() == Qt.MouseButton.LeftButton:
            self._drag = (at, at)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self._drag is not None:
            self._drag = (self._drag[0], self.to_frame(ev.position()))
            self.update()
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._drag is not None and ev.button() == Qt.MouseButton.LeftButton:
            a, b = self._drag
            self._drag = None
            box = (min(a.x(), b.x()), min(a.y(), b.y()), max(a.x(), b.x()), max(a.y(), b.y()))
            if box[2] - box[0] >= MIN_BOX_PX and box[3] - box[1] >= MIN_BOX_PX:
                self.set_boxes(self.boxes + [box])
            self.update()
        super().mouseReleaseEvent(ev)

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(style.PANEL))
        if self._frame is None:
            p.setPen(QColor(style.TEXT_DIM))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty_text)
            return
        self._draw(p, self.image_rect())
        if self.pill:
            self._draw_pill(p, self.pill)

    def _draw(self, p: QPainter, target: QRectF) -> None:
        s = target.width() / self._frame.width()
        p.drawImage(target, self._frame)
        p.save()
        p.setClipRect(target)
        if self._layer is not None:
            p.setOpacity(OPACITY)
            p.drawImage(target, self._layer)
            p.setOpacity(1.0)
        people = self.shown.people if self.shown is not None else []
        for pid, result in people:
            colour = QColor(*id_colour(pid))
            x1, y1, x2, y2 = (float(v) for v in result.crop.bbox_xyxy)
            self._draw_box(p, target, s, (x1, y1, x2, y2), colour, f"id {pid}")
            if self.show_keypoints:
                p.setPen(QPen(QColor(255, 255, 255, 200), 1))
                p.setBrush(QColor(style.KEYPOINT))
                radius = max(1.5, min(3.5, s * 2.5))
                for x, y in np.asarray(result.keypoints_2d, np.float64):
                    if np.isfinite(x) and np.isfinite(y):
                        p.drawEllipse(QPointF(target.x() + x * s, target.y() + y * s), radius, radius)
        p.restore()
        if self._editing:
            for n, box in enumerate(self.boxes):
                self._draw_box(p, target, s, box, QColor(*id_colour(n + 1)), f"id {n + 1}")
            if self._drag is not None:
                a, b = self._drag
                self._draw_box(p, target, s, (a.x(), a.y(), b.x(), b.y()), QColor(style.ACCENT), "")

    def _draw_box(self, p: QPainter, target: QRectF, s: float, box: Box, colour: QColor, label: str) -> None:
        x1, y1, x2, y2 = box
        r = QRectF(target.x() + x1 * s, target.y() + y1 * s, (x2 - x1) * s, (y2 - y1) * s)
        p.setPen(QPen(colour, 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(r)
        if label:
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            fm = p.fontMetrics()
            tag = QRectF(r.x(), r.y() - fm.height() - 2, fm.horizontalAdvance(label) + 8, fm.height() + 2)
            if tag.top() < target.top():
                tag.moveTop(r.y())
            p.fillRect(tag, colour)
            p.setPen(QColor(20, 20, 20))
            p.drawText(tag, Qt.AlignmentFlag.AlignCenter, label)

    def _draw_pill(self, p: QPainter, text: str) -> None:
        fm = p.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 20, fm.height() + 8
        r = QRectF((self.width() - w) / 2, MARGIN + 6, w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 160))
        p.drawRoundedRect(r, h / 2, h / 2)
        p.setPen(QColor(style.TEXT))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
