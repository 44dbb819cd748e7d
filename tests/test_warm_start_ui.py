"""The window shows the background build of the fast path (pipeline/warm_start.py): the latency
panel's backend badge says its status, and once it is swapped in, the backend it swapped to."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

from sam3dbody_gui.runtime.backbones.base import BackendInfo
from sam3dbody_gui.ui.latency_view import LatencyView
from sam3dbody_gui.ui.model_controller import ModelController
from sam3dbody_gui.ui.state import AppState, ModelStatus
from sam3dbody_gui.ui.worker import LoadedPipeline


class _Inference(QObject):  # the three signals ModelController listens to
    modelLoaded = Signal(object)
    modelFailed = Signal(str, bool)
    loadProgress = Signal(str)


@dataclass
class _Backbone:
    info: BackendInfo


class _FastPath:
    done = False


class _Pipeline:
    def __init__(self) -> None:
        self.backbone = _Backbone(BackendInfo("pytorch", "fp8", "cuda:0 (H200)"))
        self.fast_path_status = "compiling in the background"
        self.fast_path = _FastPath()
        self.decoder_label = "eager, bf16"


def _watched(qtbot, tmp_path):
    """A latency view and the model controller watching a (stand-in) pipeline's background build."""
    state = AppState()
    view = LatencyView(state)
    qtbot.addWidget(view)
    controller = ModelController(state, QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), _Inference())
    return state, view, controller, _Pipeline()


def test_the_badge_shows_the_fast_path_until_it_is_swapped_in(qtbot, tmp_path):
    state, view, controller, pipe = _watched(qtbot, tmp_path)
    controller._on_loaded(LoadedPipeline(pipe, Path("/models/x"), "pytorch", pipe.backbone.info.label(), False,
                                         pipe.decoder_label))
    assert "fast path compiling in the background" in view.backend_badge.full_text()
    assert controller._fast_path_timer.isActive()
    # The build swaps in: the next poll shows the compiled backend and says so once.
    pipe.backbone = _Backbone(BackendInfo("pytorch-compiled", "fp8", "cuda:0 (H200)"))
    pipe.decoder_label = "compiled + CUDA graph, bf16"
    pipe.fast_path_status = "in use (checked: mesh vs eager mean 0.10 mm, max 0.40 mm (limit 5 / 30))"
    pipe.fast_path.done = True
    controller._poll_fast_path()
    text = view.backend_badge.full_text()
    assert "backbone pytorch-compiled" in text and "fast path in use" in text and "compiled + CUDA graph" in text
    assert "mean 0.10 mm" in view.backend_badge.toolTip()
    assert state.last_message[0].startswith("Fast path in use") and not controller._fast_path_timer.isActive()


def test_a_failed_build_is_a_warning_and_a_blocking_build_shows_nothing(qtbot, tmp_path):
    state, view, controller, pipe = _watched(qtbot, tmp_path)
    controller._on_loaded(LoadedPipeline(pipe, Path("/models/x"), "pytorch", pipe.backbone.info.label(), False))
    pipe.fast_path_status = "failed: RuntimeError: no compiler; using the eager path"
    pipe.fast_path.done = True
    controller._poll_fast_path()
    assert "fast path failed" in view.backend_badge.full_text() and state.last_message[1] == "warning"
    state.set_model(ModelStatus(loaded=True, backend="pytorch", precision="fp32", device="cpu"))
    assert "fast path" not in view.backend_badge.full_text()


