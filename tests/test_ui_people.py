"""Several people in the window: drawn and detected boxes, select / move / delete, one batch,
re-running only the person edited, every mesh in the overlay and the 3-D view, scene export."""

from __future__ import annotations

import json
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from sam3dbody_gui.bundled import sample_image_path  # noqa: E402
from sam3dbody_gui.export.mesh_render import person_colour  # noqa: E402
from sam3dbody_gui.ui.main_window import MainWindow  # noqa: E402
from sam3dbody_gui.ui.people import Person, merge_detections, near_duplicates  # noqa: E402
from sam3dbody_gui.ui.state import Settings  # noqa: E402

TIMEOUT_MS = 60_000
LEFT, RIGHT = (20.0, 30.0, 200.0, 470.0), (260.0, 40.0, 460.0, 480.0)  # two boxes, well apart


@pytest.fixture
def window(qtbot, tmp_path, tiny_model_dir) -> MainWindow:
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(1400, 860)
    w.show()
    with qtbot.waitSignal(w.modelReady, timeout=TIMEOUT_MS):
        w.apply_settings(Settings(model_dir=str(tiny_model_dir)), persist=False)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.open_image(sample_image_path())
    return w


def _drag(qtbot, photo, a, b) -> None:
    to_w = lambda x, y: photo.to_widget(x, y).toPoint()  # noqa: E731
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(*a))
    qtbot.mouseMove(photo, to_w((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
    qtbot.mouseMove(photo, to_w(*b))
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=to_w(*b))


def _two_people(qtbot, w) -> object:
    """Draw LEFT and RIGHT with the mouse; the bundle once both have run."""
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS, check_params_cb=lambda b: len(b.people) == 2) as got:
        _drag(qtbot, w.photo, LEFT[:2], LEFT[2:])
        _drag(qtbot, w.photo, RIGHT[:2], RIGHT[2:])
    return got.args[0]


def _count_runs(monkeypatch, pipeline) -> list:
    """Each run_people call's boxes, as the worker makes them."""
    calls = []
    real = pipeline.run_people

    def counted(image, boxes, *args, **kwargs):
        calls.append(list(boxes))
        return real(image, boxes, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_people", counted)
    return calls


def _pixels(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    # A copy: the array viewed the converted image's memory, freed when `img` goes at the return
    # (the pixels read then were whatever reused that memory: a flaky icon test).
    rows = arr.reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    return rows.reshape(img.height(), img.width(), 3).copy()


# ------------------------------------------------------------------------- the window ---
def test_two_drawn_people_run_as_one_batch_and_both_show(qtbot, window, monkeypatch):
    w = window
    calls = _count_runs(monkeypatch, w.controller.pipeline)
    bundle = _two_people(qtbot, w)
    ids = [p.id for p in w.state.people]
    assert len(ids) == 2 and list(bundle.people) == ids and w.state.selected == ids[1]
    assert [p.colour for p in w.state.people] == [0, 1]
    assert [len(c) for c in calls][-1] == 2  # the second run had both people in one batch
    for person in w.state.people:
        shown = bundle.people[person.id]
        assert shown.box == person.box
        assert np.allclose(shown.result.crop.bbox_xyxy, person.box)

    # The overlay layer holds both people, each in their colour (one z-buffer, the same renderer).
    layer = bundle.mesh_layer
    for person in w.state.people:
        x1, y1, x2, y2 = (int(v * bundle.layer_scale) for v in person.box)
        region = layer[y1:y2, x1:x2]
        covered = region[..., 3] > 0
        assert covered.mean() > 0.02
        hue = region[covered][:, :3].astype(float)
        hue /= hue.max(1, keepdims=True) + 1e-6
        ref = person_colour(person.colour) / person_colour(person.colour).max()
        assert np.median(np.abs(hue - ref).sum(1)) < 0.12, person

    # The 3-D view: both meshes, where the camera saw them, with per-vertex colours, and the camera.
    md = w.mesh.mesh_item.opts["meshdata"]
    v = bundle.result.vertices.shape[0]
    assert md.vertexes().shape == (2 * v, 3) and w.mesh.num_vertices == 2 * v
    camera_space = np.concatenate([bundle.people[i].result.vertices_camera for i in ids])
    expected = np.stack([camera_space[:, 0], camera_space[:, 2], -camera_space[:, 1]], 1)
    centre = (expected.max(0) + expected.min(0)) / 2
    assert np.allclose(md.vertexes(), expected - centre, atol=1e-4)
    assert np.allclose(bundle.camera_position, -centre, atol=1e-5)  # the camera at the origin, moved alike
    assert md.vertexColors().shape == (2 * v, 4)
    assert not np.allclose(md.vertexColors()[0], md.vertexColors()[-1])
    assert w.mesh.camera_item.visible()

    # The list: a row per person with their number and status.
    rows = w.panels.people.row_texts()
    assert len(rows) == 2 and rows[0].startswith(f"Person {ids[0]} · user") and "done" in rows[0]


def test_batch_in_the_window_equals_each_person_alone(qtbot, window):
    bundle = _two_people(qtbot, window)
    pipeline = window.controller.pipeline
    for person in window.state.people:
        alone = pipeline.run(window.state.image, person.box)
        got = bundle.people[person.id].result
        scale = np.abs(alone.vertices).max()
        assert np.abs(got.vertices - alone.vertices).max() <= 1e-5 * scale
        assert np.allclose(got.cam_t, alone.cam_t, rtol=1e-5, atol=1e-6)


def test_editing_one_box_reruns_only_that_person(qtbot, window, monkeypatch):
    w = window
    bundle = _two_people(qtbot, w)
    first, second = w.state.people
    kept_before = bundle.people[first.id].result
    calls = _count_runs(monkeypatch, w.controller.pipeline)
    w.state.select(second.id)
    moved = (RIGHT[0] + 12, RIGHT[1], RIGHT[2] + 12, RIGHT[3])
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        assert w.set_box(moved)
    after = got.args[0]
    assert calls == [[moved]]  # one person ran
    assert after.ran == (second.id,)
    assert after.people[first.id].result is kept_before  # the other person's result is kept as it was
    assert after.people[second.id].box == moved

    # Deleting a person runs nobody: the kept result is drawn again alone.
    calls.clear()
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        assert w.box_editor.remove_person(second.id)
    assert calls == [] and list(got.args[0].people) == [first.id] and got.args[0].ran == ()
    assert w.mesh.num_vertices == kept_before.vertices.shape[0]

    # Undo brings the person back (their box as it was before the deletion).
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        assert w.box_editor.undo()
    assert [p.id for p in w.state.people] == [first.id, second.id] and len(got.args[0].people) == 2


def test_click_selects_a_box_tab_steps_and_delete_removes(qtbot, window):
    w = window
    _two_people(qtbot, w)
    first, second = w.state.people
    photo = w.photo
    centre = photo.to_widget((LEFT[0] + LEFT[2]) / 2, (LEFT[1] + LEFT[3]) / 2).toPoint()
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=centre)
    assert w.state.selected == first.id and w.state.people == (first, second)  # a click moves nothing
    assert w.panels.people.list.currentRow() == 0
    photo.setFocus()
    qtbot.keyClick(photo, Qt.Key.Key_Tab)
    assert w.state.selected == second.id
    w.panels.people.list.setCurrentRow(0)  # picking a row selects on the photo
    assert w.state.selected == first.id
    qtbot.keyClick(photo, Qt.Key.Key_Delete)
    assert [p.id for p in w.state.people] == [second.id]

    # The photo paints the remaining box in the accent colour (one person) with its handles.
    image = _pixels(photo.grab().toImage()).astype(int)
    r = photo.box_rect().toRect()
    dpr = photo.devicePixelRatioF()
    edge = image[int(r.center().y() * dpr), int(r.left() * dpr) - 1: int(r.left() * dpr) + 2]
    assert (np.abs(edge - np.array([255, 196, 61])).sum(1) < 120).any()


def test_escape_during_a_new_box_drag_takes_the_new_person_back(qtbot, window):
    w = window
    _two_people(qtbot, w)
    before = w.state.people
    photo = w.photo
    to_w = lambda x, y: photo.to_widget(x, y).toPoint()  # noqa: E731
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=to_w(475, 20))
    qtbot.mouseMove(photo, to_w(505, 200))
    assert len(w.state.people) == 3
    qtbot.keyClick(photo, Qt.Key.Key_Escape)
    assert w.state.people == before


def test_detect_people_fills_the_list_and_keeps_drawn_boxes(qtbot, window, monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector
    from sam3dbody_gui.ui import detection

    folder = make_synthetic_detector(tmp_path / "detector")
    monkeypatch.setattr(detection, "detector_folder", lambda settings: (folder, ""))
    w = window
    assert w.set_box(LEFT)  # the user's own box
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS, check_params_cb=lambda b: len(b.people) > 1):
        assert w.detect_people()
    people = w.state.people
    assert people[0].source == "user" and people[0].box == LEFT
    found = [p for p in people if p.source == "detector"]
    assert found and all(0.5 <= p.score <= 1.0 for p in found)
    assert len({p.colour for p in people}) == len(people)
    rows = w.panels.people.row_texts()
    assert any("detector 0." in r for r in rows)

    # A detection again replaces the earlier detections, keeps the user's box, and is one Undo step.
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.detect_people()
    assert w.state.people[0] == people[0] and len(w.state.people) == len(people)
    assert w.box_editor.undo()
    assert w.state.people == people


def test_no_person_found_says_so_and_the_photo_stays_usable(qtbot, window, monkeypatch):
    from sam3dbody_gui.ui import detection

    monkeypatch.setattr(detection, "detector_folder", lambda settings: (sample_image_path().parent, ""))
    monkeypatch.setattr(detection._Detector, "detect", lambda self, *a: ([], [], "no person found with a score of "
                                                                          "at least 0.5: draw a box"))
    w = window
    with qtbot.waitSignal(w.errorShown, timeout=TIMEOUT_MS) as got:
        w.detect_people()
    assert "No person found" in got.args[0] and "draw a box" in got.args[0]
    assert w.state.people == ()
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.set_box(LEFT)


def test_no_detector_installed_points_to_the_models_dialog(qtbot, window, monkeypatch):
    from sam3dbody_gui.ui import detection

    monkeypatch.setattr(detection, "detector_folder", lambda settings: (None, "no person detector yet: get it in "
                                                                           "Model ▸ Models…"))
    with qtbot.waitSignal(window.errorShown, timeout=5000) as got:
        assert not window.detect_people()
    assert "Models" in got.args[0]


def test_export_from_the_window_holds_every_person(qtbot, window, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    w = window
    _two_people(qtbot, w)
    assert w.export_mesh(tmp_path / "scene.glb")
    scene = trimesh.load(tmp_path / "scene.glb")
    assert isinstance(scene, trimesh.Scene) and len(scene.geometry) == 2
    assert sorted(scene.graph.nodes_geometry) == ["person_0", "person_1"]
    assert w.export_json(tmp_path / "people.json")
    data = json.loads((tmp_path / "people.json").read_text())
    assert len(data["people"]) == 2
    assert [p["box_xyxy"] for p in data["people"]] == [list(p.box) for p in w.state.people]
    assert not w.export_mesh(tmp_path / "scene.stl")  # several people need a scene format
    assert "people" in w.banner.text.text() and not (tmp_path / "scene.stl").exists()


# ---------------------------------------------------------------------- the Qt-free model ---
def test_detections_merge_with_drawn_boxes():
    drawn = Person(1, (0.0, 0.0, 100.0, 200.0), "user", None, 0)
    old = Person(2, (300.0, 0.0, 400.0, 200.0), "detector", 0.9, 1)
    boxes = [(2.0, 0.0, 100.0, 200.0), (500.0, 0.0, 600.0, 200.0), (700.0, 0.0, 800.0, 200.0)]
    people, added = merge_detections((drawn, old), boxes, [0.95, 0.8, 0.6], first_id=3)
    assert added == 2 and people[0] is drawn and old not in people  # the old detection is replaced
    assert [(p.id, p.box, p.score, p.colour) for p in people[1:]] == [
        (3, boxes[1], 0.8, 1), (4, boxes[2], 0.6, 2)]  # the one on the drawn box is left out
    assert near_duplicates(people) == {}
    twin = Person(9, (1.0, 0.0, 101.0, 200.0))
    assert near_duplicates(people + (twin,)) == {1: [9], 9: [1]}


# ------------------------------------------------------------------- camera and height ---
def test_exif_focal_and_a_typed_field_of_view_reach_the_results(qtbot, window, tmp_path):
    from PIL import Image

    from sam3dbody_gui.ui.people_panel import focal_for_fov

    w = window
    photo = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 50  # FocalLengthIn35mmFilm
    Image.open(sample_image_path()).convert("RGB").resize((600, 400)).save(photo, exif=exif)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        assert w.open_image(photo)
    result = got.args[0].result
    assert w.state.camera.source == "exif (35 mm equivalent)"
    assert result.focal_length == pytest.approx(50 / 36 * 600) and result.camera_source == w.state.camera.source
    assert "EXIF" in w.panels.people.camera_source.text() or "exif" in w.panels.people.camera_source.text()

    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        w.panels.people.fov.setValue(40.0)
    result = got.args[0].result
    assert result.focal_length == pytest.approx(focal_for_fov(40.0, (400, 600)))
    assert result.camera_source == "user" and "typed in" in w.panels.people.camera_source.text()
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        w.panels.people.fov_reset.click()
    assert got.args[0].result.focal_length == pytest.approx(50 / 36 * 600)


def test_a_known_height_scales_one_person_and_keeps_the_photo_fit(qtbot, window, monkeypatch):
    w = window
    bundle = _two_people(qtbot, w)
    first, second = w.state.people
    before = bundle.people[second.id].result
    calls = _count_runs(monkeypatch, w.controller.pipeline)
    w.state.select(second.id)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        w.panels.people.height.setValue(1.5)
    after = got.args[0]
    assert calls == [[second.box]] and after.ran == (second.id,)
    tall = after.people[second.id].result
    assert tall.metric["height_m"] == pytest.approx(1.5)
    factor = 1.5 / tall.metric["height_before_m"]
    assert np.allclose(tall.vertices_camera, before.vertices_camera * factor, rtol=1e-5, atol=1e-6)
    assert np.abs(tall.project(tall.vertices_camera) - before.project(before.vertices_camera)).max() < 0.01
    assert w.state.person(second.id).height_m == pytest.approx(1.5)
    assert after.people[first.id].result is bundle.people[first.id].result
    assert w.box_editor.undo() and w.state.person(second.id).height_m is None  # an edit like any other


def test_the_selected_persons_warnings_are_shown_in_full(qtbot, window):
    w = window
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS, check_params_cb=lambda b: len(b.people) == 2) as got:
        assert w.set_box(LEFT)
        w.state.select(None)
        assert w.set_box((LEFT[0] + 2, LEFT[1], LEFT[2] + 2, LEFT[3]))  # nearly the same box: a duplicate
    assert "nearly the same box" in w.state.last_message[0] or any(
        "same person" in s for p in got.args[0].people.values() for s in p.warnings)
    text = w.panels.people.warnings.text()
    assert "may be the same person as person" in text and w.panels.people.warnings.isVisibleTo(w)


# ----------------------------------------------------------------------- keypoint prompts ---
def test_dragging_a_keypoint_reruns_only_the_decoder_and_ends_at_the_last_position(qtbot, window, monkeypatch,
                                                                                    tmp_path):
    from sam3dbody_gui.pipeline.keypoint_prompts import MHR70_NAMES
    from sam3dbody_gui.pipeline.result import CACHED_DECODER_STAGE

    w = window
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS) as got:
        assert w.set_box(LEFT)
    person = w.state.selected_person
    keypoints = got.args[0].people[person.id].result.keypoints_2d
    inside = [i for i, (x, y) in enumerate(keypoints) if LEFT[0] + 20 < x < LEFT[2] - 20 and LEFT[1] + 20 < y < LEFT[3] - 20]
    index = inside[0]
    pipeline = w.controller.pipeline
    calls = _count_runs(monkeypatch, pipeline)
    redecoded = []
    real = pipeline.redecode
    monkeypatch.setattr(pipeline, "redecode", lambda result, prompts, **k: redecoded.append(list(prompts)) or
                        real(result, prompts, **k))
    photo = w.photo
    start = photo.to_widget(*keypoints[index]).toPoint()
    assert photo.keypoint_at(photo.to_widget(*keypoints[index])) >= 0
    photo_index = photo.keypoint_at(photo.to_widget(*keypoints[index]))
    path = [start + QPoint(dx, dy) for dx, dy in ((4, 2), (9, 5), (14, 9))]
    qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=start)
    for point in path:
        qtbot.mouseMove(photo, point)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS, check_params_cb=lambda b: bool(
            b.people[person.id].result.prompts) and abs(b.people[person.id].result.prompts[0].x - photo.to_image(
                QPointF(path[-1])).x()) < 1e-6):
        qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=path[-1])
    final = photo.to_image(QPointF(path[-1]))
    assert calls == []  # no backbone: the decoder alone ran, on the cached features
    assert redecoded and redecoded[-1][0].x == pytest.approx(final.x())
    prompted = w.state.bundle.people[person.id].result
    assert [(q.index, q.name) for q in prompted.prompts] == [(photo_index, MHR70_NAMES[photo_index])]
    assert (prompted.prompts[0].x, prompted.prompts[0].y) == pytest.approx((final.x(), final.y()))
    last = w.state.history[-1]
    assert CACHED_DECODER_STAGE in last and "backbone" not in last
    assert "cached features" in w.latency.summary
    alone = pipeline.run(w.state.image, person.box, prompts=list(prompted.prompts))  # = a fresh prompted run
    assert np.abs(prompted.vertices - alone.vertices).max() <= 1e-5 * np.abs(alone.vertices).max()
    assert w.panels.people.prompts.count() == 1 and MHR70_NAMES[photo_index] in w.panels.people.prompts.item(0).text()
    assert w.export_json(tmp_path / "p.json")
    saved = json.loads((tmp_path / "p.json").read_text())["prompts"]
    assert saved[0]["name"] == MHR70_NAMES[photo_index] and saved[0]["x"] == pytest.approx(final.x())

    # The model's limit on prompts per pass is said, not exceeded; the drag was one Undo step.
    limit = pipeline.config.max_num_clicks
    others = [i for i in range(70) if i != photo_index][:limit]
    for i in others[:-1]:
        assert w.people.place_prompt(i, 100.0, 100.0)
    assert not w.people.place_prompt(others[-1], 120.0, 120.0)
    assert "at most" in w.banner.text.text() or str(limit) in w.banner.text.text()
    while w.state.selected_person.prompts:
        assert w.box_editor.undo()
    assert w.state.selected_person.box == w.state.people[0].box


