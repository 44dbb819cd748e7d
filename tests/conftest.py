"""Shared fixtures: a tiny synthetic model folder (random weights, released layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The window and `infer` build the compiled fast path in the background and swap it in
# (pipeline/warm_start.py); tests compare runs exactly, so they start blocking unless a test
# asks for a warm start (test_warm_start.py).
os.environ.setdefault("SAM3DBODY_GUI_WARM_START", "0")
# The CPU's compiled backbone is an AOTInductor package by default (aoti_backend.py): building
# one takes ~10 s even for the tiny model and nothing is shared between tests' cache folders, so
# the suite compiles with torch.compile (whose kernel cache the tests share) and
# test_aoti_backend.py covers the package path, warm start included.
os.environ.setdefault("SAM3DBODY_GUI_AOTI", "0")

TINY_SEED = 0


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds full-size synthetic assets (seconds to minutes)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny synthetic model with ONNX and .pt2 backbone exports, made once per test session."""
    from sam3dbody_gui.synthetic.make import make_synthetic_model

    return make_synthetic_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny", seed=TINY_SEED)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from sam3dbody_gui.model.model_folder import load_model_folder

    return load_model_folder(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy two-core machine threads mostly
    wait for each other (a clip's frame takes 20x longer): one, for the module that asks."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
