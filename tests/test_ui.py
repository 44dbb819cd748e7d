"""The desktop window, headless (Qt's offscreen platform), with the tiny synthetic model.

The OpenGL rendering of the 3-D view is checked in test_ui_gl.py (Xvfb + Mesa, subprocess):
the offscreen platform has no GL context, and Qt picks its platform once per process.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import json  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from sam3dbody_gui.bundled import SAMPLE_BOX, sample_image_path  # noqa: E402
from sam3dbody_gui.ui.main_window import MainWindow  # noqa: E402
from sam3dbody_gui.ui.settings_store import load_settings, recent_files  # noqa: E402
from sam3dbody_gui.ui.state import Settings  # noqa: E402

RESULT_TIMEOUT_MS = 60_000
LATENCY_TEXT = re.compile(r"^\d+(\.\d+)? (ms|s)$")


# ------------------------------------------------------------------------------ helpers ---
@pytest.fixture
def store(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _make_window(qtbot, store) -> MainWindow:
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    return w


@pytest.fixture
def bare_window(qtbot, store) -> MainWindow:
    """A window with no model chosen (a first start)."""
    return _make_window(qtbot, store)


@pytest.fixture
def window(qtbot, store, tiny_model_dir) -> MainWindow:
    """A window with the tiny model loaded and no photo yet."""
    w = _make_window(qtbot, store)
    with qtbot.waitSignal(w.modelReady, timeout=RESULT_TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    # A load slower than 400 ms shows the progress dialog; when it closes, the offscreen platform
    # (unlike a window manager) activates no window, and the window's shortcuts need one.
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    return w


def _open_sample(qtbot, w: MainWindow):
    with qtbot.waitSignal(w.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        assert w.open_image(sample_image_path(), box=SAMPLE_BOX)
    return blocker.args[0]


def _pixels(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    # A copy: the array viewed the converted image's memory, freed when `img` goes at the return
    # (the pixels read then were whatever reused that memory: a flaky icon test).
    rows = arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    return rows.reshape(img.height(), img.width(), 3).copy()


def _grab(widget) -> np.ndarray:
    return _pixels(widget.grab().toImage()).astype(int)


# -------------------------------------------------------------------- the main journey ---
def test_result_fills_all_panels(qtbot, window):
    bundle = _open_sample(qtbot, window)
    result = bundle.result
    v = result.vertices.shape[0]
    assert bundle.box == tuple(float(x) for x in SAMPLE_BOX)

    # 1. Photo: the mesh overlay changes pixels inside the box (compared with opacity 0).
    photo = window.photo
    with_mesh = _grab(photo)
    window.opacity.setValue(0)
    qtbot.wait(20)
    without_mesh = _grab(photo)
    window.opacity.setValue(70)
    r = photo.box_rect().toRect().adjusted(3, 3, -3, -3)
    dpr = photo.devicePixelRatioF()
    inside = (slice(int(r.top() * dpr), int(r.bottom() * dpr)), slice(int(r.left() * dpr), int(r.right() * dpr)))
    changed = np.abs(with_mesh[inside] - without_mesh[inside]).sum(axis=2) > 30
    assert changed.mean() > 0.02, "the mesh overlay should cover part of the box"

    # 2. PCA map of the backbone features.
    c, h, w = result.features.shape
    assert window.features.pca_image is not None
    assert (window.features.pca_image.width(), window.features.pca_image.height()) == (w, h)

    # 3. 3-D view: the mesh item holds the result's camera-frame mesh turned upright for
    # pyqtgraph's Z-up world and centred: x stays, the camera's depth z goes into the screen (+Y)
    # and the camera's y (down in the photo) becomes -Z, so the head is above the feet.
    md = window.mesh.mesh_item.opts["meshdata"]
    assert md.faces().shape == result.faces.shape
    assert window.mesh.num_vertices == v
    camera = result.vertices_camera.astype(np.float64)
    expected = np.stack([camera[:, 0], camera[:, 2], -camera[:, 1]], axis=1)
    expected -= (expected.max(0) + expected.min(0)) / 2
    for shown in (bundle.display_vertices, md.vertexes()):
        assert shown.shape == (v, 3)
        assert np.allclose(shown, expected, atol=1e-4)
    shown = md.vertexes()
    top_of_photo, bottom_of_photo = np.argmin(camera[:, 1]), np.argmax(camera[:, 1])
    assert shown[top_of_photo, 2] == pytest.approx(shown[:, 2].max())  # the head is the highest point
    assert shown[bottom_of_photo, 2] == pytest.approx(shown[:, 2].min())  # the feet the lowest
    assert np.allclose(np.linalg.norm(md.vertexNormals(), axis=1), 1, atol=1e-3)

    # 4. Latency: numbers in every stage shown (body mode: no hand stages), model description,
    # random-weights warning.
    shown = [s for s, tile in window.latency.tiles.items() if tile.isVisibleTo(window.latency)]
    assert shown == ["preprocess", "backbone", "decoder+MHR", "total"]
    for stage in shown:
        label = window.latency.value_labels[stage]
        assert LATENCY_TEXT.match(label.text()), (stage, label.text())
    assert "pytorch" in window.latency.backend_badge.full_text()
    assert window.latency.warn_badge.isVisibleTo(window)
    assert "RANDOM WEIGHTS" in window.windowTitle()
    assert len(window.state.history) == window.state.runs >= 1


def test_box_changes_rerun_debounced_and_latest_wins(qtbot, window):
    _open_sample(qtbot, window)
    runs_before = window.state.runs
    boxes = [(30.0, 20.0, 360.0, 500.0), (40.0, 20.0, 350.0, 500.0), (50.0, 30.0, 340.0, 490.0)]
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        for b in boxes:  # quicker than the debounce: one run for all three
            assert window.set_box(b)
    assert blocker.args[0].box == boxes[-1]
    assert window.state.runs == runs_before + 1
    assert window.state.bundle.result.crop.bbox_xyxy.tolist() == list(boxes[-1])


def _one_person(box):
    """A request's run of one person (id 1, colour 0) in body mode (people.result_key's key)."""
    return [(1, box, (box, "body", (), None, ()), 0)]


def test_stale_results_are_dropped_not_queued(qtbot, window):
    c = window.controller
    image = np.full((240, 180, 3), 128, np.uint8)
    shown = []
    c.resultReady.connect(shown.append)
    dropped, superseded = c.dropped, c.superseded
    ids = [c.request_inference(image, _one_person((10.0, 10.0, 100.0 + i, 200.0)), image_id=99) for i in range(5)]
    qtbot.waitUntil(lambda: not c.busy, timeout=RESULT_TIMEOUT_MS)
    qtbot.wait(50)
    # The first ran at once (then was stale), 2-4 were replaced while pending, only 5 was shown.
    assert [b.request_id for b in shown] == [ids[-1]]
    assert c.superseded - superseded == 3
    assert c.dropped - dropped == 1


def test_shutdown_waits_for_the_running_job_then_takes_no_more(qtbot, window, monkeypatch):
    """Closing the window waits a while for the job on the pool; one that runs longer is left to
    finish by itself (is_running says so, for the app's exit), and nothing new starts."""
    import threading

    c = window.controller
    release = threading.Event()
    real_run = c.pipeline.run_people
    monkeypatch.setattr(c.pipeline, "run_people", lambda *a, **k: release.wait(30) and real_run(*a, **k))
    image = np.full((240, 180, 3), 128, np.uint8)
    c.request_inference(image, _one_person(None), image_id=99)
    qtbot.waitUntil(c.is_running, timeout=RESULT_TIMEOUT_MS)
    assert not c.shutdown(timeout_ms=50) and c.is_running()
    c.request_inference(image, _one_person(None), image_id=99)
    assert c.pending_infer is not None and c.running is not None  # kept, never started
    release.set()
    qtbot.waitUntil(lambda: c.running is None, timeout=RESULT_TIMEOUT_MS)  # its result arrived
    qtbot.wait(50)
    assert not c.is_running() and c.pending_infer is not None  # the later request never ran
    assert c.shutdown(timeout_ms=0)


def test_shutdown_right_after_a_request_does_not_wait_for_a_job_not_yet_begun(qtbot):
    """From inside the event loop (as the window asks), superqt begins a job a timer tick later,
    a tick the waiting UI thread cannot give: shutdown must not wait for it, and it must skip."""
    from sam3dbody_gui.ui.worker import InferenceController

    class Pipeline:
        calls = 0

        def run_people(self, *a, **k):
            Pipeline.calls += 1

    c = InferenceController()
    c.pipeline = Pipeline()
    seen = {}

    def close_at_once():
        c.request_inference(np.zeros((8, 8, 3), np.uint8), _one_person(None), image_id=1)
        t0 = time.perf_counter()
        seen["ok"], seen["seconds"] = c.shutdown(timeout_ms=5000), time.perf_counter() - t0

    QTimer.singleShot(0, close_at_once)
    qtbot.waitUntil(lambda: "ok" in seen and c.running is None, timeout=RESULT_TIMEOUT_MS)
    assert seen["ok"] and seen["seconds"] < 1.0 and Pipeline.calls == 0 and not c.is_running()


def test_run_button_and_f5(qtbot, window):
    _open_sample(qtbot, window)
    runs = window.state.runs
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.act_run.trigger()
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        qtbot.keyClick(window, Qt.Key.Key_F5)
    assert window.state.runs == runs + 2


def test_ui_thread_keeps_ticking_during_inference(qtbot, window):
    _open_sample(qtbot, window)  # warm: model loaded, first run done
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    qtbot.wait(30)
    spans = []
    for i in range(3):
        start = time.perf_counter()
        with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
            window.set_box((20.0 + 5 * i, 10.0, 370.0, 512.0))
            window.run_now()
        spans.append((start, time.perf_counter()))
    qtbot.wait(30)
    timer.stop()
    t = np.array(ticks)
    for start, end in spans:
        inside = t[(t >= start - 0.01) & (t <= end + 0.01)]
        assert inside.size >= 3, "the timer must tick while the model runs"
        gaps = np.diff(np.concatenate([[start], inside, [end]]))
        print(f"max gap {gaps.max() * 1e3:.1f} ms over {inside.size} ticks in {(end - start) * 1e3:.0f} ms")
        assert gaps.max() < 0.050, f"UI thread blocked for {gaps.max() * 1e3:.0f} ms during inference"


# ------------------------------------------------------------------------------ export ---
def test_export_mesh_obj_reloads_with_trimesh(qtbot, window, tmp_path):
    import trimesh

    bundle = _open_sample(qtbot, window)
    v, f = bundle.result.vertices.shape[0], bundle.result.faces.shape[0]
    obj = tmp_path / "person.obj"
    assert window.export_mesh(obj)
    mesh = trimesh.load(obj, process=False, force="mesh")
    assert (len(mesh.vertices), len(mesh.faces)) == (v, f)
    assert np.allclose(mesh.vertices, bundle.result.vertices_camera, atol=1e-5)

    # Upright frame, other formats by extension; overwriting is fine (the dialog asked).
    for name in ("person.ply", "person.glb", "person.obj"):
        assert window.export_mesh(tmp_path / name, frame="upright")
        m = trimesh.load(tmp_path / name, process=False, force="mesh")
        assert len(m.vertices) == v
        assert m.vertices[:, 1].max() > 0.5 * (m.vertices[:, 1].max() - m.vertices[:, 1].min()) * 0.5
    # No temporary files left behind.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_images_and_json(qtbot, window, tmp_path):
    from PIL import Image

    bundle = _open_sample(qtbot, window)
    assert window.export_overlay_png(tmp_path / "overlay.png")
    assert window.export_pca_png(tmp_path / "pca.png")
    assert window.export_json(tmp_path / "params.json")
    h, w = bundle.result.image_hw
    assert Image.open(tmp_path / "overlay.png").size == (w, h)
    assert Image.open(tmp_path / "pca.png").size == (512, 512)
    data = json.loads((tmp_path / "params.json").read_text())
    assert data["num_vertices"] == bundle.result.vertices.shape[0]
    assert data["box_xyxy"] == list(SAMPLE_BOX)
    # Without OpenGL (offscreen) the 3-D view export says so instead of writing a blank file.
    if not window.mesh.view.isValid():
        assert not window.export_view_png(tmp_path / "view.png")
        assert "OpenGL" in window.banner.text.text()
        assert not (tmp_path / "view.png").exists()


def test_export_errors_are_messages(qtbot, window, tmp_path):
    assert not window.export_mesh(tmp_path / "nothing.obj")  # no result yet
    assert "Nothing to export" in window.banner.text.text()
    _open_sample(qtbot, window)
    assert not window.export_mesh(tmp_path / "mesh.fbx")  # a format the mesh export does not write
    assert ".obj" in window.banner.text.text()
    assert not window.export_mesh(tmp_path / "no-such-folder" / "mesh.obj")
    assert "does not exist" in window.banner.text.text()
    assert window.export_mesh(tmp_path / "mesh.obj")  # and it keeps working


# ------------------------------------------------------------------------- error paths ---
def test_corrupt_image_shows_message_and_window_keeps_working(qtbot, window, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    errors = []
    window.errorShown.connect(errors.append)
    assert not window.open_image(bad)
    assert errors and window.banner.isVisibleTo(window)
    assert "broken.jpg" in window.banner.text.text()
    assert window.state.image is None
    _open_sample(qtbot, window)  # responsive: the next photo works
    assert not window.banner.isVisibleTo(window) or window.banner.level != "error"


def test_box_outside_image_is_refused_with_message(qtbot, window):
    _open_sample(qtbot, window)
    before = window.state.box
    assert not window.set_box((1000.0, 1000.0, 1100.0, 1100.0))
    assert "outside" in window.banner.text.text()
    assert window.state.box == before
    assert not window.set_box((10.0, 10.0, 10.0, 50.0))
    assert "zero width" in window.banner.text.text()


def test_worker_error_arrives_as_message(qtbot, window):
    """A problem found on the worker (here the pipeline's own box check) is a message too."""
    _open_sample(qtbot, window)
    with qtbot.waitSignal(window.errorShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        window.controller.request_inference(window.state.image, _one_person((900.0, 900.0, 950.0, 950.0)),
                                            window.state.image_id)
    assert "outside" in blocker.args[0]
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.run_now()  # still works


def test_unexpected_worker_exception_is_a_message(qtbot, window, monkeypatch, caplog):
    _open_sample(qtbot, window)

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(window.controller.pipeline, "run_people", boom)
    with caplog.at_level("ERROR", logger="sam3dbody_gui.ui.worker"):
        with qtbot.waitSignal(window.errorShown, timeout=RESULT_TIMEOUT_MS) as blocker:
            window.run_now()
    assert "RuntimeError: kaboom" in blocker.args[0]
    # The traceback is for the log (the user gets the one line above).
    logged = [r for r in caplog.records if r.name == "sam3dbody_gui.ui.worker" and r.levelname == "ERROR"]
    assert len(logged) == 1 and "Traceback" in logged[0].getMessage() and "in boom" in logged[0].getMessage()
    monkeypatch.undo()
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.run_now()


def test_broken_model_folder_shows_what_is_missing(qtbot, bare_window, tmp_path, tiny_model_dir):
    w = bare_window
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_config.yaml").write_text("not: a model\n")
    with qtbot.waitSignal(w.errorShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        w.apply_settings(Settings(model_dir=str(broken)), persist=False)
    assert "model.ckpt" in blocker.args[0]
    assert w.banner.isVisibleTo(w) and "model.ckpt" in w.banner.text.text()
    assert "facebook/sam-3d-body-dinov3" in w.banner.text.text()
    assert not w.controller.has_model
    with qtbot.waitSignal(w.modelReady, timeout=RESULT_TIMEOUT_MS):  # fixable from the window
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    _open_sample(qtbot, w)


# --------------------------------------------------------------- no model / demo model ---
def test_first_start_without_model_explains_and_offers_demo(qtbot, bare_window, monkeypatch, tmp_path):
    import sam3dbody_gui.synthetic.demo as demo
    from sam3dbody_gui.app_paths import MODEL_ENV

    monkeypatch.delenv(MODEL_ENV, raising=False)
    w = bare_window
    w.start()  # the sample photo, no model
    assert w.state.image is not None and w.state.box == tuple(float(x) for x in SAMPLE_BOX)
    text = w.banner.text.text()
    assert w.banner.isVisibleTo(w) and "No model yet" in text and "facebook/sam-3d-body-dinov3" in text
    labels = [b.text() for b in w.banner._button_widgets]
    assert any("demo model" in t.lower() and "random" in t.lower() for t in labels)

    # Taking the offer makes the demo model (here in a temporary cache) and runs on the photo.
    monkeypatch.setattr(demo, "demo_model_dir", lambda: tmp_path / "demo-model")
    with qtbot.waitSignal(w.resultShown, timeout=RESULT_TIMEOUT_MS * 2):
        w.banner._button_widgets[0].click()
    assert w.state.model.synthetic
    assert "RANDOM WEIGHTS" in w.windowTitle()
    assert "random" in w.model_label.text()
    assert w.latency.warn_badge.isVisibleTo(w)
    assert "random" in w.banner.text.text()


def test_cancelled_model_load_is_discarded(qtbot, bare_window, tiny_model_dir):
    w = bare_window
    loaded = []
    w.controller.modelLoaded.connect(loaded.append)
    w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    assert w.load_progress.dialog is not None
    from PySide6.QtWidgets import QPushButton

    w.load_progress.dialog.findChild(QPushButton).click()  # the progress dialog's Cancel button
    qtbot.waitUntil(lambda: w.controller.running is None, timeout=RESULT_TIMEOUT_MS)
    qtbot.wait(50)
    assert loaded == [] and not w.controller.has_model
    assert "cancelled" in w.banner.text.text().lower()
    assert not w.state.model.loading


# ------------------------------------------------------------------- mouse / keyboard ---
def test_draw_move_and_resize_box_with_the_mouse(qtbot, window):
    _open_sample(qtbot, window)
    photo = window.photo
    window.set_box(None)
    to_w = lambda x, y: photo.to_widget(x, y).toPoint()  # noqa: E731
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(100, 80))
    qtbot.mouseMove(photo, to_w(200, 150))
    qtbot.mouseMove(photo, to_w(300, 400))
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=to_w(300, 400))
    x1, y1, x2, y2 = window.state.box
    tol = 2.0 / photo._scale()
    assert abs(x1 - 100) < tol and abs(y1 - 80) < tol and abs(x2 - 300) < tol and abs(y2 - 400) < tol

    # Drag inside: move.
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(200, 240))
    qtbot.mouseMove(photo, to_w(230, 250))
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=to_w(230, 250))
    nx1, ny1, nx2, ny2 = window.state.box
    assert abs((nx1 - x1) - 30) < tol and abs((ny1 - y1) - 10) < tol and abs((nx2 - nx1) - (x2 - x1)) < 1e-6

    # Drag the bottom-right handle: resize.
    corner = photo.box_rect().bottomRight().toPoint()
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(photo, corner + QPoint(-20, -30))
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=corner + QPoint(-20, -30))
    rx1, ry1, rx2, ry2 = window.state.box
    assert (rx1, ry1) == (nx1, ny1) and rx2 < nx2 and ry2 < ny2

    # The edit re-runs the model after the debounce.
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args[0].box == window.state.box


