"""The window's few icons, as SVG text drawn by Qt's SVG renderer: they render on any machine
(no font has to carry a glyph such as ⛔, no icon theme has to be installed) and take the
theme's colours. `icon(name, colour)` gives a QIcon; `pixmap(name, colour, size)` a QPixmap
at the screen's pixel ratio.

Kept as text here rather than as files: the package ships only what pyproject names."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

_STROKE = "fill='none' stroke='{c}' stroke-width='2' stroke-linecap='round' stroke-linejoin='round'"

SVG = {  # 24 × 24 view boxes; {c} is the colour
    "error": "<circle cx='12' cy='12' r='10' fill='{c}'/>"
             "<rect x='6' y='10.5' width='12' height='3' rx='1' fill='#1a1013'/>",
    "warning": "<path d='M12 2.5 L22.5 20.5 H1.5 Z' fill='{c}' stroke='{c}' stroke-width='1.5' "
               "stroke-linejoin='round'/>"
               "<rect x='11' y='8.5' width='2' height='6.5' rx='1' fill='#1a1408'/>"
               "<circle cx='12' cy='17.6' r='1.25' fill='#1a1408'/>",
    "info": "<circle cx='12' cy='12' r='10' fill='{c}'/>"
            "<rect x='11' y='10.5' width='2' height='7' rx='1' fill='#101a28'/>"
            "<circle cx='12' cy='7.4' r='1.3' fill='#101a28'/>",
    "close": f"<path d='M6 6 L18 18 M18 6 L6 18' {_STROKE}/>",
    "back": f"<path d='M19 12 H5 M11 6 L5 12 L11 18' {_STROKE}/>",
    "forward": f"<path d='M5 12 H19 M13 6 L19 12 L13 18' {_STROKE}/>",
    "up": f"<path d='M12 19 V5 M6 11 L12 5 L18 11' {_STROKE}/>",
    "new_folder": f"<path d='M3 6.5 V18.5 H21 V8.5 H11 L9 6.5 Z' {_STROKE}/>"
                  f"<path d='M12 10.5 V16.5 M9 13.5 H15' {_STROKE}/>",
    "list": f"<path d='M8 7 H20 M8 12 H20 M8 17 H20' {_STROKE}/>"
            "<circle cx='4.5' cy='7' r='1.3' fill='{c}'/><circle cx='4.5' cy='12' r='1.3' fill='{c}'/>"
            "<circle cx='4.5' cy='17' r='1.3' fill='{c}'/>",
    "detail": f"<rect x='3' y='4' width='18' height='16' rx='1.5' {_STROKE}/>"
              f"<path d='M3 9 H21 M3 14.5 H21 M10 4 V20' {_STROKE}/>",
}


def svg_text(name: str, colour: str) -> str:
    body = SVG[name].replace("{c}", colour)
    return f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>{body}</svg>"


def render(name: str, colour: str, size: int, ratio: float = 1.0) -> QImage:
    """The icon as a (size·ratio)² ARGB image, transparent around the drawing."""
    side = max(1, round(size * ratio))
    image = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(QByteArray(svg_text(name, colour).encode("utf-8")))
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p, QRectF(0, 0, side, side))
    p.end()
    image.setDevicePixelRatio(ratio)
    return image


def _ratio() -> float:
    screen = QGuiApplication.primaryScreen()
    return float(screen.devicePixelRatio()) if screen is not None else 1.0


def pixmap(name: str, colour: str, size: int = 16) -> QPixmap:
    return QPixmap.fromImage(render(name, colour, size, _ratio()))


@lru_cache(maxsize=None)
def icon(name: str, colour: str) -> QIcon:
    """One QIcon with the sizes toolbars and dialogs ask for (crisp at 1× and 2×)."""
    out = QIcon()
    for size in (16, 20, 24, 32):
        for ratio in (1.0, 2.0):
            out.addPixmap(QPixmap.fromImage(render(name, colour, size, ratio)))
    return out
