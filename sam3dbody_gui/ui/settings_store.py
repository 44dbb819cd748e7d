"""Settings, recent files and window geometry, remembered with QSettings."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from PySide6.QtCore import QSettings

from .state import Settings

ORGANIZATION = "sam3dbody-gui"
APPLICATION = "sam3dbody-gui"
MAX_RECENT = 10


def default_qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def _to_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def load_settings(store: QSettings) -> Settings:
    defaults = Settings()
    values = {}
    for f in fields(Settings):
        key = f"settings/{f.name}"
        if not store.contains(key):
            continue
        raw = store.value(key)
        default = getattr(defaults, f.name)
        try:
            if isinstance(default, bool):
                values[f.name] = _to_bool(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = str(raw)
        except (TypeError, ValueError):
            pass  # a hand-edited, broken value: keep the default
    settings = Settings(**values)
    # Values from an older or hand-edited file that are no longer offered fall back.
    from .backends import BACKENDS, MODES, PRECISIONS

    checks = {"backend": [k for k, _ in BACKENDS], "precision": [k for k, _ in PRECISIONS],
              "device": ["auto", "cpu", "cuda"], "mode": [k for k, _ in MODES],
              "mesh_frame": ["camera", "upright"]}
    from dataclasses import replace

    for name, allowed in checks.items():
        if getattr(settings, name) not in allowed:
            settings = replace(settings, **{name: getattr(defaults, name)})
    return replace(settings, overlay_opacity=min(1.0, max(0.0, settings.overlay_opacity)))


def save_settings(store: QSettings, settings: Settings) -> None:
    for f in fields(Settings):
        store.setValue(f"settings/{f.name}", getattr(settings, f.name))
    store.sync()


def recent_files(store: QSettings) -> list[Path]:
    raw = store.value("recent/files", [])
    if isinstance(raw, str):
        raw = [raw]
    return [Path(p) for p in (raw or []) if p]


def add_recent_file(store: QSettings, path: Path) -> list[Path]:
    path = Path(path).resolve()
    files = [path] + [p for p in recent_files(store) if p != path]
    files = files[:MAX_RECENT]
    store.setValue("recent/files", [str(p) for p in files])
    return files


def clear_recent_files(store: QSettings) -> None:
    store.setValue("recent/files", [])
