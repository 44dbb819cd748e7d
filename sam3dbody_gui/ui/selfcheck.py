"""Open the window on the sample photo, wait for the first result, then check and record it.

    python -m sam3dbody_gui.ui.selfcheck [--model DIR] [--screenshot out.png] [--view out.png] [--report r.json]

Used by the OpenGL test (under Xvfb, a real GL context) and to make docs/screenshot.png. It
reports whether the 3-D view rendered the mesh: the fraction of its pixels that differ from
the background colour, overall and in the centre where the body is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _wait(app, condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _differs_from_background(image, background) -> tuple[float, float]:
    """(fraction of all pixels, fraction of the central third) that are not the background."""
    import numpy as np

    img = image.convertToFormat(image.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    arr = arr.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3).astype(int)
    bg = np.array([background.red(), background.green(), background.blue()])
    differ = np.abs(arr - bg).sum(axis=2) > 24
    centre = differ[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
    return float(differ.mean()), float(centre.mean())


def _save_optimized_png(image, path: Path) -> None:
    """Full-colour PNG, compressed as far as zlib goes (docs/screenshot.png stays small)."""
    import numpy as np
    from PIL import Image

    img = image.convertToFormat(image.Format.Format_RGB888)
    w, h = img.width(), img.height()
    raw = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    arr = raw.reshape(h, img.bytesPerLine())[:, : w * 3].reshape(h, w, 3)
    Image.fromarray(arr).save(path, optimize=True)


def _changed_fraction(a, b) -> float:
    import numpy as np

    def arr(image):
        img = image.convertToFormat(image.Format.Format_RGB888)
        raw = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
        return raw.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3].astype(int)

    x, y = arr(a), arr(b)
    return float((np.abs(x - y) > 24).mean()) if x.shape == y.shape else 1.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model folder (default: the demo model, random weights)")
    ap.add_argument("--screenshot", type=Path, help="PNG of the whole window")
    ap.add_argument("--view", type=Path, help="PNG of the 3-D view alone")
    ap.add_argument("--report", type=Path, help="JSON with what was checked")
    ap.add_argument("--size", default="1600x1000", help="window size WxH")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--runs", type=int, default=1, help="runs to make (the box moves a little each time)")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QColor

    from .app import make_application
    from .main_window import MainWindow
    from . import style

    app = make_application()
    settings_file = Path(tempfile.mkdtemp(prefix="sam3dbody-selfcheck-")) / "settings.ini"
    window = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
    w, h = (int(v) for v in args.size.lower().split("x"))
    window.resize(w, h)
    window.show()
    results = []
    window.resultShown.connect(results.append)
    if args.model is None:
        window.state.update_settings(use_demo_model=True)
        window.start()
    else:
        window.start(model_dir=args.model)
    ok = _wait(app, lambda: bool(results), args.timeout)
    for i in range(1, args.runs if ok else 0):
        x1, y1, x2, y2 = window.state.box or (0.0, 0.0, *window.state.image_hw[::-1])
        window.set_box((x1 + (2 if i % 2 else -2), y1, x2, y2))
        window.run_now()
        ok = _wait(app, lambda: len(results) > i, args.timeout)
    report: dict = {"result": ok, "platform": app.platformName()}
    if ok:
        # Let the views settle: the GL view paints on the next frames.
        _wait(app, lambda: False, 0.8)
        view = window.mesh.view
        report["gl_valid"] = bool(view.isValid())
        report["vertices"] = int(window.mesh.num_vertices)
        if view.isValid():
            image = window.mesh.grab_image()
            report["view_size"] = [image.width(), image.height()]
            report["mesh_fraction"], report["centre_fraction"] = _differs_from_background(image, QColor(style.PANEL))
            if args.view:
                image.save(str(args.view))
            # Each preset view renders the body differently (the camera really moves).
            views = {}
            for name in ("front", "side", "three_quarter"):
                window.mesh.set_view(name)
                _wait(app, lambda: False, 0.3)
                views[name] = window.mesh.grab_image()
            report["views"] = {k: _differs_from_background(v, QColor(style.PANEL)) for k, v in views.items()}
            report["side_vs_front_change"] = _changed_fraction(views["front"], views["side"])
            window.mesh.set_view("front")
            _wait(app, lambda: False, 0.3)
        lat = window.latency  # the stages shown (full mode's hand stages only after a full-mode run)
        report["latency_text"] = {k: v.text() for k, v in lat.value_labels.items() if lat.tiles[k].isVisibleTo(lat)}
        report["title"] = window.windowTitle()
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            _save_optimized_png(window.grab().toImage(), args.screenshot)
            report["screenshot_bytes"] = args.screenshot.stat().st_size
    else:
        report["error"] = window.controller.last_error or window.state.last_message[0]
    window.close()
    app.processEvents()
    text = json.dumps(report, indent=1)
    if args.report:
        args.report.write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
