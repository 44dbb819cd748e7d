"""Building the model on the meta device skips random initialisation (model/meta_build.py): on
meta tensors it ran through torch's Python references, which import torch._dynamo (~1 s a start)."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from sam3dbody_gui.model.meta_build import meta_model_building


def test_loading_a_model_folder_does_not_import_the_compiler(tiny_model_dir):
    code = ("import sys; from pathlib import Path; from sam3dbody_gui.model.model_folder import load_model_folder; "
            f"load_model_folder(Path({str(tiny_model_dir)!r})); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_only_meta_tensors_skip_their_initialisation():
    original = nn.init.kaiming_uniform_
    with meta_model_building():
        on_meta = nn.Linear(64, 64)
        elsewhere = nn.Linear(64, 64, device="cpu")  # e.g. another thread's module: initialised as always
    assert on_meta.weight.is_meta
    bound = 1 / 64 ** 0.5
    assert 0 < elsewhere.weight.abs().max() <= bound and elsewhere.weight.std() > bound / 4
    assert nn.init.kaiming_uniform_ is original  # put back
    assert torch.empty(2).device.type == "cpu"
