"""`batch` with the local engine on the tiny model: the manifest, resuming, interruption, the CLI.

The photos are random noise of a few sizes: the tiny model's people are meaningless, but every
step (decode, crop, infer, write) runs for real. 12 photos, a 3-frame clip and three bad inputs
(not the issue's 30: a photo costs 0.1–1 s on this shared 2-core machine, and each test runs
the set once or twice; 30 took 73–92 s).
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from sam3dbody_gui.batch.inputs import expand_inputs
from sam3dbody_gui.batch.local_engine import run_local
from sam3dbody_gui.batch.manifest import MANIFEST_NAME, read_records
from sam3dbody_gui.batch.resume import leftover_temp_files
from sam3dbody_gui.batch.settings import BatchSettings
from sam3dbody_gui.cli import main
from sam3dbody_gui.pipeline.image_io import load_image

GOOD = 12
FRAMES = 3  # of the clip; its frames run before the photos (clip.mp4 sorts first)
REPO = Path(__file__).resolve().parents[1]


def make_clip(path: Path, frames: int = FRAMES, size: tuple[int, int] = (64, 48)) -> None:
    import av

    rng = np.random.default_rng(5)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            picture = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_photos(folder: Path, good: int = GOOD) -> list[str]:
    """`good` noise photos (JPEG and PNG, some in a sub-folder), a clip, a truncated JPEG, a text
    file named .png and a file named .mp4 that is no video; the good photos' names, in the order
    a run lists them."""
    rng = np.random.default_rng(7)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(good):
        rel = f"{'sub/' if i % 2 else ''}p{i}.{'png' if i % 3 == 0 else 'jpg'}"
        Image.fromarray(rng.integers(0, 255, (96 + 16 * i, 128, 3), dtype=np.uint8)).save(folder / rel)
        names.append(rel)
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "text.png").write_text("not a picture")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    make_clip(folder / "clip.mp4")
    return sorted(names, key=lambda n: ("/" in n, n))


def lines(out: Path) -> list[dict]:
    return list(read_records(out / MANIFEST_NAME))


def assert_same_manifest(a: list[dict], b: list[dict], tol: float = 1e-4) -> None:
    """The same lines in the same order, the numbers equal within `tol` (another process, or
    another thread count, may round the last bits differently)."""
    assert [(r["source"], r["status"], r.get("person")) for r in a] == [(r["source"], r["status"], r.get("person"))
                                                                         for r in b]
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if key == "params":
                assert x[key].keys() == y[key].keys()
                for name in x[key]:
                    np.testing.assert_allclose(x[key][name], y[key][name], atol=tol, err_msg=name)
            elif key in ("cam_t", "box_xyxy", "focal_length", "score") and x[key] is not None:
                np.testing.assert_allclose(x[key], y[key], atol=tol, err_msg=key)
            else:
                assert x[key] == y[key], key


class CountingPipeline:
    """The real pipeline, counting photos; optionally a Ctrl+C when photo `interrupt_at` starts."""

    def __init__(self, pipe, interrupt_at: int | None = None) -> None:
        self.pipe, self.interrupt_at, self.calls = pipe, interrupt_at, 0

    def run_people(self, *args, **kwargs):
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt()
        self.calls += 1
        return self.pipe.run_people(*args, **kwargs)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return folder, make_photos(folder)


@pytest.fixture(scope="module")
def settings(tiny_model_dir):
    return BatchSettings(model_dir=tiny_model_dir, formats=("obj", "json"), device="cpu", backend="pytorch",
                         precision="fp32").checked()


def _run(photos, settings, out, pipeline, writers=1):
    return run_local(expand_inputs([str(photos[0])]), settings, out, pipeline=pipeline, writers=writers,
                     log=lambda m: None, progress_out=io.StringIO())


@pytest.fixture(scope="module")
def reference(photos, settings, pipe, tmp_path_factory):
    """One uninterrupted run: its output folder and how many photos it computed."""
    out = tmp_path_factory.mktemp("reference")
    counting = CountingPipeline(pipe)
    tally = _run(photos, settings, out, counting)
    return out, counting.calls, tally


def test_every_photo_is_a_line_and_bad_inputs_are_logged(photos, reference, pipe):
    folder, good = photos
    out, calls, tally = reference
    got = lines(out)
    assert calls == GOOD + FRAMES and tally.computed == GOOD and tally.frames == FRAMES and tally.videos == 1
    assert tally.errors == 3 and tally.persons == GOOD + FRAMES
    by_source = {Path(r["source"]).relative_to(folder).as_posix(): r for r in got}
    assert set(by_source) == set(good) | {"cut.jpg", "text.png", "broken.mp4", "clip.mp4"}
    assert "truncated or corrupt" in by_source["cut.jpg"]["error"] and by_source["cut.jpg"]["status"] == "error"
    assert by_source["text.png"]["status"] == "error"
    assert by_source["broken.mp4"]["status"] == "error" and "cannot read the video" in by_source["broken.mp4"]["error"]
    # The clip: a line per frame, in order, then its own line.
    clip = [r for r in got if r["source"].endswith("clip.mp4")]
    assert [(r["status"], r["frame"]) for r in clip] == [("ok", i) for i in range(FRAMES)] + [("video", None)]
    assert clip[-1]["frames"] == FRAMES and clip[-1]["frames_lost"] == 0
    assert [r["box_xyxy"] for r in clip[:-1]] == [[0.0, 0.0, 64.0, 48.0]] * FRAMES
    assert [r["files"]["obj"].split("/")[1] for r in clip[:-1]] == [f"frame_00000{i}_person_0.obj" for i in range(3)]
    oks = [r for r in got if r["status"] == "ok" and r["frame"] is None]
    assert [Path(r["source"]).relative_to(folder).as_posix() for r in oks] == good  # input order
    for r in oks:
        h, w = Image.open(r["source"]).size[::-1]
        assert r["person"] == 0 and r["people"] == 1 and r["box_from"] == "whole image" and r["score"] is None
        assert r["box_xyxy"] == [0.0, 0.0, w, h] and r["image_size_hw"] == [h, w] and r["frame"] is None
        assert len(r["params"]["mhr_model_params"]) > 0 and np.isfinite(r["cam_t"]).all()
        params = json.loads((out / r["files"]["json"]).read_text())
        assert params["cam_t"] == r["cam_t"] and "timings_ms" not in params
    # The files are the person as `infer` would give them: the mesh in the camera frame.
    first = pipe.run_people(load_image(oks[0]["source"]), [None])[0]
    mesh = trimesh.load(out / oks[0]["files"]["obj"], process=False)
    np.testing.assert_allclose(mesh.vertices, first.vertices_camera, atol=1e-5)
    np.testing.assert_allclose(oks[0]["params"]["shape"], first.params["shape"], atol=1e-6)
    assert leftover_temp_files(out) == []


def test_a_rerun_skips_everything_and_changes_nothing(photos, settings, reference):
    out, _, _ = reference
    before = (out / MANIFEST_NAME).read_bytes()
    counting = CountingPipeline(None)  # a rerun that computed anything would fail on None
    tally = _run(photos, settings, out, counting)
    assert counting.calls == 0 and tally.computed == 0 and tally.skipped == GOOD + 4
    assert (out / MANIFEST_NAME).read_bytes() == before


def test_interrupted_then_resumed_ends_with_the_same_manifest(photos, settings, pipe, reference, tmp_path):
    out = tmp_path / "out"
    first = CountingPipeline(pipe, interrupt_at=2)  # Ctrl+C as the clip's third frame starts
    with pytest.raises(KeyboardInterrupt):
        _run(photos, settings, out, first, writers=2)  # the files made by two writer processes
    # What was computed before Ctrl+C was still written: the clip's first two frames.
    assert [(r["status"], r["frame"]) for r in lines(out)] == [("error", None), ("ok", 0), ("ok", 1)]
    assert leftover_temp_files(out) == []
    second = CountingPipeline(pipe)
    tally = _run(photos, settings, out, second)
    # Resumed inside the clip: its last frame and every photo; broken.mp4 skipped (done).
    assert second.calls == GOOD + 1 and tally.frames == 1 and tally.computed == GOOD and tally.skipped == 1
    assert_same_manifest(lines(out), lines(reference[0]))
    assert leftover_temp_files(out) == []


def test_killed_process_resumes_without_recomputing(photos, settings, pipe, reference, tmp_path, tiny_model_dir):
    """SIGKILL (no clean-up at all) in the middle of a CLI run; the next run removes what it
    left, cuts a torn line, computes only the rest, and ends with the reference manifest."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sam3dbody_gui", "batch", str(photos[0]), "--model", str(tiny_model_dir), "--out",
           str(out), "--formats", "obj,json", "--device", "cpu", "--backend", "pytorch", "--precision", "fp32"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            # At the first photo written: the others (0.1-1 s each here) are still to come.
            if (out / MANIFEST_NAME).exists() and any(r["status"] == "ok" for r in lines(out)):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    done_before = sum(r["status"] == "ok" for r in lines(out))
    assert 1 <= done_before < GOOD + FRAMES
    with open(out / MANIFEST_NAME, "ab") as f:  # as if killed mid-line, too
        f.write(b'{"status":"ok","source":"/torn')
    counting = CountingPipeline(pipe)
    _run(photos, settings, out, counting)
    assert counting.calls == GOOD + FRAMES - done_before
    assert_same_manifest(lines(out), lines(reference[0]))
    assert leftover_temp_files(out) == []


