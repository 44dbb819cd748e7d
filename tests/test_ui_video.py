"""The window's video panel, headless (Qt's offscreen platform), on a synthetic clip made with
PyAV and the tiny model: the timeline, scrubbing (the picture is the decoded frame; latest
request wins), a corrupt file as one message, the pass with cancel and resume (the same records
as one uninterrupted pass), the animated GLB exported from the panel and read back, the id
fixes, and the live source: newest frame wins (never a queue), and a file played by a
QMediaPlayer as the camera."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import

import json  # noqa: E402
import time  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pygltflib as gl  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from sam3dbody_gui.ui.frame_view import qimage_to_rgb  # noqa: E402
from sam3dbody_gui.ui.video_panel import VideoPanel  # noqa: E402
from sam3dbody_gui.ui.video_timeline import timecode  # noqa: E402
from sam3dbody_gui.video.reader import VideoReader  # noqa: E402
from test_video_reader import make_clip  # noqa: E402

TIMEOUT_MS = 120_000
FRAMES = 8
BOXES = [(10, 15, 40, 105), (120, 12, 150, 108)]  # the two figures on the first frame


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """The tiny model on one thread for this module (conftest.py says why)."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    make_clip(path, frames=FRAMES)
    return path


@pytest.fixture(scope="module")
def decoded(clip):
    with VideoReader(clip) as reader:
        return {f.index: f.rgb for f in reader.frames()}


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from sam3dbody_gui.pipeline.build import build_pipeline

    return build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)


def _panel(qtbot, tmp_path, pipeline=None, work="work") -> VideoPanel:
    panel = VideoPanel(lambda: pipeline, lambda: None, work_dir=tmp_path / work)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    panel.problems = []
    panel.problem.connect(panel.problems.append)
    return panel


def _open(qtbot, panel, clip) -> None:
    with qtbot.waitSignal(panel.frameShown, timeout=TIMEOUT_MS):
        assert panel.open_clip(clip)


def _boxes(panel) -> None:
    panel.boxes_radio.setChecked(True)
    panel.view.set_boxes(BOXES)


def _process(qtbot, panel, cancel_after=None) -> None:
    if cancel_after is not None:
        panel.session.progress.connect(lambda done, total, fps: done >= cancel_after and panel.cancel())
    with qtbot.waitSignal(panel.session.passFinished, timeout=TIMEOUT_MS):
        assert panel.process()


# --- the timeline ------------------------------------------------------------------------------
def test_timecode_is_minutes_seconds_and_hundredths():
    assert timecode(0) == "00:00.00"
    assert timecode(62.5) == "01:02.50"
    assert timecode(11 / 12) == "00:00.92"
    assert timecode(3600 + 1.25) == "60:01.25"


def test_timeline_keys_step_jump_and_play(qtbot):
    from sam3dbody_gui.ui.video_timeline import VideoTimeline

    t = VideoTimeline()
    qtbot.addWidget(t)
    t.show()
    t.set_clip(50, 25.0)
    asked = []
    t.frameRequested.connect(asked.append)
    qtbot.keyClick(t, Qt.Key.Key_Right)
    qtbot.keyClick(t, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # one second
    qtbot.keyClick(t, Qt.Key.Key_End)
    qtbot.keyClick(t, Qt.Key.Key_Left)
    qtbot.keyClick(t, Qt.Key.Key_Home)
    assert asked == [1, 26, 49, 48, 0]
    assert t.label.text() == "frame 0 / 49  ·  00:00.00"
    qtbot.keyClick(t, Qt.Key.Key_Space)
    assert t.playing
    qtbot.waitUntil(lambda: t.frame >= 5, timeout=5000)  # plays in the clip's own time
    qtbot.keyClick(t, Qt.Key.Key_Space)
    assert not t.playing
    for f in (3, 4, 5, 9):
        t.mark_processed(f)
    t.mark_processed(6, skipped=True)
    assert t.band.processed() == 5 and list(np.flatnonzero(t.band.state == 2)) == [6]


# --- opening and scrubbing -------------------------------------------------------------------------
def test_scrubbing_shows_the_decoded_frame_and_the_latest_request_wins(qtbot, tmp_path, clip, decoded):
    panel = _panel(qtbot, tmp_path)
    _open(qtbot, panel, clip)
    assert np.array_equal(qimage_to_rgb(panel.view.picture()), decoded[0])
    assert panel.timeline.frame_count == FRAMES and panel.timeline.label.text().startswith("frame 0 / 7")
    shows = panel.session.shows
    shown = []
    panel.frameShown.connect(lambda item: shown.append(item[0]))
    for index in (1, 2, 3, 4, 5, 6, 2, 5):  # a drag along the slider, faster than decoding
        panel.timeline.slider.setValue(index)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == 5 and not panel.session._show_busy, timeout=TIMEOUT_MS)
    assert panel.session.shows - shows <= 2  # the first request, then the newest: never a queue of 8
    assert panel.timeline.frame == 5
    assert np.array_equal(qimage_to_rgb(panel.view.picture()), decoded[5])  # the picture is the frame the clip holds, pixel for pixel


