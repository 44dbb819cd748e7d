"""Where the app keeps its files (platformdirs: the user's cache and data folders)."""

from __future__ import annotations

from pathlib import Path

APP_NAME = "sam3dbody-gui"


def cache_dir(*parts: str) -> Path:
    """The user cache (compiled kernels, engines, the demo model): safe to delete."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_NAME)).joinpath(*parts)


def data_dir(*parts: str) -> Path:
    """The user data folder (downloaded models)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME)).joinpath(*parts)

# The model folder used when none is given (CLI --model, the window's Settings).
MODEL_ENV = "SAM3DBODY_GUI_MODEL"