def test_cli_detect_every_person_glb_and_parquet(tiny_model_dir, tmp_path, capsys):
    """`batch --detect`: one line per person the (random-weight) detector finds, in score order."""
    pa = pytest.importorskip("pyarrow.parquet", reason="pyarrow (optional) is not installed")
    assert main(["make-synthetic", str(tmp_path / "det"), "--detector"]) == 0
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(folder / f"g{i}.jpg")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    out = tmp_path / "out"
    args = ["batch", str(folder), "--model", str(tiny_model_dir), "--out", str(out), "--detect", "--detector",
            str(tmp_path / "det"), "--min-score", "0", "--max-people", "3", "--formats", "glb,obj", "--parquet",
            "--device", "cpu"]
    capsys.readouterr()
    assert main(args) == 0
    report = capsys.readouterr().out
    assert "2 photos computed (6 persons)" in report and "1 unreadable or invalid" in report
    got = lines(out)
    people = [r for r in got if r["status"] == "ok"]
    assert [(Path(r["source"]).name, r["person"], r["people"]) for r in people] == [
        ("g0.jpg", 0, 3), ("g0.jpg", 1, 3), ("g0.jpg", 2, 3), ("g1.jpg", 0, 3), ("g1.jpg", 1, 3), ("g1.jpg", 2, 3)]
    for r in people:
        assert r["box_from"] == "detector" and 0 <= r["score"] <= 1 and set(r["files"]) == {"glb", "obj"}
        assert r["box_xyxy"] != [0.0, 0.0, 160.0, 120.0]
        assert len(trimesh.load(out / r["files"]["glb"], force="mesh").vertices) == len(
            trimesh.load(out / r["files"]["obj"], process=False).vertices)
    scores = [r["score"] for r in people[:3]]
    assert scores == sorted(scores, reverse=True)
    table = pa.read_table(out / "manifest.parquet")
    assert table.num_rows == len(got) and table.column("person").to_pylist() == [None, 0, 1, 2, 0, 1, 2]
    assert table.column("param_shape").to_pylist()[1] == pytest.approx(people[0]["params"]["shape"])
    # Run again: everything skipped, nothing recomputed.
    assert main(args) == 0
    assert "0 photos computed (0 persons), 3 skipped" in capsys.readouterr().out
    assert len(lines(out)) == len(got)


