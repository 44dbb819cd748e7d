"""What the window tells the user about itself: the Help menu's boxes and the texts of the
model banners (where the real weights are, what the demo model is)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

HF_URL = "https://huggingface.co/facebook/sam-3d-body-dinov3"
HF_LINK = f"<a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a>"

NO_MODEL_TEXT = (
    "<b>No model yet.</b> SAM 3D Body's weights are on Hugging Face, gated: accept the SAM License on "
    f"{HF_LINK}, then <b>Get the model…</b> downloads them "
    "(or choose a folder you already have). The demo model shows how the app works, but its weights are "
    "<b>random</b>."
)
DEMO_MODEL_TEXT = ("<b>Demo model:</b> its weights are <b>random</b>, so the mesh does not fit the person. "
                   f"For real results get {HF_LINK} and choose it in Settings.")


def model_problem_text(problem: str) -> str:
    return (f"<b>The model could not be loaded:</b> {problem}<br>"
            f"Real weights: {HF_LINK} (gated; SAM License). Or try the demo model (random weights).")


# Help ▸ Keyboard and mouse: the views' own keys and mouse gestures (the menus' shortcuts are
# read from the actions themselves, so that table cannot go stale).
VIEW_KEYS = (
    ("Photo (click it, or Alt+1)", (
        ("Drag on empty space", "add a person: draw their box"),
        ("Click a box", "select that person (or pick them in the list)"),
        ("Drag inside the selected box", "move it"),
        ("Drag a handle", "resize it"),
        ("Drag a shown keypoint", "put it where it belongs: the decoder runs again (a keypoint prompt)"),
        ("Tab / Shift+Tab", "select the next / previous person"),
        ("Arrows (Shift: ×10)", "move the selected box by 1 px (10 px)"),
        ("Ctrl+arrows", "move its right / bottom edge"),
        ("Delete", "remove the selected person (no boxes: the whole photo)"),
        ("Esc", "cancel a drag"),
        ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo a change of the people"),
    )),
    ("Video panel (File ▸ Open video…)", (
        ("Space", "play / pause"),
        ("Left / Right (Shift: 1 s)", "step a frame"),
        ("Home / End", "first / last frame"),
    )),
    ("3-D mesh (click it, or Alt+3)", (
        ("Drag, arrows", "orbit"),
        ("Shift-drag, Ctrl-drag, middle-drag, Shift+arrows", "pan"),
        ("Wheel, right-drag, + / −", "zoom"),
        ("1 / 2 / 3", "front / side / three-quarter view"),
        ("R or Home", "reset the view"),
    )),
)


def _rows(rows) -> str:
    return "".join(f"<tr><td class='k'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)


def keys_html(shortcuts: list[tuple[str, str]]) -> str:
    """The help as one two-column table (so the columns line up): the views' keys, then
    `shortcuts` ((keys, what) of every menu action that has a shortcut)."""
    rows = []
    for title, entries in VIEW_KEYS + (("Everywhere (menu shortcuts)", tuple(shortcuts)),):
        rows.append(f"<tr><td colspan='2' class='h'>{html.escape(title)}</td></tr>{_rows(entries)}")
    return ("<style>td { padding: 2px 16px 2px 0; vertical-align: top; } td.k { white-space: nowrap; "
            "font-weight: 600; } td.h { font-size: 11pt; font-weight: 700; padding-top: 12px; }</style>"
            f"<table cellspacing='0'>{''.join(rows)}</table>")


def action_shortcuts(actions) -> list[tuple[str, str]]:
    """(shortcut, what) for each QAction with a shortcut, in menu order."""
    out = []
    for a in actions:
        if not a.shortcut().isEmpty():
            what = a.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…")
            out.append((a.shortcut().toString(QKeySequence.SequenceFormat.NativeText), what))
    return out


MODEL_HELP = (
    "SAM 3D Body's weights are published by Meta on Hugging Face as "
    f"{HF_LINK}. They are <b>gated</b>: sign in, accept the "
    "SAM License, then download the files (model.ckpt, model_config.yaml, assets/mhr_model.pt) with "
    "Model ▸ Models… or, in a terminal, <code>sam3dbody-gui download</code>: the app then finds them "
    "by itself. A folder you already have is chosen in Model ▸ Models… too."
    "<br><br>The <b>demo model</b> has the same layout with "
    "<b>random weights</b>: it exercises every part of the app, but its mesh is not a prediction.")



def app_version() -> str:
    """The installed distribution's version (what pip sees), else the package's own."""
    from importlib import metadata

    from .. import __version__

    try:
        return metadata.version("sam3dbody-gui")
    except metadata.PackageNotFoundError:
        return __version__


def about_html() -> str:
    import platform

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    return (f"<b>sam3dbody-gui {html.escape(app_version())}</b><br>Point-and-click 3-D human mesh recovery with "
            "Meta's SAM 3D Body. Our own PyTorch implementation; Apache-2.0 code, "
            "model weights under the SAM License.<br><br>"
            f"<span style='color:#9aa3b2'>Python {platform.python_version()} · Qt {qVersion()} · "
            f"PySide6 {pyside_version}</span>")


def show_model_help(parent: QWidget) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("Getting the model")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(MODEL_HELP)
    box.exec()


def keys_dialog(parent: QWidget, actions=()) -> QDialog:
    d = QDialog(parent)
    d.setWindowTitle("Keyboard and mouse")
    view = QTextBrowser(d)
    view.setObjectName("keysTable")
    view.setOpenExternalLinks(False)
    view.setHtml(keys_html(action_shortcuts(actions)))
    view.setFrameShape(QTextBrowser.Shape.NoFrame)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, d)
    buttons.rejected.connect(d.reject)
    layout = QVBoxLayout(d)
    layout.addWidget(view, 1)
    layout.addWidget(buttons)
    d.resize(640, 720)
    return d


def show_keys_help(parent: QWidget, actions=()) -> None:
    d = keys_dialog(parent, actions)
    d.exec()
    d.deleteLater()


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, f"About sam3dbody-gui {app_version()}", about_html())
