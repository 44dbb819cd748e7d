"""What the window remembers between sessions, and under which QSettings keys: its geometry and
dividers, the view settings changed from the panels, and the last folders of the file dialogs.
(The model settings are settings_store.py's.)"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

from .state import Settings

DEFAULT_SIZE = (1440, 900)


def _saved_bytes(store: QSettings, key: str):
    value = store.value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def restore_window(window: QMainWindow, store: QSettings, splitters: dict[str, QSplitter]) -> None:
    geometry = _saved_bytes(store, "window/geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    else:
        window.resize(*DEFAULT_SIZE)
    state = _saved_bytes(store, "window/state")
    if state is not None:
        window.restoreState(state)
    for name, splitter in splitters.items():
        saved = _saved_bytes(store, f"window/splitter_{name}")
        if saved is not None:
            splitter.restoreState(saved)


def save_window(window: QMainWindow, store: QSettings, splitters: dict[str, QSplitter], settings: Settings) -> None:
    store.setValue("window/geometry", window.saveGeometry())
    store.setValue("window/state", window.saveState())
    for name, splitter in splitters.items():
        store.setValue(f"window/splitter_{name}", splitter.saveState())
    store.setValue("settings/overlay_opacity", settings.overlay_opacity)
    store.setValue("settings/show_keypoints", settings.show_keypoints)
    store.setValue("settings/mesh_frame", settings.mesh_frame)
    store.sync()


def last_folder(store: QSettings, dialog: str) -> Path:
    """Where the `dialog` ("open" or "export") file dialog was last used (home at first)."""
    return Path(str(store.value(f"paths/{dialog}", str(Path.home()))))


def remember_folder(store: QSettings, dialog: str, folder: Path) -> None:
    store.setValue(f"paths/{dialog}", str(folder))