def test_keyboard_nudges_and_clears_the_box(qtbot, window):
    _open_sample(qtbot, window)
    photo = window.photo
    photo.setFocus()
    x1, y1, x2, y2 = window.state.box
    qtbot.keyClick(photo, Qt.Key.Key_Right)
    assert window.state.box == (x1 + 1, y1, x2 + 1, y2)
    qtbot.keyClick(photo, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert window.state.box == (x1 + 1, y1 - 10, x2 + 1, y2 - 10)
    qtbot.keyClick(photo, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert window.state.box == (x1 + 1, y1 - 10, x2, y2 - 10)
    qtbot.keyClick(photo, Qt.Key.Key_Delete)
    assert window.state.box is None
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        pass
    assert blocker.args[0].box is None  # whole image


def test_view_controls_keyboard_and_buttons(qtbot, window):
    _open_sample(qtbot, window)
    view = window.mesh.view
    window.view_buttons["side"].click()
    assert view.opts["azimuth"] == 0.0
    window.act_quarter.trigger()
    assert window.mesh.current_view == "three_quarter"
    view.setFocus()
    d = view.opts["distance"]
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.opts["distance"] < d
    qtbot.keyClick(view, Qt.Key.Key_1)
    assert window.mesh.current_view == "front" and view.opts["azimuth"] == -90.0
    window.opacity.setValue(20)
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.state.settings.overlay_opacity == pytest.approx(0.3)
    qtbot.keyClick(window, Qt.Key.Key_K)
    assert window.state.settings.show_keypoints is False
    assert window.keypoints_box.isChecked() is False


# ---------------------------------------------------------------- files and settings ---
def test_drop_recent_and_sample(qtbot, window, tmp_path):
    from PIL import Image

    photo = tmp_path / "dropped.png"
    Image.new("RGB", (200, 300), (90, 120, 160)).save(photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.dropEvent(ev)
    assert window.state.image_path == photo and window.state.image.shape == (300, 200, 3)
    assert window.state.box is None
    assert recent_files(window.store)[0] == photo.resolve()
    window._fill_recent_menu()
    assert window.recent_menu.actions()[0].text().endswith("dropped.png")
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.act_sample.trigger()
    assert window.state.image_path == sample_image_path()


def test_settings_and_geometry_are_remembered(qtbot, store, tiny_model_dir):
    w = _make_window(qtbot, store)
    w.resize(1100, 700)
    with qtbot.waitSignal(w.modelReady, timeout=RESULT_TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir), precision="fp32", device="cpu"))
    w.opacity.setValue(40)
    w.close()
    s = load_settings(store)
    assert s.model_dir == str(tiny_model_dir) and s.device == "cpu"
    assert s.overlay_opacity == pytest.approx(0.4)
    w2 = MainWindow(store)
    qtbot.addWidget(w2)
    assert w2.state.settings.model_dir == str(tiny_model_dir)
    assert not store.value("window/geometry").isEmpty()
    assert w2.height() == 700  # (the offscreen screen is too narrow to check the width)
    assert w2.opacity.value() == 40


# What the Settings dialog must offer on each kind of machine (forced with monkeypatching, so
# every branch runs on any host): (CUDA visible, torch built with CUDA, GPU, compute capability,
# TensorRT installed) -> the reasons of the unavailable backend, precision and device choices.
MACHINES = {
    "cpu-only torch": (False, None, "", None, False),
    "cuda torch, no gpu": (False, "12.4", "", None, True),
    "ampere, tensorrt": (True, "12.4", "NVIDIA A100", (8, 0), True),
    "hopper, no tensorrt": (True, "12.4", "NVIDIA H200", (9, 0), False),
}
NO_FP8_CARD = "fp8 needs an NVIDIA GPU with FP8 tensor cores (Ada or Hopper)"
NO_TENSORRT = "TensorRT is not installed (pip install tensorrt-cu12)"


def _force_machine(monkeypatch, has_cuda, torch_cuda, gpu, capability, tensorrt):
    import torch

    import sam3dbody_gui.ui.backends as backends

    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_cuda)
    monkeypatch.setattr(torch.version, "cuda", torch_cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(backends, "tensorrt_installed", lambda: tensorrt)


def _model_folder(tmp_path, tiny_model_dir, exports: bool) -> Path:
    """A valid model folder (the tiny model's files, linked) with or without backbone exports."""
    folder = tmp_path / ("with-exports" if exports else "no-exports")
    (folder / "assets").mkdir(parents=True)
    for name in ("model.ckpt", "model_config.yaml", "assets/mhr_model.pt"):
        (folder / name).symlink_to(Path(tiny_model_dir) / name)
    if exports:
        (folder / "exports").mkdir()
        for name in ("backbone.onnx", "backbone.pt2"):
            (folder / "exports" / name).write_bytes(b"only its presence is checked here")
    return folder


def _choices(combo) -> dict:
    """key -> (enabled, tooltip, shown text) of every item of a combo box."""
    model = combo.model()
    return {combo.itemData(i): (model.item(i).isEnabled(), model.item(i).toolTip(), combo.itemText(i))
            for i in range(combo.count())}


@pytest.mark.parametrize("machine", list(MACHINES))
def test_settings_dialog_shows_unavailable_choices_with_reasons(qtbot, monkeypatch, tmp_path, tiny_model_dir,
                                                                 machine):
    from sam3dbody_gui.runtime.choices import BACKENDS, PRECISIONS
    from sam3dbody_gui.ui.settings_dialog import SettingsDialog

    has_cuda, torch_cuda, gpu, capability, tensorrt = MACHINES[machine]
    _force_machine(monkeypatch, *MACHINES[machine])
    d = SettingsDialog(Settings(model_dir=str(_model_folder(tmp_path, tiny_model_dir, exports=True)),
                                backend="tensorrt"))
    qtbot.addWidget(d)

    # Backends: every one listed; only TensorRT can be missing here (the folder has both exports).
    backend_reason = {} if has_cuda and tensorrt else \
        {"tensorrt": NO_TENSORRT if not tensorrt else "TensorRT needs a CUDA GPU"}
    backends = _choices(d.backend)
    assert list(backends) == list(BACKENDS) and {"auto", "tensorrt", "pt2", "pytorch"} <= set(backends)
    for key, (enabled, tip, text) in backends.items():
        reason = backend_reason.get(key, "")
        assert (enabled, tip, text.endswith(" — unavailable")) == (not reason, reason, bool(reason)), key
    assert d.reasons == backend_reason
    assert all(r in d.backend_note.text() for r in backend_reason.values())
    # The saved choice is kept when it can run, otherwise Auto (never an unavailable one).
    assert d.backend.currentData() == ("tensorrt" if not backend_reason else "auto")

    # Precisions: only fp8 can be missing: it needs FP8 tensor cores (compute capability 8.9+).
    if not has_cuda:
        fp8_reason = NO_FP8_CARD
    elif capability < (8, 9):
        fp8_reason = f"fp8 needs FP8 tensor cores (Ada or Hopper); {gpu} has none"
    else:
        fp8_reason = ""
    precisions = _choices(d.precision)
    assert list(precisions) == list(PRECISIONS)
    for key, (enabled, tip, text) in precisions.items():
        reason = fp8_reason if key == "fp8" else ""
        assert (enabled, tip, text.endswith(" — unavailable")) == (not reason, reason, bool(reason)), key

    # Devices: CUDA needs a GPU, and says whether torch or the machine lacks it; Auto says which.
    devices = _choices(d.device)
    assert list(devices) == ["auto", "cpu", "cuda"]
    assert devices["auto"][:2] == (True, "") and devices["auto"][2] == ("Auto (CUDA)" if has_cuda else "Auto (CPU)")
    assert devices["cpu"] == (True, "", "CPU")
    if has_cuda:
        assert devices["cuda"] == (True, "", f"CUDA ({gpu})") and d.device_note.text() == ""
    else:
        reason = "this PyTorch build has no CUDA support" if torch_cuda is None else "no CUDA GPU is visible"
        assert devices["cuda"] == (False, reason, "CUDA — unavailable")
        assert d.device_note.text() == f"CUDA: {reason}."

    assert d.mode.model().item(1).isEnabled() and d.mode.itemData(1) == "full"  # full mode (hand refinement)
    d.precision.setCurrentIndex(d.precision.findData("bf16"))
    d.demo.setChecked(True)
    s = d.result_settings()
    assert s.precision == "bf16" and s.use_demo_model and s.mode == "body"


def test_settings_dialog_says_which_backbone_export_a_folder_lacks(qtbot, monkeypatch, tmp_path, tiny_model_dir):
    from sam3dbody_gui.runtime.backbones.plan import ONNX_CANDIDATES, PT2_CANDIDATES
    from sam3dbody_gui.ui.settings_dialog import SettingsDialog

    _force_machine(monkeypatch, *MACHINES["hopper, no tensorrt"][:4], True)  # TensorRT could run
    bare = _model_folder(tmp_path, tiny_model_dir, exports=False)
    d = SettingsDialog(Settings(model_dir=str(bare), backend="pt2"))
    qtbot.addWidget(d)
    expected = {"tensorrt": f"the model folder has no backbone ONNX ({' or '.join(ONNX_CANDIDATES)})",
                "pt2": f"the model folder has no .pt2 backbone ({' or '.join(PT2_CANDIDATES)})"}
    assert d.reasons == expected
    backends = _choices(d.backend)
    for key, (enabled, tip, _text) in backends.items():
        assert (enabled, tip) == (key not in expected, expected.get(key, "")), key
    assert d.backend.currentData() == "auto"
    # The demo model is made with its exports when chosen: nothing is refused for it up front.
    d.demo.setChecked(True)
    assert d.reasons == {} and all(enabled for enabled, _, _ in _choices(d.backend).values())


def test_box_dialog_values_apply(qtbot, window, monkeypatch):
    from PySide6.QtWidgets import QDialog, QDoubleSpinBox

    _open_sample(qtbot, window)

    def fake_exec(self):
        spins = self.findChildren(QDoubleSpinBox)
        for sp, v in zip(spins, (50, 40, 300, 480)):
            sp.setValue(v)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(QDialog, "exec", fake_exec)
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS):
        window.box_dialog()
    assert window.state.box == (50.0, 40.0, 300.0, 480.0)