def test_cli_mistakes_are_one_error_line(tiny_model_dir, tmp_path, capsys):
    for argv, message in (
            (["batch", str(tmp_path / "none"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")],
             "input not found"),
            (["batch", str(tmp_path), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--formats",
              "obj,fbx"], "unknown output format fbx"),
            (["batch", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "o")], "error: "),
            (["batch", str(tmp_path), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--address",
              "auto"], "--address and --actors are for --engine ray")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # checked before anything was written


class ReplayPipeline:
    """Gives every photo the same (real) result at once: a long run in seconds."""

    def __init__(self, result) -> None:
        self.result = result

    def run_people(self, image, boxes, intrinsics=None, mode="body", **kwargs):
        import copy  # Pipeline.run_people's signature: a stand-in out of step fails every photo

        return [copy.copy(self.result) for _ in boxes]


def _memory_floors(run, quarters: int = 4) -> list[int]:
    """Python memory (tracemalloc's current bytes, sampled every millisecond while `run()` runs):
    the lowest of each quarter of the run's time. Photos in flight (each a ~1 MB share here, as
    many as the machine's pace lets the bounded queues hold) lift the peak by chance; the floor
    between them rises only with what is kept."""
    import threading
    import tracemalloc

    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(tracemalloc.get_traced_memory()[0])
            done.wait(0.001)

    tracemalloc.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
        tracemalloc.stop()
    size = len(samples) // quarters
    return [min(samples[q * size:(q + 1) * size]) for q in range(quarters)]


def test_memory_stays_flat_over_a_long_run(pipe, tiny_model_dir, tmp_path):
    """Nothing per photo is kept over a 192-photo run (the bounded queues hold a few photos;
    results are dropped once written; the meshes' reference cycles are collected): the memory
    floor of the run's third and last quarters is that of its second. STL, the cheapest mesh format to
    write: tracemalloc slows every allocation. (Peaks of short and long runs, compared until
    session 9, differed by a photo in flight on a busy machine: 1.29 vs 2.38 MB.)"""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(192):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"m{i:03d}.png")
    replay = ReplayPipeline(pipe.run_people(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), [None])[0])
    settings = BatchSettings(model_dir=tiny_model_dir, formats=("stl",), device="cpu").checked()
    sources = expand_inputs([str(folder)])
    floors = _memory_floors(lambda: run_local(sources, settings, tmp_path / "out", pipeline=replay,
                                              log=lambda m: None, progress_out=io.StringIO()))
    assert [line["status"] for line in lines(tmp_path / "out")] == ["ok"] * 192  # each mesh written
    # A kept mesh or result (tens of kB a photo) would lift the floor by megabytes over 48 photos.
    assert max(floors[2:]) - floors[1] < 256 * 1024, floors
