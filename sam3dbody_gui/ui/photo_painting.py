"""How the photo panel draws what is not the photo: each person's box with their number, the
shaded outside of a lone box, the keypoints, the user's keypoint prompts and the status pills.
PhotoView's painting half (a mixin: it reads the view's geometry and state)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen

from . import style

HANDLE_PX = 7  # drawn handle size


def person_qcolour(index: int) -> QColor:
    """A person's colour (the same as their mesh's, export/mesh_render.person_colour)."""
    from ..export.mesh_render import person_colour

    r, g, b = (int(c) for c in person_colour(index))
    return QColor(r, g, b)



class PhotoPainting:
    """Drawing helpers of PhotoView (uses its box_rect, _handles, to_widget, _scale, image_rect, state)."""

    def _shade_outside(self, p: QPainter, target: QRectF, r: QRectF) -> None:
        outside = QPainterPath()
        outside.addRect(target)
        inner = QPainterPath()
        inner.addRect(r.intersected(target))
        p.fillPath(outside.subtracted(inner), QColor(0, 0, 0, 95))

    def _draw_person_box(self, p: QPainter, person, selected: bool) -> None:
        """A person's box in their colour with their number; the selected one thicker, with handles."""
        r = self.box_rect(person.box)
        colour = person_qcolour(person.colour) if len(self.state.people) > 1 else QColor(style.ACCENT)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(colour, 2.5 if selected else 1.5, Qt.PenStyle.SolidLine if selected else Qt.PenStyle.DashLine))
        p.drawRect(r)
        if len(self.state.people) > 1:
            self._draw_tag(p, r, str(person.id), colour)
        if selected:
            p.setPen(QPen(QColor(20, 20, 20), 1))
            p.setBrush(colour)
            for h in self._handles().values():
                p.drawRect(QRectF(h.x() - HANDLE_PX / 2, h.y() - HANDLE_PX / 2, HANDLE_PX, HANDLE_PX))

    def _draw_tag(self, p: QPainter, r: QRectF, text: str, colour: QColor) -> None:
        f = QFont(self.font())
        f.setBold(True)
        f.setPointSizeF(max(7.5, f.pointSizeF() * 0.85))
        p.setFont(f)
        fm = p.fontMetrics()
        tag = QRectF(r.left(), r.top() - fm.height() - 4, fm.horizontalAdvance(text) + 10, fm.height() + 4)
        if tag.top() < 0:
            tag.moveTop(r.top())
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(tag, 3, 3)
        p.setPen(QColor(15, 15, 20))
        p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)

    def _draw_prompts(self, p: QPainter, prompts) -> None:
        """Where the user put keypoints: a ring with the keypoint's name."""
        p.setBrush(Qt.BrushStyle.NoBrush)
        for q in prompts:
            c = self.to_widget(q.x, q.y)
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawEllipse(c, 7, 7)
            p.setPen(QColor(255, 255, 255))
            p.drawText(c + QPointF(10, 4), q.name)

    def _draw_keypoints(self, p: QPainter, keypoints: np.ndarray, selected: bool = True) -> None:
        radius = max(2.0, min(4.0, self._scale() * 3.0)) * (1.0 if selected else 0.7)
        p.setPen(QPen(QColor(255, 255, 255, 200 if selected else 110), 1))
        colour = QColor(style.KEYPOINT)
        colour.setAlpha(255 if selected else 150)
        p.setBrush(colour)
        for x, y in np.asarray(keypoints, dtype=np.float64):
            if np.isfinite(x) and np.isfinite(y):
                p.drawEllipse(self.to_widget(x, y), radius, radius)

    def _draw_pill(self, p: QPainter, text: str, top: bool) -> None:
        f = QFont(self.font())
        f.setPointSizeF(max(7.5, f.pointSizeF() * 0.9))
        p.setFont(f)
        fm = p.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 18, fm.height() + 8
        r = self.image_rect()
        x = r.right() - w - 8 if top else r.center().x() - w / 2
        y = r.top() + 8 if top else r.bottom() - h - 8
        pill = QRectF(x, y, w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(10, 12, 16, 190))
        p.drawRoundedRect(pill, h / 2, h / 2)
        p.setPen(QColor(style.ACCENT if top else style.TEXT))
        p.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)
