"""Starting the desktop window (`sam3dbody-gui` with no command, or `sam3dbody-gui gui`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")


def make_application(argv: Sequence[str] | None = None):
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication, QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from .settings_store import APPLICATION, ORGANIZATION
    from .style import apply_theme

    app = QApplication.instance()
    if app is None:
        # Depth buffer + multisampling for the 3-D view; must be set before the first GL widget.
        fmt = QSurfaceFormat.defaultFormat()
        fmt.setDepthBufferSize(24)
        fmt.setSamples(4)
        QSurfaceFormat.setDefaultFormat(fmt)
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        QCoreApplication.setOrganizationName(ORGANIZATION)
        QCoreApplication.setApplicationName(APPLICATION)
        app = QApplication(list(argv or [sys.argv[0]]))
        app.setApplicationDisplayName("SAM 3D Body")
    apply_theme(app)
    return app


def run_gui(image: Optional[Path] = None, bbox: Optional[Sequence[float]] = None, model: Optional[Path] = None,
            backend: Optional[str] = None) -> int:
    app = make_application()
    from .qt_sanity import qt_binding_problem

    problem = qt_binding_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "SAM 3D Body cannot start", problem)
        return 2
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    window.start(model_dir=model, backend=backend, image=image, bbox=tuple(bbox) if bbox else None)
    code = app.exec()
    fast_path = getattr(window.controller.pipeline, "fast_path", None)
    if window.controller.is_running() or (fast_path is not None and not fast_path.done):
        # A model load, a long CPU inference or the fast path's background compile is still
        # running and cannot be interrupted: settings are saved already (and the compile caches
        # are written file by file, atomically), so leave without waiting minutes for it with no
        # window on screen.
        sys.stdout.flush()
        os._exit(code)
    return code
