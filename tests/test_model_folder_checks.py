"""Bad model folders fail fast with one clear message, before anything is built or run.

Each case comes from an adversarial pass (issue 11, item 2): configs that hung, crashed or
silently dropped layers; unreadable files reported under the wrong cause; a verification that
called a folder "usable" although it could not load. And item 5: the MHR rig is TorchScript
(code), so it is inspected without being run, hashed, and loaded only on request.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from sam3dbody_gui.errors import ModelFolderError
from sam3dbody_gui.model import mhr_rig
from sam3dbody_gui.model.checkpoint_file import read_checkpoint
from sam3dbody_gui.model.config import load_model_config
from sam3dbody_gui.model.model_folder import find_model_files, load_model_folder
from sam3dbody_gui.model.verify import verify_model_folder

QUICK_S = 20.0  # every rejection below takes well under a second; this only catches a hang


def _tree(tiny_model_dir: Path) -> dict:
    return yaml.safe_load((tiny_model_dir / "model_config.yaml").read_text())


def _folder(tmp_path: Path, tiny_model_dir: Path, edit=None, name: str = "m") -> Path:
    """A model folder: the tiny model's files (copied) with the config edited by `edit(tree)`."""
    folder = tmp_path / name
    (folder / "assets").mkdir(parents=True)
    shutil.copyfile(tiny_model_dir / "model.ckpt", folder / "model.ckpt")
    shutil.copyfile(tiny_model_dir / "assets" / "mhr_model.pt", folder / "assets" / "mhr_model.pt")
    tree = _tree(tiny_model_dir)
    if edit is not None:
        edit(tree)
    (folder / "model_config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return folder


def _set(path: str, value):
    def edit(tree):
        node = tree
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


def _within(seconds: float, fn):
    """fn() on a daemon thread; fails (instead of hanging the suite) when it does not return."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# ------------------------------------------------------------------ the config schema ---
BAD_VALUES = [
    ("MODEL.DECODER.DEPTH", 1_000_000_000, "DECODER.DEPTH"),
    ("MODEL.DECODER.DEPTH", -3, "DECODER.DEPTH"),
    ("MODEL.DECODER.DEPTH", 0, "DECODER.DEPTH"),
    ("MODEL.DECODER.DEPTH", 2.5, "DECODER.DEPTH"),
    ("MODEL.DECODER.DEPTH", True, "DECODER.DEPTH"),
    ("MODEL.DECODER.DIM", 1e12, "DECODER.DIM"),
    ("MODEL.DECODER.HEADS", 0, "DECODER.HEADS"),
    ("MODEL.DECODER.MLP_DIM", -64, "DECODER.MLP_DIM"),
    ("MODEL.DECODER.REPEAT_PE", "false", "DECODER.REPEAT_PE"),  # bool("false") is True
    ("MODEL.IMAGE_SIZE", [0, 0], "IMAGE_SIZE"),
    ("MODEL.IMAGE_SIZE", [512], "IMAGE_SIZE"),
    ("MODEL.IMAGE_SIZE", 1_000_000, "IMAGE_SIZE"),
    ("MODEL.IMAGE_STD", [0, 0, 0], "IMAGE_STD"),
    ("MODEL.IMAGE_STD", [0.2, float("nan"), 0.2], "IMAGE_STD"),
    ("MODEL.IMAGE_MEAN", [0.5, 0.5], "IMAGE_MEAN"),
    ("MODEL.IMAGE_MEAN", "0.5", "IMAGE_MEAN"),
    ("MODEL.MHR_HEAD.MLP_CHANNEL_DIV_FACTOR", 0, "MHR_HEAD.MLP_CHANNEL_DIV_FACTOR"),
    ("MODEL.CAMERA_HEAD.MLP_DEPTH", 100_000, "CAMERA_HEAD.MLP_DEPTH"),
    ("MODEL.CAMERA_HEAD.DEFAULT_SCALE_FACTOR_HAND", -1.0, "CAMERA_HEAD.DEFAULT_SCALE_FACTOR_HAND"),
    ("MODEL.BACKBONE.TYPE", "vit_huge_9000", "BACKBONE.TYPE"),
    ("TRAIN.FP16_TYPE", "int4", "TRAIN.FP16_TYPE"),
]


@pytest.mark.parametrize("key,value,named", BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_config_values_are_checked_against_the_schema(tmp_path, tiny_model_dir, key, value, named):
    folder = _folder(tmp_path, tiny_model_dir, _set(key, value))
    with pytest.raises(ModelFolderError) as err:
        _within(QUICK_S, lambda: load_model_config(folder / "model_config.yaml"))
    assert named in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_several_bad_values_are_reported_together(tmp_path, tiny_model_dir):
    def edit(tree):
        tree["MODEL"]["IMAGE_STD"] = [0, 0, 0]
        tree["MODEL"]["DECODER"]["DEPTH"] = -3
    folder = _folder(tmp_path, tiny_model_dir, edit)
    with pytest.raises(ModelFolderError) as err:
        load_model_config(folder / "model_config.yaml")
    assert "IMAGE_STD" in str(err.value) and "DECODER.DEPTH" in str(err.value)


def test_a_huge_depth_neither_hangs_inference_nor_verification(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir, _set("MODEL.DECODER.DEPTH", 1_000_000_000))
    with pytest.raises(ModelFolderError, match="DECODER.DEPTH"):
        _within(QUICK_S, lambda: load_model_folder(folder))
    report = _within(QUICK_S, lambda: verify_model_folder(folder, deep=True))
    assert not report.ok and report.first_error().startswith("config:") and "DECODER.DEPTH" in report.first_error()


@pytest.mark.parametrize("encoding", ["utf-16", "binary"])
def test_a_config_that_is_not_utf8_text_is_a_clear_error(tmp_path, tiny_model_dir, encoding):
    folder = _folder(tmp_path, tiny_model_dir)
    text = (folder / "model_config.yaml").read_text()
    data = text.encode("utf-16") if encoding == "utf-16" else bytes(range(256)) * 8
    (folder / "model_config.yaml").write_bytes(data)
    with pytest.raises(ModelFolderError, match="not UTF-8 text"):
        load_model_config(folder / "model_config.yaml")
    report = verify_model_folder(folder)
    assert not report.ok and "not UTF-8 text" in report.first_error()
    assert "UnicodeDecodeError" not in report.text()


def test_a_config_with_a_bom_still_reads(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    path = folder / "model_config.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_model_config(path).decoder.depth == 6


# -------------------------------------------------- the checkpoint against the config ---
@pytest.mark.parametrize("depth", [5, 1])
def test_a_shallower_config_than_the_checkpoint_is_an_error_not_ignored(tmp_path, tiny_model_dir, depth):
    folder = _folder(tmp_path, tiny_model_dir, _set("MODEL.DECODER.DEPTH", depth))
    with pytest.raises(ModelFolderError) as err:
        load_model_folder(folder)
    text = str(err.value)
    assert f"decoder.layers.{depth}." in text and "6 decoder layers" in text and f"DEPTH {depth}" in text, text
    report = verify_model_folder(folder)
    assert not report.ok and report.first_error().startswith("checkpoint:"), report.text()
    assert "ignored" not in report.text()


def test_an_extra_tensor_under_a_known_prefix_is_an_error(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    ckpt["state_dict"]["head_pose.proj.extra_bias"] = torch.zeros(3)
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(ModelFolderError, match="head_pose.proj.extra_bias"):
        load_model_folder(folder)
    assert not verify_model_folder(folder).ok


def test_a_tensor_under_an_unknown_prefix_is_still_only_a_warning(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    ckpt["state_dict"]["ema_teacher.weight"] = torch.zeros(3)
    torch.save(ckpt, folder / "model.ckpt")
    loaded = load_model_folder(folder)
    assert loaded.report.unexpected == ["ema_teacher.weight"]
    report = verify_model_folder(folder)
    assert report.ok and [c.level for c in report.checks if c.name == "checkpoint"] == ["warning"]


# ------------------------------------------------------- files that cannot be read ---
def test_a_symlink_loop_is_named_as_such(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    (folder / "model.ckpt").unlink()
    os.symlink("loop_b", folder / "model.ckpt")
    os.symlink("model.ckpt", folder / "loop_b")
    with pytest.raises(ModelFolderError) as err:
        find_model_files(folder)
    assert "symlink loop" in str(err.value) and "model.ckpt" in str(err.value)
    assert "missing" not in str(err.value)
    with pytest.raises(ModelFolderError, match="symlink loop"):
        read_checkpoint(folder / "model.ckpt")


def test_a_model_folder_in_a_symlink_loop_is_not_called_missing(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ModelFolderError, match="symlink loop") as err:
        find_model_files(tmp_path / "a")
    assert "not found" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFolderError, match="is a file, not a folder"):
        find_model_files(tmp_path / "file")


def test_a_broken_link_names_its_target(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    (folder / "assets" / "mhr_model.pt").unlink()
    os.symlink(tmp_path / "gone" / "mhr_model.pt", folder / "assets" / "mhr_model.pt")
    with pytest.raises(ModelFolderError) as err:
        find_model_files(folder)
    assert "broken link" in str(err.value) and str(tmp_path / "gone") in str(err.value)


def test_a_folder_in_place_of_the_checkpoint(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    (folder / "model.ckpt").unlink()
    (folder / "model.ckpt").mkdir()
    with pytest.raises(ModelFolderError, match="model.ckpt is a folder"):
        find_model_files(folder)


def test_an_unreadable_checkpoint_says_permission_denied(tmp_path, tiny_model_dir, monkeypatch):
    """Not 'not a zip archive' (zipfile.is_zipfile swallows the OSError). Simulated, so that it
    also holds when the tests run as root (who may read anything)."""
    folder = _folder(tmp_path, tiny_model_dir)
    target = str(folder / "model.ckpt")
    real_open = open

    def deny(file, *args, **kwargs):
        if str(file) == target:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(ModelFolderError) as err:
        read_checkpoint(folder / "model.ckpt")
    assert "permission denied" in str(err.value) and "zip" not in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_permission_denied_for_real(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    (folder / "model.ckpt").chmod(0)
    try:
        report = verify_model_folder(folder)
        assert not report.ok and "permission denied" in report.first_error()
    finally:
        (folder / "model.ckpt").chmod(0o644)


# --------------------------------------------------------------- the MHR rig (code) ---
def test_shallow_verification_never_runs_the_rig(tmp_path, tiny_model_dir, monkeypatch):
    folder = _folder(tmp_path, tiny_model_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("the rig was loaded")

    monkeypatch.setattr(mhr_rig, "load_mhr_rig", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)
    report = verify_model_folder(folder)
    assert report.ok
    rig = [c for c in report.checks if c.name == "MHR rig"][0]
    assert "not run" in rig.detail
    assert "usable" in report.text() and "not run" in report.text().splitlines()[0]


def test_shallow_verification_rejects_a_rig_that_is_not_torchscript(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    torch.save({"not": torch.zeros(2)}, folder / "assets" / "mhr_model.pt")  # a zip, but no code
    report = verify_model_folder(folder)
    assert not report.ok and report.first_error().startswith("MHR rig:"), report.text()
    with pytest.raises(ModelFolderError):
        load_model_folder(folder)


def test_a_rig_whose_code_reads_files_is_flagged_before_it_runs(tmp_path, tiny_model_dir):
    class Sneaky(torch.nn.Module):
        def forward(self, shape: torch.Tensor, params: torch.Tensor, expr: torch.Tensor):
            stolen = torch.from_file("/etc/hostname", shared=False, size=1, dtype=torch.uint8)
            return shape + stolen.float().sum(), params

    folder = _folder(tmp_path, tiny_model_dir)
    torch.jit.save(torch.jit.script(Sneaky()), str(folder / "assets" / "mhr_model.pt"))
    report = verify_model_folder(folder)
    rig = [c for c in report.checks if c.name == "MHR rig"][0]
    assert rig.level == "warning" and "from_file" in rig.detail and "files" in rig.detail


def test_running_the_rig_catches_a_rig_that_does_not_fit(tmp_path, tiny_model_dir):
    class Wrong(torch.nn.Module):
        def forward(self, shape: torch.Tensor, params: torch.Tensor, expr: torch.Tensor):
            return torch.zeros(1, 10, 3), torch.zeros(1, 127, 8)

    folder = _folder(tmp_path, tiny_model_dir)
    torch.jit.save(torch.jit.script(Wrong()), str(folder / "assets" / "mhr_model.pt"))
    assert verify_model_folder(folder).ok  # not run: nothing to see in the archive
    report = verify_model_folder(folder, run_rig=True)
    assert not report.ok and report.first_error().startswith("MHR rig:") and "do not match" in report.first_error()


def test_the_rig_hash_is_unverified_while_no_published_hash_is_known(tmp_path, tiny_model_dir, monkeypatch):
    folder = _folder(tmp_path, tiny_model_dir)
    digest = hashlib.sha256((folder / "assets" / "mhr_model.pt").read_bytes()).hexdigest()
    assert mhr_rig.PUBLISHED_MHR_RIG_SHA256 is None  # the app does not know the released rig's hash
    report = verify_model_folder(folder, run_rig=True)
    rig = [c for c in report.checks if c.name == "MHR rig"][0]
    assert report.ok and "unverified" in rig.detail and digest in rig.detail

    monkeypatch.setattr(mhr_rig, "PUBLISHED_MHR_RIG_SHA256", "0" * 64)
    report = verify_model_folder(folder, run_rig=True)
    rig = [c for c in report.checks if c.name == "MHR rig"][0]
    assert rig.level == "warning" and "differs from the published" in rig.detail

    monkeypatch.setattr(mhr_rig, "PUBLISHED_MHR_RIG_SHA256", digest)
    rig = [c for c in verify_model_folder(folder, run_rig=True).checks if c.name == "MHR rig"][0]
    assert rig.level == "ok" and "published" in rig.detail


# ----------------------------------------------------------------- deep verification ---
def test_deep_verification_finds_non_finite_weights(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    ckpt["state_dict"]["decoder.norm_final.weight"][3] = float("nan")
    torch.save(ckpt, folder / "model.ckpt")
    assert verify_model_folder(folder).ok  # the quick check reads no tensor data
    report = verify_model_folder(folder, deep=True)
    assert not report.ok and "decoder.norm_final.weight" in report.first_error() and "NaN" in report.first_error()


def test_deep_verification_compares_sha256_with_the_hubs(tmp_path, tiny_model_dir, monkeypatch):
    from fake_hub import FakeHub, isolate_huggingface_hub, repos_from_model

    from sam3dbody_gui import hub

    isolate_huggingface_hub(monkeypatch, tmp_path)
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    server = FakeHub(repos_from_model(tiny_model_dir)).start()
    try:
        cached = hub.download(hub.MODEL_FILES, hub.HubOptions(cache_dir=tmp_path / "hub", endpoint=server.url,
                                                              link_dir=tmp_path / "links")).folder
        local = hub.download(hub.MODEL_FILES, hub.HubOptions(local_dir=tmp_path / "dest", endpoint=server.url)).folder
    finally:
        server.stop()
    ckpt_sha = hashlib.sha256((tiny_model_dir / "model.ckpt").read_bytes()).hexdigest()
    for folder in (cached, local):
        report = verify_model_folder(folder, deep=True)
        assert report.ok, report.text()
        lines = {c.name: c for c in report.checks}
        assert ckpt_sha in lines["SHA-256 model.ckpt"].detail and "matches the Hub" in lines["SHA-256 model.ckpt"].detail
        assert "matches the Hub" in lines["SHA-256 assets/mhr_model.pt"].detail
        assert "matches the Hub" in lines["MHR rig"].detail

    # The file changed after the download: the folder of a --dest download says so.
    data = bytearray((local / "model.ckpt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (local / "model.ckpt").unlink()
    (local / "model.ckpt").write_bytes(bytes(data))
    report = verify_model_folder(local, deep=True)
    line = {c.name: c for c in report.checks}["SHA-256 model.ckpt"]
    assert line.level == "error" and "differs from the Hub" in line.detail and not report.ok

    # A rig swapped after the download is refused before it is run.
    class Other(torch.nn.Module):
        def forward(self, shape: torch.Tensor, params: torch.Tensor, expr: torch.Tensor):
            return shape, params

    (local / "assets" / "mhr_model.pt").unlink()  # the download may have hard-linked it
    torch.jit.save(torch.jit.script(Other()), str(local / "assets" / "mhr_model.pt"))
    monkeypatch.setattr(mhr_rig, "load_mhr_rig", lambda *a, **k: pytest.fail("a swapped rig was run"))
    report = verify_model_folder(local, run_rig=True)
    rig = {c.name: c for c in report.checks}["MHR rig"]
    assert rig.level == "error" and "differs from the Hub" in rig.detail and "not run" in rig.detail


def test_deep_verification_of_a_folder_not_from_the_hub_shows_the_hash(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    report = verify_model_folder(folder, deep=True)
    line = {c.name: c for c in report.checks}["SHA-256 model.ckpt"]
    assert line.level == "info" and hashlib.sha256((folder / "model.ckpt").read_bytes()).hexdigest() in line.detail
    assert "not from the Hub" in line.detail


def test_verification_can_be_cancelled(tmp_path, tiny_model_dir):
    folder = _folder(tmp_path, tiny_model_dir)
    cancel = threading.Event()
    cancel.set()
    start = time.perf_counter()
    report = verify_model_folder(folder, deep=True, cancel=cancel)
    assert time.perf_counter() - start < QUICK_S
    assert report.cancelled and not report.ok and "cancelled" in report.text()
