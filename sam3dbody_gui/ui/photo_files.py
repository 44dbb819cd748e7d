"""Where photos come from: File ▸ Open (remembering its folder), File ▸ Open recent, and files
dropped on the window. Reading a photo is the window's `open_image`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QMimeData, QSettings
from PySide6.QtWidgets import QMenu, QWidget

from .file_dialogs import open_file
from .settings_store import clear_recent_files, recent_files
from .window_memory import last_folder, remember_folder

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"


def ask_photo(parent: QWidget, store: QSettings) -> Optional[Path]:
    path = open_file(parent, "Open photo", str(last_folder(store, "open")), IMAGE_FILTER)
    if not path:
        return None
    remember_folder(store, "open", Path(path).parent)
    return Path(path)


def fill_recent_menu(menu: QMenu, store: QSettings, open_image: Callable[[Path], object]) -> None:
    """Rebuilt each time the menu opens: every photo opened changes the list."""
    menu.clear()
    files = recent_files(store)
    for i, path in enumerate(files):
        a = menu.addAction(f"&{i + 1} {path.name}" if i < 9 else path.name)
        a.setToolTip(str(path))
        a.setStatusTip(str(path))
        a.triggered.connect(lambda _=False, p=path: open_image(p))
    if not files:
        menu.addAction("(none yet)").setEnabled(False)
    menu.addSeparator()
    clear = menu.addAction("Clear list")
    clear.setEnabled(bool(files))
    clear.triggered.connect(lambda: clear_recent_files(store))


def local_files(mime: QMimeData) -> list[Path]:
    """The local files in a drag (links to web pages are not photos we can open)."""
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