def test_cli_gui_options_reach_the_window(monkeypatch):
    import sam3dbody_gui.ui.app as app
    from sam3dbody_gui.cli import main

    calls = []
    monkeypatch.setattr(app, "run_gui", lambda **kw: calls.append(kw) or 0)
    assert main(["--image", "p.jpg", "--bbox", "1", "2", "30", "40", "--model", "m", "--backend", "pytorch"]) == 0
    assert main(["gui", "--model", "m2"]) == 0
    assert main(["--model", "m3", "gui"]) == 0
    assert calls[0] == {"image": Path("p.jpg"), "bbox": [1.0, 2.0, 30.0, 40.0], "model": Path("m"), "backend": "pytorch"}
    assert calls[1]["model"] == Path("m2") and calls[1]["image"] is None
    assert calls[2]["model"] == Path("m3")


def test_cli_start_options_apply(qtbot, bare_window, tiny_model_dir, tmp_path):
    from PIL import Image

    photo = tmp_path / "person.png"
    Image.new("RGB", (320, 240), (200, 180, 160)).save(photo)
    w = bare_window
    with qtbot.waitSignal(w.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        w.start(model_dir=tiny_model_dir, backend="pytorch", image=photo, bbox=(10, 20, 200, 230))
    assert blocker.args[0].box == (10.0, 20.0, 200.0, 230.0)
    assert w.state.settings.backend == "pytorch"
    assert load_settings(w.store).model_dir == ""  # command-line choices are for this session only

    # A --bbox that misses the photo: said in the banner; the whole photo is used meanwhile.
    with qtbot.waitSignal(w.resultShown, timeout=RESULT_TIMEOUT_MS):
        assert w.open_image(photo, box=(500, 500, 600, 600))
    assert "outside" in w.banner.text.text() and w.state.box is None
    assert w.banner.isVisibleTo(w)  # still there after the run
    assert w.set_box((10, 10, 100, 100)) and w.banner.kind != "box"  # a good box clears it
    assert "box" not in w.banner.news  # (the demo model's notice it covered shows again)


# ------------------------------------------------------------- worker-side rendering ---
def test_overlay_layer_matches_the_export_renderer(tiny_loaded):
    """The window's vectorised z-buffer draws the same mesh as export/overlay.py's painter."""
    from sam3dbody_gui.export.overlay import render_overlay
    from sam3dbody_gui.pipeline.image_io import load_image
    from sam3dbody_gui.pipeline.pipeline import Pipeline
    from sam3dbody_gui.runtime.backbones.pytorch_backend import PyTorchBackbone
    from sam3dbody_gui.ui.render import compose_overlay, make_bundle, person_shown

    image = load_image(sample_image_path())
    pipeline = Pipeline(tiny_loaded, PyTorchBackbone(tiny_loaded.model.backbone.encoder))
    result = pipeline.run(image, SAMPLE_BOX, None)
    bundle = make_bundle(1, [person_shown(1, (SAMPLE_BOX, "body", (), None, ()), 0, result, 0.0)], 1, 0.0)
    ours = np.asarray(compose_overlay(image, bundle, 1.0, False, draw_box=False)).astype(int)
    theirs = np.asarray(render_overlay(image, result, 1.0, show_keypoints=False, draw_box=False)).astype(int)
    mesh_ours = np.abs(ours - image).sum(2) > 0
    mesh_theirs = np.abs(theirs - image).sum(2) > 0
    iou = (mesh_ours & mesh_theirs).sum() / max(1, (mesh_ours | mesh_theirs).sum())
    assert mesh_theirs.mean() > 0.01 and iou > 0.9, iou
    both = mesh_ours & mesh_theirs
    assert np.median(np.abs(ours[both] - theirs[both]).sum(1)) <= 6  # same colour and shade

    # A large photo: the panel gets a reduced layer, the export is drawn at full size.
    big = np.asarray(_upscaled(image, 4))
    result = pipeline.run(big, [v * 4 for v in SAMPLE_BOX], None)
    bundle = make_bundle(2, [person_shown(1, (None, "body", (), None, ()), 0, result, 0.0)], 2, 0.0)
    assert bundle.layer_scale < 1 and max(bundle.mesh_layer.shape[:2]) <= 1280
    assert compose_overlay(big, bundle, 0.7, True).size == (big.shape[1], big.shape[0])


def _upscaled(image: np.ndarray, factor: int):
    from PIL import Image

    return Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor))


