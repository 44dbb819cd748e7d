"""File ▸ Export's slow exports from the window (Export all, contact sheet, turntable, rigged GLB,
BVH): they run on a worker, write atomically, and end with one message. Headless, with the
tiny synthetic model, as test_ui.py."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings, QTimer  # noqa: E402

from sam3dbody_gui.bundled import SAMPLE_BOX, sample_image_path  # noqa: E402
from sam3dbody_gui.ui.main_window import MainWindow  # noqa: E402
from sam3dbody_gui.ui.state import Settings  # noqa: E402

TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path, tiny_model_dir) -> MainWindow:
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.open_image(sample_image_path(), box=SAMPLE_BOX)
    return w


def _finish(qtbot, w, start) -> str:
    """Start an export; return its one closing message ("ok: …" or "failed: …")."""
    out = []
    w.exports.jobs.finished.connect(lambda text: out.append("ok: " + text))
    w.exports.jobs.failed.connect(lambda text: out.append("failed: " + text))
    assert start()
    qtbot.waitUntil(lambda: bool(out), timeout=TIMEOUT_MS)
    return out[0]


def test_export_all_writes_the_four_files_on_a_worker(qtbot, window, tmp_path, monkeypatch):
    import trimesh
    from PIL import Image

    from sam3dbody_gui.export import service

    threads, real_plan = [], service.plan_writers

    def spy(*args, **kwargs):  # the job imports the service's plan_writers when it runs
        threads.append(threading.current_thread())
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(service, "plan_writers", spy)
    bundle = window.state.bundle
    message = _finish(qtbot, window, lambda: window.exports.export_all(tmp_path))
    assert message.startswith("ok: Exported 4 files"), message
    assert threads and threads[0] is not threading.main_thread()
    stem = "sample_astronaut"
    mesh = trimesh.load(tmp_path / f"{stem}_mesh.obj", process=False, force="mesh")
    assert len(mesh.vertices) == bundle.result.vertices.shape[0]
    assert np.allclose(mesh.vertices, bundle.result.vertices_camera, atol=1e-5)
    h, w = bundle.result.image_hw
    assert Image.open(tmp_path / f"{stem}_overlay.png").size == (w, h)
    assert Image.open(tmp_path / f"{stem}_pca.png").size == (512, 512)
    data = json.loads((tmp_path / f"{stem}_params.json").read_text())
    assert data["num_vertices"] == bundle.result.vertices.shape[0]
    assert window.state.last_message[0] == message[4:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left

    # Not replacing: refused before anything is written, as one message in the banner.
    before = (tmp_path / f"{stem}_mesh.obj").stat().st_mtime_ns
    message = _finish(qtbot, window, lambda: window.exports.export_all(tmp_path, replace=False))
    assert message.startswith("failed: not replacing the existing file"), message
    assert window.banner.kind == "export" and "not replacing" in window.banner.text.text()
    assert (tmp_path / f"{stem}_mesh.obj").stat().st_mtime_ns == before


def test_contact_sheet_and_turntable(qtbot, window, tmp_path):
    import av
    from PIL import Image

    from sam3dbody_gui.export.contact_sheet import CAPTION_HEIGHT, PANEL
    from sam3dbody_gui.export.turntable_file import FRAMES_PER_TURN

    message = _finish(qtbot, window, lambda: window.exports.export_job("sheet", tmp_path / "sheet.png"))
    assert message == f"ok: Contact sheet saved: {tmp_path / 'sheet.png'}"
    assert Image.open(tmp_path / "sheet.png").size == (4 * PANEL, PANEL + CAPTION_HEIGHT)

    progress = []
    window.exports.jobs.progress.connect(progress.append)
    message = _finish(qtbot, window, lambda: window.exports.export_job("turntable", tmp_path / "spin.gif"))
    assert message.startswith("ok: Turntable saved") and f"{FRAMES_PER_TURN} frames" in message
    gif = Image.open(tmp_path / "spin.gif")
    assert gif.n_frames == FRAMES_PER_TURN
    assert any(f"frame {FRAMES_PER_TURN} of {FRAMES_PER_TURN}" in p for p in progress), progress

    message = _finish(qtbot, window, lambda: window.exports.export_job("turntable", tmp_path / "spin.mp4"))
    assert message.startswith("ok: "), message
    with av.open(str(tmp_path / "spin.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES_PER_TURN


def test_rigged_glb_and_bvh(qtbot, window, tmp_path):
    import pygltflib

    message = _finish(qtbot, window, lambda: window.exports.export_job("rigged", tmp_path / "body.glb"))
    assert message.startswith("ok: Rigged body saved") and "joints" in message, message
    gltf = pygltflib.GLTF2().load(str(tmp_path / "body.glb"))
    assert len(gltf.skins) == 1 and len(gltf.skins[0].joints) > 10

    message = _finish(qtbot, window, lambda: window.exports.export_job("bvh", tmp_path / "pose.bvh"))
    assert message.startswith("ok: Skeleton motion saved"), message
    text = (tmp_path / "pose.bvh").read_text()
    assert text.startswith("HIERARCHY") and "Frames: 1" in text


def test_export_problems_are_one_message(qtbot, window, tmp_path):
    for what, path, expected in (("turntable", tmp_path / "spin.avi", "use .gif or .mp4"),
                                 ("rigged", tmp_path / "body.obj", "saved as .glb"),
                                 ("sheet", tmp_path / "no-such-folder" / "sheet.png", "does not exist"),
                                 ("sheet", sample_image_path(), "itself")):
        message = _finish(qtbot, window, lambda: window.exports.export_job(what, path))
        assert message.startswith("failed: ") and expected in message, (what, message)
        assert "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "spin.avi").exists() and not (tmp_path / "body.obj").exists()


def test_the_ui_thread_keeps_ticking_during_a_slow_export(qtbot, window, tmp_path, monkeypatch):
    """The turntable's frames are drawn off the UI thread (slowed here so that it shows)."""
    from sam3dbody_gui.export import turnaround

    real = turnaround.turntable_frames

    def slow(*args, **kwargs):
        for frame in real(*args, **kwargs):
            time.sleep(0.02)
            yield frame

    monkeypatch.setattr(turnaround, "turntable_frames", slow)
    import sam3dbody_gui.export.turntable_file as turntable_file

    monkeypatch.setattr(turntable_file, "turntable_frames", slow)
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    _finish(qtbot, window, lambda: window.exports.export_job("turntable", tmp_path / "spin.gif"))
    end = time.perf_counter()
    timer.stop()
    assert end - start > 0.6
    assert len([t for t in ticks if start <= t <= end]) >= (end - start) / 0.010 * 0.5


def test_every_export_is_in_the_file_menu(window):
    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    for wanted in ("Export &all…", "Export contact s&heet PNG…", "Export &turntable (GIF / MP4)…",
                   "Export ri&gged body (GLB)…", "Export skeleton &motion (BVH)…"):
        assert wanted in texts
        assert window.actions_by_name[next(n for n, a in window.actions_by_name.items() if a.text() == wanted)].isEnabled()
