"""The 3-D view rendered with a real OpenGL context: Xvfb + Mesa (llvmpipe), Qt's xcb platform.

Qt picks its platform once per process and the other UI tests use `offscreen` (which has no
OpenGL), so the window runs in a subprocess (`python -m sam3dbody_gui.ui.selfcheck`) on a
private Xvfb display started here. Skipped, with the reason, where Xvfb is not installed
(.ci/run installs it: xvfb, libgl1-mesa-dri and the libxcb libraries Qt's xcb plugin needs).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys

import pytest

XVFB = shutil.which("Xvfb")


@pytest.fixture(scope="session")
def xvfb_display():
    if XVFB is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb libgl1-mesa-dri libxcb-cursor0 ...); "
                    "the OpenGL view test needs an X server")
    read_fd, write_fd = os.pipe()
    # -noreset: without it the server re-initialises when its last client leaves and writes the
    # display number to the pipe again; a closed pipe then kills it ("Cannot write display number").
    proc = subprocess.Popen([XVFB, "-displayfd", str(write_fd), "-noreset", "-screen", "0", "1600x1000x24",
                             "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 30)
    number = os.read(read_fd, 64).decode().strip() if ready else ""
    if not number:
        proc.kill()
        os.close(read_fd)
        pytest.fail("Xvfb did not start (no display number within 30 s)")
    try:
        yield f":{number}"
    finally:
        os.close(read_fd)  # kept open while the server runs, for the same reason
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_3d_view_renders_the_mesh_with_opengl(xvfb_display, tiny_model_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env.update(DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sam3dbody_gui.ui.selfcheck", "--model", str(tiny_model_dir),
         "--report", str(report_path), "--view", str(tmp_path / "view.png"),
         "--screenshot", str(tmp_path / "window.png"), "--timeout", "180"],
        env=env, capture_output=True, text=True, timeout=300)
    log = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, log
    report = json.loads(report_path.read_text())
    report["log"] = log
    assert report["platform"] == "xcb"
    assert report["gl_valid"], "no OpenGL context under Xvfb (is libgl1-mesa-dri installed?)"
    assert report["vertices"] > 0
    # The body covers a good part of the view, and most of its centre; the background is plain.
    assert report["mesh_fraction"] > 0.02, report
    assert report["centre_fraction"] > 0.10, report
    for name, (overall, centre) in report["views"].items():
        assert overall > 0.01 and centre > 0.05, (name, report["views"])
    assert report["side_vs_front_change"] > 0.01, "the side view should differ from the front view"
    for text in report["latency_text"].values():
        assert text.endswith("ms") or text.endswith("s")
    assert report["body_in_view"] and report["latency_texts_fit"], report
    if report["x_title"]:  # what the window manager shows: the app's name once (issue 18)
        assert report["x_title"].count("SAM 3D Body") == 1 and report["x_title"].endswith("SAM 3D Body"), report
    assert (tmp_path / "view.png").stat().st_size > 1000
    assert (tmp_path / "window.png").stat().st_size > 10000