# ------------------------------------------------------------------------- full mode ---
def test_full_mode_runs_on_release_and_body_mode_while_dragging(qtbot, window):
    """Settings ▸ Mode: Full refines the hands; a box drag still runs the fast body mode, and
    letting go of the box runs full mode. The latency panel shows the hand stages only then."""
    from dataclasses import replace

    from sam3dbody_gui.ui.settings_dialog import SettingsDialog

    d = SettingsDialog(window.state.settings)
    qtbot.addWidget(d)
    d.mode.setCurrentIndex(d.mode.findData("full"))
    settings = d.result_settings()
    assert settings.mode == "full" and settings.model_key() == window.state.settings.model_key()
    assert _open_sample(qtbot, window).result.mode == "body"
    lat = window.latency
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        window.apply_settings(settings, persist=False)  # no reload: the same model runs both modes
    full = blocker.args[0].result
    assert full.mode == "full" and full.hands is not None
    for stage in ("hand crops", "hand backbone", "hand decoder", "body re-run"):
        assert lat.tiles[stage].isVisibleTo(lat) and LATENCY_TEXT.match(lat.value_labels[stage].text())

    photo = window.photo
    to_w = lambda x, y: photo.to_widget(x, y).toPoint()  # noqa: E731
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(150, 200))
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        qtbot.mouseMove(photo, to_w(170, 210))  # held still past the debounce, mid-drag
    assert photo.dragging and blocker.args[0].result.mode == "body"
    assert not lat.tiles["hand decoder"].isVisibleTo(lat)
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=to_w(170, 210))
    assert not photo.dragging and blocker.args[0].result.mode == "full"
    assert blocker.args[0].box == window.state.box
    with qtbot.waitSignal(window.resultShown, timeout=RESULT_TIMEOUT_MS) as blocker:
        window.apply_settings(replace(window.state.settings, mode="body"), persist=False)
    assert blocker.args[0].result.mode == "body" and not lat.tiles["body re-run"].isVisibleTo(lat)

