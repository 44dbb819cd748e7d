"""The window as a newcomer met it (issue 18's window items), headless (Qt's offscreen platform,
as test_ui.py) with the tiny synthetic model. Each test fails on the defect it is named after."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import logging  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication, QCheckBox, QRadioButton, QStyle  # noqa: E402

from sam3dbody_gui.bundled import SAMPLE_BOX, sample_image_path  # noqa: E402
from sam3dbody_gui.ui.main_window import APP_NAME, MainWindow  # noqa: E402
from sam3dbody_gui.ui.settings_store import recent_files  # noqa: E402
from sam3dbody_gui.ui.state import Settings  # noqa: E402

TIMEOUT_MS = 60_000


@pytest.fixture
def store(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def _window(qtbot, store, size=(1280, 720)) -> MainWindow:
    w = MainWindow(store)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def window(qtbot, store, tiny_model_dir) -> MainWindow:
    w = _window(qtbot, store)
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    w.activateWindow()
    return w


def _open_sample(qtbot, w):
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as blocker:
        assert w.open_image(sample_image_path(), box=SAMPLE_BOX)
    return blocker.args[0]


def _photo(tmp_path, name="person.png", size=(320, 240)) -> Path:
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", size, (200, 180, 160)).save(path)
    return path


def _pixels(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    # A copy: the array viewed the converted image's memory, freed when `img` goes at the return
    # (the pixels read then were whatever reused that memory: a flaky icon test).
    rows = arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 4]
    return rows.reshape(img.height(), img.width(), 4).copy()


# ---------------------------------------------------------------- 1. start-up problems ---
def test_a_missing_photo_at_start_stays_in_the_banner_and_reaches_stderr(qtbot, store, tiny_model_dir, capsys):
    w = _window(qtbot, store)
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.start(model_dir=tiny_model_dir, image=Path("/missing.jpg"))
    qtbot.wait(50)
    assert "image file not found: /missing.jpg" in capsys.readouterr().err
    # The demo model's notice came after; the start-up problem is still what the banner shows.
    assert w.banner.isVisibleTo(w) and w.banner.kind == "startup"
    assert "not found" in w.banner.text.text() and w.banner.waiting() == ["demo"]
    assert w.banner.more.isVisibleTo(w) and w.banner.more.text() == "+1 more"
    qtbot.keyClick(w, Qt.Key.Key_Escape)  # dismissed by the user: the next news shows
    assert w.banner.kind == "demo" and "random" in w.banner.text.text()


def test_a_bbox_outside_the_photo_at_start_is_not_overwritten(qtbot, store, tiny_model_dir, tmp_path, capsys):
    w = _window(qtbot, store)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as blocker:
        w.start(model_dir=tiny_model_dir, image=_photo(tmp_path), bbox=(5000, 5000, 6000, 6000))
    assert blocker.args[0].box is None
    err = capsys.readouterr().err
    assert err.startswith("sam3dbody-gui: ") and "outside" in err
    qtbot.wait(50)
    assert w.banner.kind == "startup" and "outside" in w.banner.text.text()
    assert "whole photo" in w.state.last_message[0]  # the status bar says what was used
    assert w.set_box((10, 10, 100, 100)) and w.banner.kind == "startup"  # closed by the user only


def test_a_model_that_fails_at_start_is_printed(qtbot, store, tmp_path, capsys):
    w = _window(qtbot, store)
    with qtbot.waitSignal(w.errorShown, timeout=TIMEOUT_MS):
        w.start(model_dir=tmp_path / "no-model-here", image=_photo(tmp_path))
    assert "no-model-here" in capsys.readouterr().err
    assert w.banner.kind == "model"


# ---------------------------------------------------- 2, 3. latency cards and the layout ---
def _full_mode_result(qtbot, w):
    from dataclasses import replace

    _open_sample(qtbot, w)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as blocker:
        w.apply_settings(replace(w.state.settings, mode="full"), persist=False)
    qtbot.wait(50)
    return blocker.args[0]


def test_full_mode_cards_fit_and_do_not_move_the_panels(qtbot, window):
    from dataclasses import replace

    w = window
    w.apply_settings(replace(w.state.settings, mode="full"), persist=False)  # Settings ▸ Mode ▸ Full, then a photo
    qtbot.wait(50)
    rows, photo = w.panels.sizes(), w.panels.photo_panel.height()
    assert _open_sample(qtbot, w).result.mode == "full"
    qtbot.wait(50)
    lat = w.latency
    shown = [t for t in lat.tiles.values() if t.isVisibleTo(lat)]
    assert len(shown) == 8
    for tile in shown:
        assert tile.texts_fit(), (tile.stage, tile.name.text(), tile.value.text(), tile.stat.text())
        # the figure sits below its label, never over it
        assert tile.value.geometry().top() >= tile.name.geometry().bottom(), tile.stage
        assert tile.height() >= tile.sizeHint().height()
    assert w.panels.sizes() == rows and w.panels.photo_panel.height() == photo  # four cards added: no jump


def test_at_1280x720_the_photo_gets_the_room(qtbot, window):
    w = window
    _full_mode_result(qtbot, w)
    w.banner.show_news("export", "a long problem " * 3)
    qtbot.wait(50)
    photo, features = w.panels.photo_panel.height(), w.panels.feature_panel.height()
    assert photo > 1.4 * features, (photo, features)
    assert w.features.captions and all(len(t) > 2 for t in w.features.captions.values())


def test_a_banner_takes_its_room_from_the_bottom_row(qtbot, window):
    w = window
    w.resize(1280, 1000)
    _open_sample(qtbot, w)
    w.banner.dismiss_kinds(*list(w.banner.news))
    qtbot.wait(50)
    photo, bottom = w.panels.photo_panel.height(), w.panels.bottom.height()
    w.show_error("something went wrong", kind="export")
    qtbot.wait(50)
    assert w.banner.isVisibleTo(w)
    assert abs(w.panels.photo_panel.height() - photo) <= 1
    assert w.panels.bottom.height() < bottom


def test_the_3d_view_frames_the_whole_body_after_a_resize(qtbot, window):
    from sam3dbody_gui.ui.selfcheck import _body_in_view

    w = window
    w.resize(1280, 1000)
    _open_sample(qtbot, w)
    qtbot.wait(50)
    assert _body_in_view(w.mesh)
    w.resize(1280, 720)  # a shorter view: the framing made for the taller one cut the head and feet
    qtbot.wait(100)
    assert _body_in_view(w.mesh)
    w.mesh.view.cameraMoved.emit()  # once the user moves the camera, a resize leaves it alone
    distance = w.mesh.view.opts["distance"]
    w.resize(1280, 900)
    qtbot.wait(50)
    assert w.mesh.view.opts["distance"] == distance


# ------------------------------------------------------------ 4. overlay on the photo ---
def test_keypoints_outside_the_photo_are_not_drawn_on_the_panel(qtbot, window):
    from sam3dbody_gui.ui import style

    w = window
    bundle = _open_sample(qtbot, w)
    kp = bundle.result.keypoints_2d
    h, width = w.state.image_hw
    kp[:6] = [(-40, 50), (width + 40, 50), (50, -40), (50, h + 40), (-30, -30), (width + 30, h + 30)]
    # On a loaded machine the layout may still settle (a late resize moves the photo): grab when
    # the photo's place is the same before and after the grab.
    for _ in range(20):
        w.photo.update()
        qtbot.wait(50)
        before = w.photo.image_rect()
        arr = _pixels(w.photo.grab().toImage())[..., :3].astype(int)
        r = w.photo.image_rect()
        if r == before:
            break
    dpr = w.photo.devicePixelRatioF()
    outside = np.ones(arr.shape[:2], bool)
    m = 6  # the box's handles on the photo's edge
    outside[int((r.top() - m) * dpr):int((r.bottom() + m) * dpr), int((r.left() - m) * dpr):int((r.right() + m) * dpr)] = False
    panel = np.array([int(style.PANEL[i:i + 2], 16) for i in (1, 3, 5)])
    # The widget's own outermost pixels are not the panel's drawing area (the offscreen platform
    # leaves a few of them unpainted on some runs): only the inside counts.
    outside[:2, :] = outside[-2:, :] = outside[:, :2] = outside[:, -2:] = False
    assert (np.abs(arr[outside] - panel).sum(1) < 12).all(), "something was drawn outside the photo"


# ------------------------------------------------------------ 5. the banner's icons ---
@pytest.mark.parametrize("level", ["error", "warning", "info"])
def test_banner_icons_are_drawn_not_glyphs(qtbot, bare_banner, level):
    bare_banner.show_message("news", level)
    assert bare_banner.icon.text() == ""
    arr = _pixels(bare_banner.icon.pixmap().toImage())
    assert (arr[..., 3] > 128).mean() > 0.3  # a solid shape, not an empty box


@pytest.fixture
def bare_banner(qtbot):
    from sam3dbody_gui.ui.widgets import Banner

    b = Banner()
    qtbot.addWidget(b)
    return b


# ------------------------------------------------------------- 6. no warnings at start ---
def test_a_normal_start_and_result_warn_nothing(qtbot, store, tiny_model_dir, caplog):
    """A warning raised inside a Qt virtual (pyqtgraph's boundingRect gave "All-NaN slice")
    would abort the process under an "error" filter, so they are recorded and must be none."""
    w = _window(qtbot, store)
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
            w.start(model_dir=tiny_model_dir)
        w.latency.repaint()
        w.latency.plot.grab()  # paint the plot: its items measure their data then
        qtbot.wait(50)
    assert [str(x.message) for x in seen] == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith(("sam3dbody_gui", "py.warnings"))] == []


# ------------------------------------------------------------------------ 7. title ---
def test_the_title_names_the_app_once_where_the_platform_adds_it(qtbot, window):
    _open_sample(qtbot, window)
    title = window.windowTitle()
    assert title.count(APP_NAME) == 1 and title.endswith(APP_NAME), title
    assert title.startswith("sample_astronaut.jpg — DEMO MODEL — RANDOM WEIGHTS")
    # Qt appends the application display name to a title unless it already ends with it (app.py sets it).
    QApplication.setApplicationDisplayName(APP_NAME)
    try:
        assert window.windowTitle().endswith(QApplication.applicationDisplayName())
    finally:
        QApplication.setApplicationDisplayName("")


# ------------------------------------------------------ 8. dark theme: indicators, dialogs ---
@pytest.mark.parametrize("kind", [QCheckBox, QRadioButton])
def test_unchecked_indicators_are_visible_on_the_dark_theme(qtbot, kind):
    from PySide6.QtGui import QColor, QPalette

    from sam3dbody_gui.ui import style
    from sam3dbody_gui.ui.dark_style import DarkStyle

    widget = kind("option")
    widget.setStyle(DarkStyle())
    pal = widget.palette()
    pal.setColor(QPalette.ColorRole.Window, QColor(style.WINDOW))
    pal.setColor(QPalette.ColorRole.Base, QColor("#12151a"))
    widget.setPalette(pal)
    widget.setAutoFillBackground(True)
    qtbot.addWidget(widget)
    widget.resize(120, 24)
    arr = _pixels(widget.grab().toImage())[..., :3].astype(int)
    indicator = arr[:, : arr.shape[0]]  # the indicator is at the left, about as wide as tall
    background = np.array([int(style.WINDOW[i:i + 2], 16) for i in (1, 3, 5)])
    contrast = np.abs(indicator - background).sum(2)
    assert (contrast > 150).sum() >= 12, "the unchecked indicator's outline is not visible"


def test_file_dialog_icons_are_shapes_not_dots(qtbot):
    from sam3dbody_gui.ui.dark_style import DarkStyle

    style = DarkStyle()
    SP = QStyle.StandardPixmap
    for which in (SP.SP_FileDialogBack, SP.SP_FileDialogToParent, SP.SP_FileDialogNewFolder,
                  SP.SP_FileDialogListView, SP.SP_FileDialogDetailedView, SP.SP_ArrowForward):
        arr = _pixels(style.standardIcon(which).pixmap(16, 16).toImage())
        assert (arr[..., 3] > 100).sum() >= 20, which  # a dot is a handful of pixels


def test_file_dialog_columns_show_size_and_type_whole(qtbot, tmp_path):
    from PySide6.QtWidgets import QFileDialog, QTreeView

    from sam3dbody_gui.ui import file_dialogs
    from sam3dbody_gui.ui.photo_files import IMAGE_FILTER

    _photo(tmp_path, "a_rather_long_photo_name.png", (900, 700))
    d = file_dialogs.make_dialog(None, "Open photo", str(tmp_path), IMAGE_FILTER)
    d.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    qtbot.addWidget(d)
    assert "All files (*)" in d.nameFilters()
    d.show()
    view = d.findChild(QTreeView, "treeView")
    qtbot.waitUntil(lambda: view.model().rowCount(view.rootIndex()) > 0, timeout=10_000)
    qtbot.wait(100)
    fm, header = view.fontMetrics(), view.header()
    index = view.model().index(0, 0, view.rootIndex())
    for column in (1, 2):  # Size, Type
        text = str(view.model().index(index.row(), column, view.rootIndex()).data())
        assert header.sectionSize(column) >= fm.horizontalAdvance(text) + 6, (column, text)  # not elided


# ------------------------------------------------------------- 9. help and about ---
def test_keyboard_help_is_a_table_listing_every_shortcut(qtbot, window):
    from PySide6.QtWidgets import QTextBrowser

    from sam3dbody_gui.ui.help_dialogs import keys_dialog

    d = keys_dialog(window, window.actions_by_name.values())
    qtbot.addWidget(d)
    doc = d.findChild(QTextBrowser, "keysTable").document()
    html = doc.toHtml()
    assert html.count("<table") == 1 and html.count("<tr") >= 30
    text = doc.toPlainText()
    for a in window.actions_by_name.values():
        if not a.shortcut().isEmpty():
            assert a.shortcut().toString() in text, a.text()
    assert "Ctrl+Shift+Z" in text and "undo" in text


def test_about_says_the_version():
    from importlib import metadata

    from sam3dbody_gui import __version__
    from sam3dbody_gui.ui.help_dialogs import about_html, app_version

    try:
        expected = metadata.version("sam3dbody-gui")
    except metadata.PackageNotFoundError:
        expected = __version__
    assert app_version() == expected and f"sam3dbody-gui {expected}" in about_html()


# ------------------------------------------------------- 10. Run with nothing to run ---
def test_run_says_what_is_missing(qtbot, store, tmp_path, monkeypatch):
    from sam3dbody_gui import hub
    from sam3dbody_gui.app_paths import MODEL_ENV

    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(hub, "find_installed_model", lambda options=None: None)
    w = _window(qtbot, store)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    assert w.act_run.isEnabled()
    w.act_run.trigger()
    text, level = w.state.last_message
    assert level == "warning" and "open a photo first" in text
    assert w.open_image(_photo(tmp_path))
    w.banner.dismiss_kinds("model")
    qtbot.keyClick(w, Qt.Key.Key_F5)
    text, level = w.state.last_message
    assert level == "warning" and "no model is loaded" in text
    assert w.banner.kind == "model" and "No model yet" in w.banner.text.text()


# ------------------------------------------------------------------ 11. Open recent ---
def test_the_sample_does_not_fill_open_recent(qtbot, store, tmp_path, monkeypatch):
    from sam3dbody_gui import hub
    from sam3dbody_gui.app_paths import MODEL_ENV

    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(hub, "find_installed_model", lambda options=None: None)
    w = _window(qtbot, store)
    w.start()
    w.open_sample()
    assert recent_files(store) == []
    mine = _photo(tmp_path)
    w.open_image(mine)
    w.start()
    assert recent_files(store) == [mine.resolve()]


# -------------------------------------------------------------- 12. undo / redo of the box ---
def test_box_edits_undo_and_redo(qtbot, window):
    w = window
    _open_sample(qtbot, w)
    start = w.state.box
    assert not w.act_undo_box.isEnabled()
    a, b = (30.0, 20.0, 360.0, 500.0), (40.0, 30.0, 350.0, 490.0)
    assert w.set_box(a) and w.set_box(b)
    assert w.act_undo_box.isEnabled() and not w.act_redo_box.isEnabled()
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as blocker:
        qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.state.box == a and blocker.args[0].box == a  # and the model ran on it
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.state.box == start
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.state.box == a and w.act_redo_box.isEnabled()
    w.set_box(None)  # a new edit forgets what could be redone
    assert not w.act_redo_box.isEnabled()

    # A whole drag is one step.
    photo = w.photo
    before = w.state.box
    to_w = lambda x, y: photo.to_widget(x, y).toPoint()  # noqa: E731
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(100, 80))
    for y in (150, 250, 400):
        qtbot.mouseMove(photo, to_w(300, y))
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=to_w(300, 400))
    assert w.state.box != before
    w.box_editor.undo()
    assert w.state.box == before
    w.act_sample.trigger()  # a new photo starts a new history
    assert not w.act_undo_box.isEnabled()


def test_open_offers_all_files():
    from sam3dbody_gui.ui.photo_files import IMAGE_FILTER

    assert IMAGE_FILTER.split(";;")[-1] == "All files (*)"


def test_card_statistics_keep_their_units_when_they_differ(qtbot):
    from sam3dbody_gui.ui.stage_tile import StageTile

    tile = StageTile("total")
    qtbot.addWidget(tile)
    tile.resize(400, tile.sizeHint().height())
    tile.show()
    qtbot.waitExposed(tile)
    tile.show_time(1180.0, np.array([1180.0, 137.0, 2000.0]))
    assert tile.stat.text() == "median 1.18 s · min 137 ms"  # not "median 1.18 · min 137"
    tile.show_time(87.4, np.array([87.4, 40.5]))
    assert tile.stat.text() == "median 64.0 · min 40.5"
    tile.resize(90, tile.height())  # a narrow card says less rather than cut a word
    qtbot.wait(20)
    assert tile.stat.text() in ("med 64.0 · min 40.5", "med 64.0") or tile.stat.text().endswith("…")
