"""The demo model: the tiny synthetic (random-weight) model, made in the user cache on first use."""

from __future__ import annotations

from pathlib import Path

from ..app_paths import cache_dir
from .make import is_synthetic, make_synthetic_model


def demo_model_dir() -> Path:
    return cache_dir("demo-model-tiny")


def ensure_demo_model(progress=print) -> Path:
    folder = demo_model_dir()
    if not is_synthetic(folder):
        progress(f"making the demo model (random weights) in {folder}")
        make_synthetic_model(folder, size="tiny", seed=0, exports=(), progress=lambda m: None)
    return folder
