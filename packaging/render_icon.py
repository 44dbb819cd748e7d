"""Render resources/sam3dbody-gui.svg to PNG sizes with Qt's SVG renderer (no extra tools).

    python packaging/render_icon.py            # writes resources/sam3dbody-gui.png (256 px)
    python packaging/render_icon.py 48 128 256 # and/or other sizes: sam3dbody-gui-48.png, ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "sam3dbody-gui.svg"


def render(size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SVG}")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"cannot write {out}")
    print(out)


def main(argv: list[str]) -> None:
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841 - fonts, image plugins
    sizes = [int(a) for a in argv] or [256]
    for size in sizes:
        name = "sam3dbody-gui.png" if size == 256 and not argv else f"sam3dbody-gui-{size}.png"
        render(size, SVG.with_name(name))


if __name__ == "__main__":
    main(sys.argv[1:])
