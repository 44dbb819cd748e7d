"""Open the window on the sample photo, wait for the first result, then check and record it.

    python -m sam3dbody_gui.ui.selfcheck [--model DIR] [--screenshot out.png] [--view out.png] [--report r.json]
        [--size 1280x720] [--mode full] [--error-banner] [--models-dialog m.png] [--file-dialog f.png]
        [--keys-dialog k.png]

Used by the OpenGL test (under Xvfb, a real GL context) and to make the docs' screenshots. It
reports whether the 3-D view rendered the mesh: the fraction of its pixels that differ from
the background colour, overall and in the centre where the body is, and whether the 3-D view
frames the whole body and every latency card's text fits.
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


def _body_in_view(mesh) -> bool:
    """Every vertex of the shown mesh projects inside the 3-D view (nothing cut off)."""
    import numpy as np

    view = mesh.view
    if not mesh.num_vertices:
        return False
    vp = view.getViewport()
    m = view.projectionMatrix(vp, vp) * view.viewMatrix()
    mvp = np.array(m.data(), dtype=np.float64).reshape(4, 4).T  # Qt stores columns first
    verts = mesh.mesh_item.opts["meshdata"].vertexes().astype(np.float64)
    clip = np.c_[verts, np.ones(len(verts))] @ mvp.T
    ndc = clip[:, :2] / clip[:, 3:4]
    return bool((np.abs(ndc) <= 1.0).all())


def _x_title(app, window) -> str:
    """The title the X server shows (the platform appends the app's display name unless the
    title ends with it), read with xprop; "" off X or without xprop."""
    import shutil
    import subprocess

    if app.platformName() != "xcb" or shutil.which("xprop") is None:
        return ""
    out = subprocess.run(["xprop", "-id", str(int(window.winId())), "_NET_WM_NAME"], capture_output=True,
                         text=True, timeout=10).stdout
    return out.split("=", 1)[1].strip().strip('"') if "=" in out else ""


def _grab_dialog(app, dialog, path: Path) -> None:
    dialog.show()
    _wait(app, lambda: False, 0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_optimized_png(dialog.grab().toImage(), path)
    dialog.close()


def _dialog_shots(app, window, args) -> None:
    if args.models_dialog:
        from .. import hub
        from .models_dialog import ModelsDialog

        empty = Path(tempfile.mkdtemp(prefix="sam3dbody-selfcheck-hub-"))
        d = ModelsDialog(window.state.settings, window, hub.HubOptions(cache_dir=empty))
        d.resize(900, d.sizeHint().height())
        _grab_dialog(app, d, args.models_dialog)
    if args.file_dialog:
        from . import file_dialogs
        from .photo_files import IMAGE_FILTER
        from ..bundled import sample_image_path

        _grab_dialog(app, file_dialogs.make_dialog(window, "Open photo", str(sample_image_path().parent),
                                                   IMAGE_FILTER), args.file_dialog)
    if args.keys_dialog:
        from .help_dialogs import keys_dialog

        _grab_dialog(app, keys_dialog(window, window.actions_by_name.values()), args.keys_dialog)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model folder (default: the demo model, random weights)")
    ap.add_argument("--screenshot", type=Path, help="PNG of the whole window")
    ap.add_argument("--view", type=Path, help="PNG of the 3-D view alone")
    ap.add_argument("--report", type=Path, help="JSON with what was checked")
    ap.add_argument("--size", default="1600x1000", help="window size WxH")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--runs", type=int, default=1, help="runs to make (the box moves a little each time)")
    ap.add_argument("--mode", choices=("body", "full"), default="body", help="full: hand refinement too")
    ap.add_argument("--error-banner", action="store_true", help="end with an export error in the banner")
    ap.add_argument("--models-dialog", type=Path, help="PNG of Model ▸ Models… (an empty Hugging Face cache)")
    ap.add_argument("--file-dialog", type=Path, help="PNG of the Open photo dialog (Qt's own)")
    ap.add_argument("--keys-dialog", type=Path, help="PNG of Help ▸ Keyboard and mouse")
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
    window.state.update_settings(mode=args.mode)
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
        report["latency_texts_fit"] = all(t.texts_fit() for t in lat.tiles.values() if t.isVisibleTo(lat))
        report["body_in_view"] = _body_in_view(window.mesh)
        report["panel_heights"] = {name: panel.height() for name, panel in (
            ("photo", window.panels.photo_panel), ("features", window.panels.feature_panel))}
        report["title"] = window.windowTitle()
        report["x_title"] = _x_title(app, window)
        if args.error_banner:
            window.exports.export_mesh(Path("/no/such/folder/mesh.obj"))
            _wait(app, lambda: False, 0.3)
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            _save_optimized_png(window.grab().toImage(), args.screenshot)
            report["screenshot_bytes"] = args.screenshot.stat().st_size
        _dialog_shots(app, window, args)
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
