"""The Models dialog and the first-run flow, headless (Qt's offscreen platform, as test_ui.py).

Downloads go to the Hub stand-in of tests/fake_hub.py on 127.0.0.1 with the real
huggingface_hub client, into a temporary cache.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from fake_hub import FakeHub, isolate_huggingface_hub, repos_from_model  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from sam3dbody_gui import hub  # noqa: E402
from sam3dbody_gui.ui.main_window import MainWindow  # noqa: E402
from sam3dbody_gui.ui.models_dialog import ModelsDialog, linkify  # noqa: E402
from sam3dbody_gui.ui.state import Settings  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture(autouse=True)
def isolated_hf(monkeypatch, tmp_path):
    isolate_huggingface_hub(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def repo_contents(tiny_model_dir):
    return repos_from_model(tiny_model_dir)


@pytest.fixture
def server(repo_contents):
    fh = FakeHub(repo_contents, gated={hub.MODEL_REPO}).start()
    yield fh
    fh.stop()


@pytest.fixture
def base_options(tmp_path, server) -> hub.HubOptions:
    return hub.HubOptions(cache_dir=tmp_path / "hub", endpoint=server.url, link_dir=tmp_path / "links")


@pytest.fixture
def dialog(qtbot, base_options) -> ModelsDialog:
    d = ModelsDialog(Settings(), None, base_options)
    qtbot.addWidget(d)
    d.show()
    return d


@pytest.fixture
def store(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


# ------------------------------------------------------------------------ the dialog ---
def test_lists_every_file_missing_at_first(dialog):
    rows = dialog.rows()
    assert list(rows) == [f.filename for f in hub.ALL_FILES]
    assert rows["model.ckpt"][0] == "missing" and rows["sample_input.png"][0] == "missing (optional)"
    assert not dialog.use_button.isEnabled() and dialog.download_button.isEnabled()
    assert "not installed" in dialog.status_text
    assert "No token found" in dialog.token_note.text()


def test_download_with_progress_then_use(qtbot, dialog, server, tmp_path):
    dialog.token.setText("hf_granted")
    dialog.backbone.setChecked(True)
    seen = []
    with qtbot.waitSignal(dialog.downloadFinished, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start_download()
        assert dialog.downloading and dialog.cancel_button.isEnabled() and not dialog.download_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.progress.value() > 0 or not dialog.downloading, timeout=TIMEOUT_MS)
        seen.append(dialog.progress.value())
    result = blocker.args[0]
    assert len(result.downloaded) == len(hub.ALL_FILES)
    rows = dialog.rows()
    assert all(status == "present" for status, _, _ in rows.values()), rows
    assert rows["model.ckpt"][1] == hub.format_size(len(server.repos[hub.MODEL_REPO]["model.ckpt"]))
    assert str(tmp_path / "hub") in rows["model.ckpt"][2]
    assert dialog.progress.value() == 1000 and "verified" in dialog.status_text
    assert "usable" in dialog.report.toPlainText() and dialog.last_report.ok
    assert dialog.use_button.isEnabled() and not dialog.downloading
    assert server.log[-1].auth == "Bearer hf_granted"
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS):
        assert dialog.use_current()
    assert dialog.chosen == ("folder", tmp_path / "links")


def test_gated_error_is_shown_with_what_to_do(qtbot, dialog):
    with qtbot.waitSignal(dialog.downloadFailed, timeout=TIMEOUT_MS) as blocker:
        dialog.start_download()
    message, cancelled = blocker.args
    assert not cancelled and "SAM License" in message
    assert dialog.status_level == "error" and "hf auth login" in dialog.status_text
    assert f"href='{hub.MODEL_PAGE}'" in dialog.status.text()  # a clickable link to accept the licence
    assert dialog.download_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_cancel_keeps_the_partial_download_and_resumes(qtbot, dialog, server, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 128 * 1024)
    server.chunk_delay = 0.01  # ~6 MB/s: the cancel lands mid-file
    dialog.token.setText("hf_granted")
    with qtbot.waitSignal(dialog.downloadFailed, timeout=TIMEOUT_MS) as blocker:
        dialog.start_download()
        qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=TIMEOUT_MS)
        dialog.cancel_download()
    assert blocker.args[1] is True
    assert "cancelled" in dialog.status_text and "resumes" in dialog.status_text
    kept = hub.cached_partials(dialog.options(), hub.MODEL_REPO)
    assert kept > 0
    assert "resumes" in dialog.status_text

    server.chunk_delay = 0.0
    with qtbot.waitSignal(dialog.downloadFinished, timeout=TIMEOUT_MS):
        dialog.start_download()
    assert server.gets("model.ckpt")[-1].range == f"bytes={kept}-"
    assert dialog.rows()["model.ckpt"][0] == "present"


def test_closing_during_a_download_stops_it(qtbot, dialog, server, monkeypatch):
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 128 * 1024)
    server.chunk_delay = 0.01
    dialog.token.setText("hf_granted")
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=TIMEOUT_MS)
    dialog.reject()
    assert not dialog.downloading and not dialog.isVisible()


def test_a_folder_is_verified_before_use(qtbot, dialog, tmp_path, tiny_model_dir):
    (tmp_path / "empty").mkdir()
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS):
        assert dialog.use_folder(tmp_path / "empty")
    assert dialog.chosen is None and dialog.status_level == "error"
    assert "missing model.ckpt" in dialog.status_text and "FAIL" in dialog.report.toPlainText()
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS) as blocker:
        assert dialog.use_folder(tiny_model_dir)
    assert dialog.chosen == ("folder", Path(tiny_model_dir))
    assert blocker.args[0].rig_run  # the user chose this folder: its rig was loaded and run once


def test_verification_runs_off_the_ui_thread(qtbot, dialog, tiny_model_dir, monkeypatch):
    """A slow verification (a huge checkpoint, a deep check) must not freeze the window."""
    import threading
    import time

    from PySide6.QtCore import QTimer

    from sam3dbody_gui.model import verify

    real = verify.verify_model_folder
    threads = []

    def slow(*args, **kwargs):
        threads.append(threading.current_thread())
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(verify, "verify_model_folder", slow)
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS):
        assert dialog.use_folder(tiny_model_dir)
        assert dialog.verifying and not dialog.use_button.isEnabled() and dialog.cancel_button.isEnabled()
        assert not dialog.use_folder(tiny_model_dir), "one verification at a time"
    timer.stop()
    assert threads and threads[0] is not threading.main_thread()
    during = [t for t in ticks if start <= t <= start + 1.0]
    assert len(during) >= 20, f"the UI thread ticked {len(during)} times in the 1 s verification"
    assert dialog.chosen == ("folder", Path(tiny_model_dir)) and not dialog.verifying


def test_a_config_that_used_to_hang_is_refused_at_once(qtbot, dialog, tmp_path, tiny_model_dir):
    import shutil

    bad = tmp_path / "deep"
    shutil.copytree(tiny_model_dir, bad)
    cfg = bad / "model_config.yaml"
    cfg.write_text(cfg.read_text().replace("DEPTH: 6", "DEPTH: 1000000000", 1))
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS) as blocker:
        dialog.use_folder(bad)
    assert not blocker.args[0].ok and dialog.chosen is None
    assert "DECODER.DEPTH" in dialog.status_text and dialog.status_level == "error"


def test_cancelling_a_verification_uses_nothing(qtbot, dialog, tiny_model_dir, monkeypatch):
    import time

    from sam3dbody_gui.model import verify

    real = verify.verify_model_folder

    def slow(*args, cancel=None, **kwargs):
        while not cancel.is_set():
            time.sleep(0.01)
        return real(*args, cancel=cancel, **kwargs)

    monkeypatch.setattr(verify, "verify_model_folder", slow)
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS) as blocker:
        dialog.use_folder(tiny_model_dir)
        dialog.cancel_download()  # the one Cancel button
    assert blocker.args[0].cancelled and dialog.chosen is None and dialog.status_level == "warning"
    assert "cancelled" in dialog.status_text and not dialog.verifying and dialog.folder_button.isEnabled()


def test_the_dialog_says_the_rig_is_code(dialog):
    text = dialog.safety.text()
    assert "TorchScript" in text and "code" in text and "read and write files" in text
    assert "a folder you chose" in text
    assert dialog.deep_check.text().startswith("Deep check") and not dialog.deep_check.isChecked()


def test_a_deep_check_from_the_dialog_shows_the_hashes(qtbot, dialog, tiny_model_dir):
    import hashlib

    dialog.deep_check.setChecked(True)
    with qtbot.waitSignal(dialog.verificationFinished, timeout=TIMEOUT_MS):
        dialog.use_folder(tiny_model_dir)
    text = dialog.report.toPlainText()
    assert hashlib.sha256((Path(tiny_model_dir) / "model.ckpt").read_bytes()).hexdigest() in text
    assert "weights finite" in text


def test_demo_choice(dialog):
    dialog.use_demo()
    assert dialog.chosen == ("demo", None) and dialog.result() == ModelsDialog.DialogCode.Accepted


def test_offline_mode_disables_download(qtbot, base_options, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    d = ModelsDialog(Settings(), None, base_options)
    qtbot.addWidget(d)
    assert not d.download_button.isEnabled() and "HF_HUB_OFFLINE=1" in d.status_text


def test_linkify():
    assert linkify("open https://huggingface.co/x, then <go>") == \
        "open <a href='https://huggingface.co/x'>https://huggingface.co/x</a>, then &lt;go&gt;"


# ---------------------------------------------------------------------- the window ---
def test_first_start_offers_download_folder_and_demo(qtbot, store, monkeypatch):
    import sam3dbody_gui.cli as cli

    monkeypatch.delenv(cli.MODEL_ENV, raising=False)
    monkeypatch.setattr(hub, "find_installed_model", lambda options=None: None)
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.show()
    w.start()
    text = w.banner.text.text()
    assert "No model yet" in text and "SAM License" in text and "Get the model" in text
    labels = [b.text() for b in w.banner._button_widgets]
    assert labels == ["Use demo model (random weights)", "Get the model…", "Choose model folder…"]
    assert w.act_models in w.menuBar().actions()[3].menu().actions()  # Model ▸ Models…


def test_first_start_uses_a_model_already_in_the_cache(qtbot, store, monkeypatch, tiny_model_dir):
    import sam3dbody_gui.cli as cli

    monkeypatch.delenv(cli.MODEL_ENV, raising=False)
    monkeypatch.setattr(hub, "find_installed_model", lambda options=None: Path(tiny_model_dir))
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.show()
    messages = []
    w.state.message.connect(lambda text, level: messages.append(text))
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        w.start()
    assert w.state.model.folder == Path(tiny_model_dir) and "No model yet" not in w.banner.text.text()
    assert any("found in the Hugging Face cache" in m for m in messages)


def test_the_dialogs_choice_loads_the_model(qtbot, store, tiny_model_dir, tmp_path, monkeypatch):
    from sam3dbody_gui.synthetic import demo

    w = MainWindow(store)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.apply_model_choice(("folder", Path(tiny_model_dir)))
    assert w.state.settings.model_dir == str(tiny_model_dir) and not w.state.settings.use_demo_model
    monkeypatch.setattr(demo, "demo_model_dir", lambda: tmp_path / "demo-model")
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS * 2):
        w.apply_model_choice(("demo", None))
    assert w.state.model.synthetic


# ------------------------------------------- the download worker, the token, the detector ---
def test_the_download_runs_on_a_superqt_worker_with_no_thread_kept(qtbot, dialog, monkeypatch):
    import threading

    import sam3dbody_gui.ui.models_dialog as models_dialog
    import sam3dbody_gui.ui.models_download as models_download

    assert not hasattr(models_dialog, "_ORPHANS") and not hasattr(ModelsDialog, "_session_token")
    threads = []
    real = hub.download

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(hub, "download", spy)
    workers, real_create = [], models_download.create_worker
    monkeypatch.setattr(models_download, "create_worker", lambda *a, **k: workers.append(a) or real_create(*a, **k))
    assert not dialog.progress.isVisibleTo(dialog)  # no empty strip at rest
    dialog.token.setText("hf_granted")
    with qtbot.waitSignal(dialog.downloadFinished, timeout=TIMEOUT_MS):
        dialog.start_download()
        assert dialog.progress.isVisibleTo(dialog)
    assert threads and threads[0] is not threading.main_thread() and len(workers) == 1
    assert dialog.session_token == "hf_granted"


def test_the_token_is_an_instance_value_the_window_keeps(qtbot, store, monkeypatch):
    from PySide6.QtWidgets import QDialog

    seen = []

    def fake_exec(self):
        seen.append(self.token.text())
        self.token.setText("hf_pasted")
        self.session_token = "hf_pasted"
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(ModelsDialog, "exec", fake_exec)
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.models_dialog()
    w.models_dialog()
    assert seen == ["", "hf_pasted"] and w.hub_token == "hf_pasted"
    other = ModelsDialog(Settings(), None, hub.HubOptions(cache_dir=Path(store.fileName()).parent / "hub"))
    qtbot.addWidget(other)
    assert other.token.text() == ""  # nothing shared between dialogs but what the window passes in


def test_the_person_detector_is_an_optional_extra_download(qtbot, tmp_path, repo_contents, monkeypatch):
    from sam3dbody_gui import hub_detector

    detector_files = {"config.json": b'{"model_type": "rt_detr_v2"}', "preprocessor_config.json": b"{}",
                      "model.safetensors": b"weights" * 100}
    monkeypatch.setattr(hub_detector, "detector_app_folder", lambda: tmp_path / "app-detector")
    fh = FakeHub({**repo_contents, hub_detector.DETECTOR_REPO: detector_files}, gated={hub.MODEL_REPO}).start()
    try:
        opts = hub.HubOptions(cache_dir=tmp_path / "hub", endpoint=fh.url, link_dir=tmp_path / "links")
        d = ModelsDialog(Settings(), None, opts)
        qtbot.addWidget(d)
        d.show()
        assert "not downloaded" in d.detector_note.text() and d.detector.isEnabled()
        assert not d.detector.isChecked()  # optional: not unless asked
        d.token.setText("hf_granted")
        d.detector.setChecked(True)
        with qtbot.waitSignal(d.downloadFinished, timeout=TIMEOUT_MS):
            d.start_download()
        assert d.last_detector is not None and d.last_detector.folder is not None
        assert "person detector is installed" in d.status_text
        assert d.detector_status.installed and not d.detector.isEnabled()
        assert str(d.last_detector.folder) in d.detector_note.text()
        assert hub_detector.find_installed_detector(opts) == d.last_detector.folder
        assert {g.path.split("/")[-1] for g in fh.log if hub_detector.DETECTOR_REPO in g.path} >= set(detector_files)
    finally:
        fh.stop()