def test_a_corrupt_or_unsupported_file_is_one_message_not_a_crash(qtbot, tmp_path, clip, decoded):
    panel = _panel(qtbot, tmp_path)
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mkv"
    text.write_text("not a video")
    for bad in (garbage, text, tmp_path / "missing.mov"):
        before = len(panel.problems)
        assert not panel.open_clip(bad)
        assert len(panel.problems) == before + 1 and str(bad) in panel.problems[-1]
        assert "\n" not in panel.problems[-1] and "Traceback" not in panel.problems[-1]
    assert not panel.session.is_open and not panel.process_button.isEnabled()
    _open(qtbot, panel, clip)  # and the panel still works
    assert np.array_equal(qimage_to_rgb(panel.view.picture()), decoded[0])


# --- the pass -------------------------------------------------------------------------------------
def _work_lines(session) -> list[dict]:
    return [json.loads(line) for line in session.work_path.read_text().splitlines()[1:]]


def _assert_same_records(a, b, rtol: float = 1e-4) -> None:
    """The same records: the same frames, people, ids and sources, the numbers equal within `rtol`
    (the two passes may run on pool threads with other intra-op thread counts: the last bits differ)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            _assert_same_records(a[key], b[key], rtol)
    elif isinstance(a, list) and a and all(isinstance(v, (int, float)) for v in a):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-4)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_records(x, y, rtol)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rtol, abs=1e-4)
    else:
        assert a == b


def test_cancel_then_resume_gives_the_records_of_one_uninterrupted_pass(qtbot, tmp_path, clip, decoded, pipe):
    whole = _panel(qtbot, tmp_path, pipe, work="whole")
    _open(qtbot, whole, clip)
    _boxes(whole)
    _process(qtbot, whole)
    assert whole.session.complete and whole.timeline.band.processed() == FRAMES
    uninterrupted = _work_lines(whole.session)
    assert [r["frame"] for r in uninterrupted] == list(range(FRAMES))

    panel = _panel(qtbot, tmp_path, pipe, work="stopped")
    _open(qtbot, panel, clip)
    _boxes(panel)
    _process(qtbot, panel, cancel_after=3)
    stopped = panel.session.last_pass
    assert not stopped.complete and 3 <= len(stopped.records) < FRAMES
    assert panel.process_button.text() == "Resume"
    assert 0 < panel.timeline.band.processed() < FRAMES
    panel.session.progress.disconnect()
    panel.session.progress.connect(panel._on_progress)
    _process(qtbot, panel)
    resumed = panel.session.last_pass
    assert resumed.complete and resumed.resumed == len(stopped.records)
    assert resumed.computed == FRAMES - len(stopped.records)
    _assert_same_records(_work_lines(panel.session), uninterrupted)  # the file read back: the same records
    assert panel.session.work_path.name == whole.session.work_path.name  # keyed as the command line keys it
    assert panel.timeline.band.processed() == FRAMES and panel.progress.value() == FRAMES

    # Once the motion is made, the frame shows its people: meshes over the figures, one colour an id.
    qtbot.waitUntil(lambda: panel.session.motion_current, timeout=TIMEOUT_MS)
    shown = []
    panel.frameShown.connect(shown.append)
    panel.show_frame(3)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1][0] == 3 and not panel.session._show_busy, timeout=TIMEOUT_MS)
    index, image, people = shown[-1]
    assert np.array_equal(image, decoded[3]) and [pid for pid, _ in people] == [1, 2]
    assert panel.timeline.frame == 3
    picture = qimage_to_rgb(panel.view.picture()).astype(int)
    changed = np.abs(picture - decoded[3]).sum(2) > 30
    assert changed.mean() > 0.02  # the meshes are drawn over the frame
    assert sorted(panel.ids.ids()) == [1, 2]


def test_the_panel_exports_an_animated_glb_with_a_key_per_frame(qtbot, tmp_path, clip, pipe):
    panel = _panel(qtbot, tmp_path, pipe)
    _open(qtbot, panel, clip)
    _boxes(panel)
    _process(qtbot, panel)
    qtbot.waitUntil(lambda: panel.export_buttons["glb"].isEnabled(), timeout=TIMEOUT_MS)
    out = tmp_path / "out"
    out.mkdir()
    for kind, name in (("glb", "anim.glb"), ("bvh", "anim.bvh"), ("jsonl", "frames.jsonl"), ("mp4", "overlay.mp4")):
        with qtbot.waitSignal(panel.exports.finished, timeout=TIMEOUT_MS) as done:
            assert panel.export(kind, out / name)
        assert str(out / name) in done.args[0] and f"{FRAMES} frames" in done.args[0]
    doc = gl.GLTF2().load(str(out / "anim.glb"))
    assert len(doc.skins) == 2 and len(doc.animations) == 1
    keys = {doc.accessors[doc.animations[0].samplers[c.sampler].input].count for c in doc.animations[0].channels}
    assert keys == {FRAMES}  # one keyframe a frame, on every channel
    times = doc.accessors[doc.animations[0].samplers[0].input]
    assert times.max[0] == pytest.approx((FRAMES - 1) / 12, abs=1e-4)
    assert f"\nFrames: {FRAMES}\n" in (out / "anim.bvh").read_text()
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert lines[0]["people"] == [1, 2] and [f["frame"] for f in lines[1:]] == list(range(FRAMES))
    with av.open(str(out / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    assert sorted(p.name for p in out.iterdir()) == ["anim.bvh", "anim.glb", "frames.jsonl", "overlay.mp4"]

    # Keep only id 2: the next export has one skin.
    panel.ids.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: panel.session.motion_current and list(panel.session.motion.people) == [2],
                    timeout=TIMEOUT_MS)
    with qtbot.waitSignal(panel.exports.finished, timeout=TIMEOUT_MS):
        assert panel.export("glb", out / "anim.glb")
    assert len(gl.GLTF2().load(str(out / "anim.glb")).skins) == 1


def test_merge_and_split_ids_from_the_list(qtbot, tmp_path, clip, pipe):
    panel = _panel(qtbot, tmp_path, pipe)
    _open(qtbot, panel, clip)
    _boxes(panel)
    _process(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.motion_current, timeout=TIMEOUT_MS)
    before = len(panel.problems)
    panel.ids.list.selectAll()
    panel.ids.merge.click()  # ids 1 and 2 are both in every frame: refused, one message
    assert len(panel.problems) == before + 1 and "both in frame" in panel.problems[-1]
    panel.timeline.request(5)
    panel.ids.list.clearSelection()
    panel.ids.list.item(0).setSelected(True)
    panel.ids.split.click()
    assert sorted(panel.ids.ids()) == [1, 2, 3]
    qtbot.waitUntil(lambda: panel.session.motion_current and sorted(panel.session.motion.people) == [1, 2, 3],
                    timeout=TIMEOUT_MS)
    people = panel.session.motion.people
    assert list(people[1].frames) == [0, 1, 2, 3, 4] and list(people[3].frames) == [5, 6, 7]


def test_the_detector_every_k_frames_finds_and_carries_people(qtbot, tmp_path, clip, pipe):
    pytest.importorskip("transformers")
    from dataclasses import replace

    from sam3dbody_gui.model.detector import load_detector
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector

    detector = None
    panel = VideoPanel(lambda: pipe, lambda: detector, work_dir=tmp_path / "work")
    qtbot.addWidget(panel)
    problems = []
    panel.problem.connect(problems.append)
    _open(qtbot, panel, clip)
    assert not panel.process() and len(problems) == 1 and "no person detector" in problems[0]
    folder = make_synthetic_detector(tmp_path / "detector", "tiny", seed=0)
    detector = load_detector(folder)
    panel.every.setValue(3)
    panel.session.options = replace(panel.session.options, max_people=2, max_frames=5)
    _process(qtbot, panel)
    records = panel.session.ordered_records()
    sources = [{p["source"] for p in r["people"]} for r in records]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert sources[0] == {"detector"} and sources[3] == {"detector"}
    assert sources[1] <= {"carried"} and sources[2] <= {"carried"}
    header = json.loads(panel.session.work_path.read_text().splitlines()[0])
    assert header["settings"]["detector"] == {"folder": str(folder.resolve())}  # as the command line keys it
    assert header["settings"]["detect_every"] == 3


def test_a_split_of_merged_ids_splits_the_whole_person():
    from sam3dbody_gui.video.id_edits import id_frames, merged, split, with_kept
    from sam3dbody_gui.video.tracking import IdFixes

    def rec(f, ids):
        return {"frame": f, "people": [{"id": i} for i in ids]}

    # Id 2 is lost at frame 20 and found again as id 3 at frame 25.
    records = [rec(f, [1, 2]) for f in range(20)] + [rec(f, [1]) for f in range(20, 25)] + \
        [rec(f, [1, 3]) for f in range(25, 30)]
    fixes = merged(IdFixes(), records, 3, 2)
    assert id_frames(records, fixes) == {1: 30, 2: 25}
    fixes, new = split(fixes, records, 2, 10)  # frames 10-19 of raw id 2 and all of raw id 3
    assert new == 4 and id_frames(records, fixes) == {1: 30, 2: 10, 4: 15}
    assert [fixes.map(2, f) for f in (9, 10)] == [2, 4] and fixes.map(3, 27) == 4
    assert with_kept(fixes, records, 1, False).keep == frozenset({2, 4})
    assert with_kept(with_kept(fixes, records, 1, False), records, 1, True).keep is None


# --- the live source ------------------------------------------------------------------------------
def test_newest_wins_never_queues_more_than_one():
    from sam3dbody_gui.ui.newest_wins import NewestWins

    started = []
    q = NewestWins(started.append)
    for i in range(5):
        q.offer(i)
    assert started == [0] and q.pending == 4 and q.dropped == 3 and q.most_waiting == 1
    q.done()
    assert started == [0, 4] and q.pending is None
    q.done()
    q.offer(5)
    assert started == [0, 4, 5] and q.dropped == 3


def test_live_frames_faster_than_processing_are_dropped_not_queued(qtbot):
    from sam3dbody_gui.ui.live_camera import LiveCamera

    def slow(rgb):
        time.sleep(0.05)
        return []

    live = LiveCamera(lambda: None, lambda: None, process=slow)
    live.running = True
    shown, waiting = [], []
    live.frameReady.connect(lambda s: shown.append(s.index))
    rng = np.random.default_rng(0)
    for _ in range(60):  # a frame every 5 ms, ten times faster than it is processed
        live.offer(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        waiting.append(live.queue.waiting)
        qtbot.wait(5)
    qtbot.waitUntil(lambda: not live.queue.busy, timeout=TIMEOUT_MS)
    assert live.dropped > 0 and max(waiting) <= 1 and live.queue.most_waiting == 1
    assert len(shown) + live.dropped == 60  # every frame either shown or dropped, none left behind
    assert shown == sorted(shown) and shown[-1] == 59  # in order, and the newest was the last shown


def test_a_file_played_as_the_camera_shows_meshes(qtbot, tmp_path, pipe):
    from sam3dbody_gui.ui.live_camera import multimedia_problem

    problem = multimedia_problem()
    if problem is not None:
        pytest.skip(problem)
    long_clip = tmp_path / "long.mp4"
    make_clip(long_clip, frames=36)
    panel = _panel(qtbot, tmp_path, pipe)
    frames = []
    panel.frameShown.connect(frames.append)
    if not panel.start_live(long_clip):
        pytest.skip(f"the multimedia backend cannot play here: {panel.problems}")
    try:
        qtbot.waitUntil(lambda: len(frames) >= 3, timeout=60_000)
    except Exception:
        pytest.skip(f"the offscreen multimedia backend gave no frames ({panel.problems})")
    finally:
        live = panel.live
        panel.stop_live()
    index, image, people = frames[-1]
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert len(people) >= 1 and people[0][1].vertices.shape[1] == 3  # the tiny model ran on the frame
    with VideoReader(long_clip) as reader:
        pictures = [f.rgb.astype(int) for f in reader.frames()]
    for _, image, _ in frames:  # each is one of the clip's frames (another decoder: close, not equal)
        assert min(np.abs(image.astype(int) - p).mean() for p in pictures) < 8
    assert live.frames_seen >= len(frames) and live.dropped + live.shown <= live.frames_seen


# --- in the main window -----------------------------------------------------------------------
def test_the_window_opens_a_clip_in_place_of_the_photo_and_plays_its_meshes(qtbot, tmp_path, clip, tiny_model_dir):
    from PySide6.QtCore import QSettings

    from sam3dbody_gui.bundled import sample_image_path
    from sam3dbody_gui.ui.main_window import MainWindow
    from sam3dbody_gui.ui.state import Settings

    w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1400, 860)
    w.show()
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    w.video._ensure_panel().session.work_dir = tmp_path / "work"
    with qtbot.waitSignal(w.video.panel.frameShown, timeout=TIMEOUT_MS):
        assert w.open_image(clip)  # a video goes to the video panel
    assert w.video.active and w.panels.photo_panel.title.text() == "Video"
    panel = w.video.panel
    _boxes(panel)
    _process(qtbot, panel)
    qtbot.waitUntil(lambda: panel.session.motion_current, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(panel.frameShown, timeout=TIMEOUT_MS, check_params_cb=lambda s: s[0] == 2 and len(s[2]) == 2):
        panel.show_frame(2)
    v = w.controller.pipeline.faces.max() + 1
    assert w.mesh.num_vertices == 2 * v  # both tracked people in the 3-D view
    # A photo again: the photo panel comes back with its own result.
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.open_image(sample_image_path())
    assert not w.video.active and w.panels.photo_panel.title.text() == "Photo"
    assert w.mesh.num_vertices == v
    w.close()