def test_a_keypoint_picked_by_name_goes_where_the_photo_is_clicked(qtbot, window):
    from sam3dbody_gui.pipeline.keypoint_prompts import MHR70_NAMES, keypoint_index

    w = window
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS):
        assert w.set_box(LEFT)
    panel, photo = w.panels.people, w.photo
    assert panel.keypoint_pick.count() == len(MHR70_NAMES) and panel.place.isEnabled()
    index = keypoint_index("left_wrist")
    panel.keypoint_pick.setCurrentIndex(index)
    panel.place.setChecked(True)
    assert photo.placing == index
    where = photo.to_widget(150.0, 200.0).toPoint()
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT_MS, check_params_cb=lambda b: bool(b.result.prompts)) as got:
        qtbot.mousePress(photo, Qt.MouseButton.LeftButton, pos=where)
        qtbot.mouseRelease(photo, Qt.MouseButton.LeftButton, pos=where)
    (prompt,) = got.args[0].result.prompts
    clicked = photo.to_image(QPointF(where))
    assert (prompt.name, prompt.index) == ("left_wrist", index)
    assert (prompt.x, prompt.y) == pytest.approx((clicked.x(), clicked.y()))
    assert photo.placing == -1 and not panel.place.isChecked()  # one click, one keypoint
    assert w.state.selected_person.box == LEFT  # the box did not move
