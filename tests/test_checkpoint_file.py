"""Reading model.ckpt: tensors load, training objects load as inert placeholders, and nothing
in the file is ever executed."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest
import torch

from sam3dbody_gui.errors import ModelFolderError
from sam3dbody_gui.model.checkpoint_file import InertObject, read_checkpoint


def sample_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "decoder.weight": torch.randn(4, 3, generator=g),
        "decoder.bias": torch.randn(4, generator=g),
        "backbone.encoder.w": torch.randn(2, 5, generator=g).half(),
        "head_pose.faces": torch.tensor([[0, 1, 2], [2, 1, 3]], dtype=torch.int64),
    }


def assert_same_state(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


class TrainingConfig:
    """Stands for the yacs / Lightning objects a real checkpoint pickles in hyper_parameters."""

    def __init__(self, lr: float, name: str) -> None:
        self.lr, self.name = lr, name


class ConfigNode(dict):
    """A dict subclass like yacs' CfgNode (pickled through SETITEMS on the rebuilt object)."""


# ------------------------------------------------------------------------------------------
def test_plain_state_dict(tmp_path):
    state = sample_state()
    torch.save(state, tmp_path / "model.ckpt")
    contents = read_checkpoint(tmp_path / "model.ckpt")
    assert contents.needed_inert_loading is False
    assert_same_state(contents.state_dict, state)


def test_lightning_checkpoint_with_custom_objects_loads_inertly(tmp_path):
    state = sample_state()
    node = ConfigNode(MODEL=ConfigNode(DIM=1024), SEED=7)
    torch.save(
        {"state_dict": state, "epoch": 12,
         "hyper_parameters": {"cfg": TrainingConfig(1e-4, "sam3d"), "node": node}},
        tmp_path / "model.ckpt",
    )
    # weights-only loading refuses the custom classes; the inert fallback must be what ran.
    with pytest.raises(Exception):
        torch.load(tmp_path / "model.ckpt", weights_only=True)
    contents = read_checkpoint(tmp_path / "model.ckpt")
    assert contents.needed_inert_loading is True
    assert_same_state(contents.state_dict, state)


def test_module_state_dict_with_parameters_and_ordered_dict(tmp_path):
    """torch.save(module.state_dict()): an OrderedDict, read by the weights-only path."""
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    torch.save(module.state_dict(), tmp_path / "model.ckpt")
    contents = read_checkpoint(tmp_path / "model.ckpt")
    assert contents.needed_inert_loading is False
    assert_same_state(contents.state_dict, dict(module.state_dict()))


def test_training_objects_of_other_libraries_load_inertly(tmp_path):
    """numpy arrays and whole pickled torch modules in the training extras are not tensors the
    model needs: they become placeholders and the weights still load."""
    import numpy as np

    state = sample_state()
    extras = {"rng": np.arange(6, dtype=np.float32).reshape(2, 3), "net": torch.nn.Linear(2, 2),
              "cfg": TrainingConfig(0.1, "a")}
    torch.save({"state_dict": state, "hyper_parameters": extras}, tmp_path / "model.ckpt")
    contents = read_checkpoint(tmp_path / "model.ckpt")
    assert contents.needed_inert_loading is True
    assert_same_state(contents.state_dict, state)


def test_inert_placeholders_do_not_reference_test_classes(tmp_path, monkeypatch):
    """The fallback must not import the pickled classes: a placeholder stands in for them."""
    seen = []
    torch.save({"state_dict": sample_state(), "hyper_parameters": TrainingConfig(0.5, "x")},
               tmp_path / "model.ckpt")

    real_load = torch.load

    def spy_load(*args, **kwargs):
        obj = real_load(*args, **kwargs)
        seen.append(obj)
        return obj

    monkeypatch.setattr(torch, "load", spy_load)
    read_checkpoint(tmp_path / "model.ckpt")
    hyper = seen[-1]["hyper_parameters"]
    assert isinstance(hyper, InertObject)
    assert not isinstance(hyper, TrainingConfig)
    assert type(hyper).__module__.startswith("inert.")


# --------------------------------------------------------------- malicious files never run
class Exploit:
    """Pickles as a call of `func(*args)` at load time: the classic pickle attack."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_command(marker: Path) -> str:
    return f"touch '{marker}'"


def _exploits(marker: Path):
    cmd = _touch_command(marker)
    return {
        "os.system": Exploit(os.system, cmd),
        "builtins.exec": Exploit(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": Exploit(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        # A function inside torch's own namespace that shells out: trusting every `torch.*`
        # global would run it.
        "torch.utils.collect_env.run": Exploit(__import__("torch.utils.collect_env").utils.collect_env.run, cmd),
    }


EXPLOIT_NAMES = ["os.system", "builtins.exec", "builtins.eval", "torch.utils.collect_env.run"]


@pytest.mark.parametrize("name", EXPLOIT_NAMES)
@pytest.mark.parametrize("where", ["hyper_parameters", "state_dict_value", "top_level"])
def test_malicious_pickle_never_executes(tmp_path, name, where):
    marker = tmp_path / "pwned"
    exploit = _exploits(marker)[name]
    state = sample_state()
    if where == "hyper_parameters":
        payload = {"state_dict": state, "hyper_parameters": {"cfg": exploit}}
    elif where == "state_dict_value":
        payload = {"state_dict": {**state, "evil": exploit}}
    else:
        payload = exploit
    torch.save(payload, tmp_path / "model.ckpt")
    assert not marker.exists()

    try:
        contents = read_checkpoint(tmp_path / "model.ckpt")
    except ModelFolderError as exc:
        assert "\n" not in str(exc)
        loaded = None
    else:
        loaded = contents
    assert not marker.exists(), f"{name} in {where} ran code from the checkpoint"
    if where == "hyper_parameters":
        # A real model file with one hostile training object still loads, inertly.
        assert loaded is not None and loaded.needed_inert_loading
        assert_same_state(loaded.state_dict, state)
    else:
        assert loaded is None  # not a state dict of tensors


# --------------------------------------------------------------------- not a checkpoint
def test_missing_file(tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        read_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize("data", [b"", b"not a checkpoint at all\n" * 20, os.urandom(4096)])
def test_non_zip_garbage(tmp_path, data):
    (tmp_path / "model.ckpt").write_bytes(data)
    with pytest.raises(ModelFolderError, match="not a PyTorch checkpoint"):
        read_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_checkpoint(tmp_path, fraction):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": sample_state()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelFolderError) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"epoch": 3, "global_step": 100},
        {"state_dict": {"a": 1, "b": [1, 2]}},
        {"state_dict": {**sample_state(), "step": 5}},
        [torch.zeros(3)],
        torch.zeros(3),
        "just a string",
    ],
    ids=["dict-no-tensors", "state-dict-no-tensors", "state-dict-mixed", "list", "tensor", "str"],
)
def test_zip_without_state_dict_of_tensors(tmp_path, payload):
    torch.save(payload, tmp_path / "model.ckpt")
    with pytest.raises(ModelFolderError, match="no state dict of tensors"):
        read_checkpoint(tmp_path / "model.ckpt")
