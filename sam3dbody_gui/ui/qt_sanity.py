"""A start-up check of the Qt binding: does it keep `None`'s reference count?

PySide6 6.12.0 on Python 3.11 drops one reference to `None` on every void-returning call
(`QPainter.drawEllipse`, `setOpacity`, …). `None` then reaches zero after ~130 k calls and the
interpreter aborts ("Fatal Python error: none_dealloc") — a few seconds into a box drag, losing the
user's work. pyproject.toml keeps such builds out (`PySide6-Essentials<6.12` below Python 3.12,
where `None` is immortal and the bug is harmless); this check catches one installed by hand, so
the window refuses to start with one clear message instead of crashing later.
"""

from __future__ import annotations

import gc
import sys

# Below this many lost references per 1,000 calls the binding is sound (the bug loses 1,000).
_LEAK_THRESHOLD = 100


def none_refcount_drift(calls: int = 1000) -> int:
    """Change of `sys.getrefcount(None)` over `calls` void-returning QPainter calls (a QApplication
    or QGuiApplication must exist). 0 on a sound binding, about -calls on a broken one."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QImage, QPainter

    image = QImage(16, 16, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    try:
        centre = QPointF(4.0, 4.0)
        gc.collect()
        before = sys.getrefcount(None)
        for _ in range(calls):
            painter.drawEllipse(centre, 2.0, 2.0)
        after = sys.getrefcount(None)
    finally:
        painter.end()
    return after - before


def qt_binding_problem(python_version: tuple = tuple(sys.version_info[:2])) -> str | None:
    """One sentence saying why this Qt binding would crash the window, or None when it is sound."""
    if tuple(python_version[:2]) >= (3, 12):
        return None  # None is immortal: a lost reference cannot free it
    drift = none_refcount_drift(calls=1000)
    if drift > -_LEAK_THRESHOLD:
        return None
    return _message(-drift, python_version)


def _message(lost_per_1000: int, python_version: tuple) -> str:
    import PySide6

    return (f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} "
            f"loses a reference to None on every drawing call ({lost_per_1000} per 1,000) and would crash the "
            "window within seconds. Install a sound build: pip install 'PySide6-Essentials>=6.6,<6.12' "
            "(or use Python 3.12 or newer).")
