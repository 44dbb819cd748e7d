"""Open, save and folder dialogs: the platform's own where it has one, else Qt's, made readable.

Qt's own dialog (Linux without a desktop portal, e.g. under a bare X server) sizes its detail
columns for a light theme's short texts: Size and Type came out as "73.…KiB" and "JPE…age".
`tidy` widens them to their contents, the name column taking the rest; its tool icons come
from the theme's style (dark_style.py). The dialogs are QFileDialog objects rather than the
static helpers, so that `tidy` can reach the widgets.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog, QHeaderView, QTreeView, QWidget

Mode = QFileDialog.FileMode
MIN_SIZE = (860, 520)


def tidy(dialog: QFileDialog) -> None:
    """Widen the columns of Qt's own dialog (nothing to do for a native one)."""
    view = dialog.findChild(QTreeView, "treeView")
    if view is None:
        return
    header = view.header()
    header.setStretchLastSection(False)
    header.setMinimumSectionSize(60)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for column in range(1, header.count()):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
    dialog.setViewMode(QFileDialog.ViewMode.Detail)
    dialog.resize(max(dialog.width(), MIN_SIZE[0]), max(dialog.height(), MIN_SIZE[1]))


def make_dialog(parent: Optional[QWidget], title: str, folder: str, filters: str = "",
                mode: str = "open") -> QFileDialog:
    """`mode`: "open" (an existing file), "save" (the platform asks before replacing) or
    "folder" (an existing folder)."""
    d = QFileDialog(parent, title, folder, filters)
    if mode == "save":
        d.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        d.setFileMode(Mode.AnyFile)
    elif mode == "folder":
        d.setFileMode(Mode.Directory)
        d.setOption(QFileDialog.Option.ShowDirsOnly, True)
    else:
        d.setFileMode(Mode.ExistingFile)
    tidy(d)
    QTimer.singleShot(0, lambda: _retidy(d))  # the widgets of Qt's dialog exist once it is polished
    return d


def _retidy(dialog: QFileDialog) -> None:
    try:
        tidy(dialog)
    except RuntimeError:  # closed and deleted already
        pass


def _run(dialog: QFileDialog) -> Optional[tuple[str, str]]:
    try:
        if dialog.exec() != QFileDialog.DialogCode.Accepted or not dialog.selectedFiles():
            return None
        return dialog.selectedFiles()[0], dialog.selectedNameFilter()
    finally:
        dialog.deleteLater()


def open_file(parent: Optional[QWidget], title: str, folder: str, filters: str) -> Optional[str]:
    chosen = _run(make_dialog(parent, title, folder, filters, "open"))
    return chosen[0] if chosen else None


def save_file(parent: Optional[QWidget], title: str, default: str, filters: str) -> Optional[tuple[str, str]]:
    """(path, the filter chosen), or None if cancelled."""
    d = make_dialog(parent, title, default, filters, "save")
    return _run(d)


def existing_folder(parent: Optional[QWidget], title: str, folder: str) -> Optional[str]:
    chosen = _run(make_dialog(parent, title, folder, "", "folder"))
    return chosen[0] if chosen else None
