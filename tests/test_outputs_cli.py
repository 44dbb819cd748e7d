"""`infer`'s outputs are all-or-nothing and never damage the user's files; everything that can be
checked is checked before the model loads (issue 11 item 3, issue 18 items 13 and 19)."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import BOX, assert_user_error, run_cli, textured_photo

import sam3dbody_gui.pipeline.build as pipeline_build
import sam3dbody_gui.pipeline.pipeline as pipeline_module
from sam3dbody_gui.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "person.png"
    textured_photo(path)
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if the model starts loading: these checks must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded before the problem was found")

    monkeypatch.setattr(pipeline_build, "build_pipeline", forbidden)


def infer(photo, model, *args):
    return run_cli("infer", photo, "--model", model, "--device", "cpu", *args)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: (p.read_bytes() if p.is_file() else b"") for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- refused before any work
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_unwritable_output_is_found_before_the_model_loads_and_nothing_is_written(
        no_model_load, tiny_model_dir, photo, out):
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", *BOX, "--out", out / "m.obj", "--overlay", "/proc/o.png")
    assert_user_error(rc, err, "/proc/o.png", "cannot create files in /proc")
    assert snapshot(out) == {}


def test_overlay_on_the_input_photo_is_refused(no_model_load, tiny_model_dir, photo, out):
    before = photo.read_bytes()
    link = out / "link.png"
    link.symlink_to(photo)
    for target in (photo, link):
        rc, _, err = infer(photo, tiny_model_dir, "--overlay", target, "--json", out / "j.json")
        assert_user_error(rc, err, "is the input photo")
    assert photo.read_bytes() == before
    assert snapshot(out) == {"link.png": before}


def test_two_outputs_on_one_path_are_refused(no_model_load, tiny_model_dir, photo, out):
    rc, _, err = infer(photo, tiny_model_dir, "--overlay", out / "a.png", "--pca", out / "a.png")
    assert_user_error(rc, err, "same file", "overlay", "PCA")
    assert snapshot(out) == {}


def test_no_clobber_refuses_an_existing_output(no_model_load, tiny_model_dir, photo, out):
    (out / "j.json").write_text("mine")
    rc, _, err = infer(photo, tiny_model_dir, "--out", out / "m.obj", "--json", out / "j.json", "--no-clobber")
    assert_user_error(rc, err, "not replacing", "j.json")
    assert snapshot(out) == {"j.json": b"mine"}


def test_a_box_outside_the_photo_is_found_before_the_model_loads(no_model_load, tiny_model_dir, photo, out):
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", 700, 10, 900, 300, "--json", out / "j.json")
    assert_user_error(rc, err, "outside")
    assert snapshot(out) == {}


def test_an_unreadable_photo_is_found_before_the_model_loads(no_model_load, tiny_model_dir, tmp_path, out):
    bad = tmp_path / "cut.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rc, _, err = infer(bad, tiny_model_dir, "--json", out / "j.json")
    assert_user_error(rc, err, "cut.png")
    assert snapshot(out) == {}


def test_a_box_too_large_to_compute_is_refused_before_the_model_loads(no_model_load, tiny_model_dir, photo, out):
    """0 0 1e300 1e300 overlaps the photo, but its crop (1e300 px wide, in float32) is not finite."""
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", 0, 0, "1e300", "1e300", "--json", out / "j.json",
                       "--out", out / "m.obj")
    assert_user_error(rc, err, "too large")
    assert snapshot(out) == {}


# ---------------------------------------------------------------- nothing non-finite is written
def test_a_non_finite_result_is_an_error_and_nothing_is_written(monkeypatch, tiny_model_dir, photo, out):
    real_run = pipeline_module.Pipeline.run_people

    def run_with_nan(self, *args, **kwargs):
        results = real_run(self, *args, **kwargs)
        results[0].vertices = np.full_like(results[0].vertices, np.nan)
        return results

    monkeypatch.setattr(pipeline_module.Pipeline, "run_people", run_with_nan)
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", *BOX, "--out", out / "m.obj", "--json", out / "j.json")
    assert_user_error(rc, err, "not finite", "vertices")
    assert snapshot(out) == {}


def test_json_never_holds_nan():
    """Diagnostics left non-finite (after require_finite passed the result) become null: NaN is
    not JSON, and a strict reader would refuse the whole file."""
    from sam3dbody_gui.export.result_checks import json_ready

    data = {"hands": {"measured": {"wrist_angle_rad": [0.5, float("nan")], "extent": (float("inf"), 2.0)}},
            "mode": "full", "n": 3}
    text = json.dumps(json_ready(data), allow_nan=False)
    assert json.loads(text) == {"hands": {"measured": {"wrist_angle_rad": [0.5, None], "extent": [None, 2.0]}},
                                "mode": "full", "n": 3}


def test_bbox_and_intrinsics_take_negative_numbers_in_any_notation():
    args = build_parser().parse_args(["infer", "p.jpg", "--bbox", "-1e9", "-.5", "1.5E3", "2e2",
                                      "--intrinsics", "1e3", "1e3", "-2.5e2", "-1"])
    assert args.bbox == [[-1e9, -0.5, 1500.0, 200.0]]  # --bbox may be given once per person
    assert args.intrinsics == [1000.0, 1000.0, -250.0, -1.0]
    args = build_parser().parse_args(["--bbox", "-1e3", "0", "1e3", "5e2"])
    assert args.gui_bbox == [-1000.0, 0.0, 1000.0, 500.0]


def test_a_far_box_in_scientific_notation_runs_and_writes_finite_numbers(tiny_model_dir, photo, out):
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", "-1e9", 0, 100, 100, "--json", out / "j.json")
    assert rc == 0, err
    text = (out / "j.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["box_xyxy"] == [-1e9, 0.0, 100.0, 100.0]


# ---------------------------------------------------------------- all or nothing
def test_a_failure_while_writing_the_overlay_leaves_no_mesh_and_keeps_old_files(monkeypatch, tiny_model_dir,
                                                                                photo, out):
    (out / "j.json").write_text("previous")

    def disk_full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    rc, _, err = infer(photo, tiny_model_dir, "--bbox", *BOX, "--out", out / "m.obj", "--overlay", out / "o.png",
                       "--json", out / "j.json")
    assert_user_error(rc, err, "o.png", "No space left on device")
    assert snapshot(out) == {"j.json": b"previous"}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits and symlinks")
def test_outputs_get_a_plain_writes_mode_and_links_are_kept(tiny_model_dir, photo, out):
    saved = os.umask(0o022)
    try:
        (out / "m.obj").write_text("old")
        (out / "m.obj").chmod(0o640)
        (out / "real.json").write_text("old")
        (out / "j.json").symlink_to(out / "real.json")
        rc, _, err = infer(photo, tiny_model_dir, "--bbox", *BOX, "--out", out / "m.obj", "--overlay",
                           out / "o.png", "--pca", out / "p.png", "--json", out / "j.json")
    finally:
        os.umask(saved)
    assert rc == 0, err
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in out.iterdir() if not p.is_symlink()}
    assert modes == {"m.obj": 0o640, "o.png": 0o644, "p.png": 0o644, "real.json": 0o644}
    assert (out / "j.json").is_symlink() and json.loads((out / "real.json").read_text())["box_xyxy"] == list(BOX)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_while_writing_leaves_no_temporary_and_keeps_old_files(tiny_model_dir, photo, out):
    (out / "o.png").write_bytes(b"previous overlay")
    ready = out.parent / "writing"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from PIL import Image
        real_save = Image.Image.save
        def slow_save(self, fp, *args, **kwargs):
            real_save(self, fp, *args, **kwargs)
            Path({str(ready)!r}).write_text(str(fp))
            time.sleep(60)
        Image.Image.save = slow_save
        from sam3dbody_gui.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, "infer", str(photo), "--model", str(tiny_model_dir),
                             "--device", "cpu", "--bbox", *map(str, BOX), "--out", str(out / "m.obj"),
                             "--overlay", str(out / "o.png"), "--json", str(out / "j.json")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the overlay"
            time.sleep(0.05)
        assert Path(ready.read_text()).name.startswith(".o.png."), "the overlay is written to a temporary"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "terminated", stderr
    assert snapshot(out) == {"o.png": b"previous overlay"}