def test_closing_the_window_mid_build_exits_at_once(tiny_model_dir, tmp_path):
    """A background compile cannot be interrupted (minutes on a GPU): closing the window while it
    runs must end the process, not leave it running with no window on screen."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, threading
        from pathlib import Path
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from sam3dbody_gui.pipeline import warm_start
        from sam3dbody_gui.ui import app as app_module, main_window

        warm_start.hooks.before_build = lambda: threading.Event().wait()  # a compile that never ends
        shown = main_window.MainWindow.show

        def show(self):
            shown(self)
            timer = QTimer(self)
            def ready():  # the first photo answered, nothing queued: only the build is left running
                c = self.controller
                if c.pipeline is not None and c.pipeline.answered.is_set() and not c.is_running():
                    assert not c.pipeline.fast_path.done
                    QApplication.quit()

            timer.timeout.connect(ready)
            timer.start(100)

        main_window.MainWindow.show = show
        sys.exit(app_module.run_gui(model=Path(sys.argv[1])))
    """)
    env = dict(os.environ, SAM3DBODY_GUI_WARM_START="1", QT_QPA_PLATFORM="offscreen",
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script, str(tiny_model_dir)], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_longer_status_shortens_the_badge_and_never_widens_the_panel(qtbot):
    """The fast path's status changes the badge's text while the window is open: the panel keeps
    its width (the layout must not jump), and a narrow panel shows a shortened badge."""
    from dataclasses import replace

    state = AppState()
    view = LatencyView(state)
    qtbot.addWidget(view)
    loaded = replace(state.model, loaded=True, backend="pytorch", precision="fp8", device="cuda:0 (H200)",
                     decoder="eager, bf16", backend_label="pytorch fp8 on cuda:0")
    state.set_model(loaded)
    narrowest = view.minimumSizeHint().width()
    state.set_model(replace(loaded, fast_path="compiling in the background, then checked against the eager path "
                                              "on a calibration crop, swapped in between two runs"))
    assert view.minimumSizeHint().width() == narrowest
    view.resize(360, 260)
    view.show()
    qtbot.waitExposed(view)
    badge = view.backend_badge
    assert "swapped in between two runs" in badge.full_text() and badge.text().endswith("…")
    assert badge.text() != badge.full_text() and badge.width() <= view.width()
    assert badge.fontMetrics().horizontalAdvance(badge.text()) <= badge.contentsRect().width()


def test_an_eager_fast_path_that_missed_its_check_runs_the_photo_again_on_fp32(qtbot, tmp_path):
    """The window's first start answers on eager int8 before its check against fp32 has run
    (build.py `_eager_check`); a miss puts fp32 in place, and the photo on screen came from int8."""
    import numpy as np

    state, view, controller, pipe = _watched(qtbot, tmp_path)
    pipe.backbone = _Backbone(BackendInfo("pytorch", "int8", "cpu"))
    controller._on_loaded(LoadedPipeline(pipe, Path("/models/x"), "pytorch", pipe.backbone.info.label(), False))
    reruns = []
    controller.rerunWanted.connect(lambda: reruns.append(1))
    state.set_image(np.zeros((8, 8, 3), np.uint8), "photo.png")
    pipe.backbone = _Backbone(BackendInfo("pytorch", "fp32", "cpu"))
    pipe.fast_path_status = ("not built: the int8 CPU path missed the fidelity check (mesh vs fp32 mean 6.00 mm, "
                             "max 9.00 mm (limit 5 / 30)); fp32 is in use")
    pipe.fast_path.done = True
    controller._poll_fast_path()
    assert reruns == [1] and state.last_message[1] == "warning"
    assert "fp32" in view.backend_badge.full_text()
    # A build that merely failed keeps the path the photo ran on: nothing to run again.
    state2, _, controller2, pipe2 = _watched(qtbot, tmp_path)
    controller2._on_loaded(LoadedPipeline(pipe2, Path("/models/x"), "pytorch", pipe2.backbone.info.label(), False))
    again = []
    controller2.rerunWanted.connect(lambda: again.append(1))
    state2.set_image(np.zeros((8, 8, 3), np.uint8), "photo.png")
    pipe2.fast_path_status, pipe2.fast_path.done = "failed: RuntimeError: no compiler; using the eager path", True
    controller2._poll_fast_path()
    assert again == []
