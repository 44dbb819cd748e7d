"""Fusion, with what it draws badly on a dark palette drawn again.

Fusion outlines check boxes and radio buttons with the window colour made darker, which on
this theme's near-black window is invisible: only the check mark shows, and an unchecked box
is not there at all. Its file-dialog tool icons (back, up, new folder, list / detail view) and
the Close button's are dark bitmaps that show as dots. This proxy draws the indicators with a visible outline and
gives those icons from icons.py, in the theme's text colour. Everything else is Fusion's.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QProxyStyle, QStyle, QStyleFactory

from . import icons

SP = QStyle.StandardPixmap
PE = QStyle.PrimitiveElement
S = QStyle.StateFlag

OUTLINE = "#8a93a3"  # an unchecked box: clearly there, quieter than the text
OUTLINE_HOVER = "#b9c6dc"
OUTLINE_DISABLED = "#4a515e"
FILL = "#12151a"
CHECKED = "#3f73c4"
CHECKED_DISABLED = "#34405a"
MARK = "#ffffff"

FILE_DIALOG_ICONS = {
    SP.SP_FileDialogBack: "back", SP.SP_ArrowBack: "back", SP.SP_ArrowLeft: "back",
    SP.SP_ArrowForward: "forward", SP.SP_ArrowRight: "forward",
    SP.SP_FileDialogToParent: "up", SP.SP_ArrowUp: "up",
    SP.SP_FileDialogNewFolder: "new_folder",
    SP.SP_FileDialogListView: "list", SP.SP_FileDialogDetailedView: "detail",
    SP.SP_DialogCloseButton: "close",  # Fusion's is a dark bitmap too
}


class DarkStyle(QProxyStyle):
    def __init__(self, text_colour: str = "#e4e7ec") -> None:
        super().__init__(QStyleFactory.create("Fusion"))
        self.text_colour = text_colour

    def standardIcon(self, which, option=None, widget=None):  # noqa: N802 - Qt's name
        name = FILE_DIALOG_ICONS.get(which)
        if name is not None:
            return icons.icon(name, self.text_colour)
        return super().standardIcon(which, option, widget)

    def drawPrimitive(self, element, option, painter: QPainter, widget=None) -> None:  # noqa: N802
        if element in (PE.PE_IndicatorCheckBox, PE.PE_IndicatorItemViewItemCheck):
            self._check_box(option, painter)
        elif element == PE.PE_IndicatorRadioButton:
            self._radio(option, painter)
        else:
            super().drawPrimitive(element, option, painter, widget)

    @staticmethod
    def _colours(state) -> tuple[QColor, QColor]:
        """(outline, fill) for the indicator's state."""
        enabled, on = bool(state & S.State_Enabled), bool(state & (S.State_On | S.State_NoChange))
        if not enabled:
            return QColor(OUTLINE_DISABLED), QColor(CHECKED_DISABLED if on else FILL)
        if on:
            return QColor(CHECKED), QColor(CHECKED)
        hover = state & (S.State_MouseOver | S.State_HasFocus)
        return QColor(OUTLINE_HOVER if hover else OUTLINE), QColor(FILL)

    def _begin_indicator(self, option, p: QPainter) -> tuple[QRectF, float]:
        """The indicator's square (centred in its rect) and its side, with the painter saved and set
        to the outline and fill the state asks for (the caller restores it)."""
        r = QRectF(option.rect).adjusted(1.5, 1.5, -1.5, -1.5)
        side = min(r.width(), r.height())
        r = QRectF(r.center().x() - side / 2, r.center().y() - side / 2, side, side)
        outline, fill = self._colours(option.state)
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(outline, 1.4))
        p.setBrush(fill)
        return r, side

    def _check_box(self, option, p: QPainter) -> None:
        r, side = self._begin_indicator(option, p)
        p.drawRoundedRect(r, 2.5, 2.5)
        mark = QColor(MARK if option.state & S.State_Enabled else OUTLINE)
        pen = QPen(mark, max(1.6, side / 7))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        if option.state & S.State_NoChange:
            p.drawLine(QPointF(r.left() + side * 0.25, r.center().y()), QPointF(r.right() - side * 0.25, r.center().y()))
        elif option.state & S.State_On:
            tick = QPainterPath(QPointF(r.left() + side * 0.22, r.top() + side * 0.52))
            tick.lineTo(QPointF(r.left() + side * 0.42, r.top() + side * 0.72))
            tick.lineTo(QPointF(r.left() + side * 0.78, r.top() + side * 0.30))
            p.drawPath(tick)
        p.restore()

    def _radio(self, option, p: QPainter) -> None:
        r, side = self._begin_indicator(option, p)
        p.drawEllipse(r)
        if option.state & S.State_On:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(MARK if option.state & S.State_Enabled else OUTLINE))
            p.drawEllipse(r.center(), side * 0.22, side * 0.22)
        p.restore()
