"""The camera from EXIF, a known height, and per-person warnings (issue 16, items 2-4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sam3dbody_gui.bundled import sample_image_path
from sam3dbody_gui.cli import main
from sam3dbody_gui.pipeline.image_io import load_photo
from sam3dbody_gui.pipeline.photo_camera import photo_camera

BOX = ("20", "10", "370", "512")


def _photo_with_exif(path, size=(300, 200), orientation=1, **tags):
    exif = Image.Exif()
    exif[0x0112] = orientation
    lens = exif.get_ifd(0x8769)
    for tag, value in tags.items():
        lens[{"f35": 0xA405, "f_mm": 0x920A, "res_x": 0xA20E, "unit": 0xA210}[tag]] = value
    Image.new("RGB", size, (90, 120, 150)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_35mm_equivalent_focal_gives_the_formulas_intrinsics_in_every_orientation(tmp_path, orientation):
    path = _photo_with_exif(tmp_path / "p.jpg", orientation=orientation, f35=50)
    photo = load_photo(path)
    h, w = photo.size_hw
    assert {h, w} == {200, 300} and (w > h) == (orientation < 5)  # 5-8 turn the picture a quarter
    camera = photo_camera(path, photo.size_hw)
    assert camera.source == "exif (35 mm equivalent)"
    assert camera.focal_px == pytest.approx(50 / 36 * 300, abs=1e-9)
    assert camera.intrinsics[1, 1] == camera.focal_px and tuple(camera.intrinsics[:2, 2]) == (w / 2, h / 2)


def test_focal_length_with_sensor_resolution_and_the_fallbacks(tmp_path):
    # 4.2 mm lens, 1000 pixels per cm of sensor (unit 3): 4.2 mm × 100 px/mm = 420 px.
    path = _photo_with_exif(tmp_path / "q.jpg", f_mm=4.2, res_x=1000.0, unit=3)
    camera = photo_camera(path, (200, 300))
    assert camera.source == "exif (focal length and sensor)" and camera.focal_px == pytest.approx(420.0)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (300, 200)).save(plain)
    assert photo_camera(plain, (200, 300)).source == "default"
    assert photo_camera(plain, (200, 300)).focal_px == pytest.approx(np.hypot(300, 200))
    user = np.array([[500.0, 0, 10], [0, 500.0, 20], [0, 0, 1]])
    assert photo_camera(path, (200, 300), user).source == "user"


def _infer(capsys, tmp_path, model, name, *extra):
    out = tmp_path / f"{name}.json"
    rc = main(["infer", str(sample_image_path()), "--model", str(model), "--device", "cpu", "--backend", "pytorch",
               "--json", str(out), *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(out.read_text()), captured.out


def test_known_height_scales_body_and_distance_and_keeps_the_photo(capsys, tmp_path, tiny_model_dir):
    short, _ = _infer(capsys, tmp_path, tiny_model_dir, "short", "--bbox", *BOX, "--height", "1.5")
    tall, _ = _infer(capsys, tmp_path, tiny_model_dir, "tall", "--bbox", *BOX, "--height", "1.8")
    for data, height in ((short, 1.5), (tall, 1.8)):
        metric = data["metric"]
        assert metric["height_before_m"] * metric["scale"] == pytest.approx(height, abs=1e-3)  # within 1 mm
    ratio = tall["metric"]["scale"] / short["metric"]["scale"]
    assert ratio == pytest.approx(1.8 / 1.5, rel=1e-6)
    np.testing.assert_allclose(np.array(tall["cam_t"]), np.array(short["cam_t"]) * ratio, rtol=1e-5)
    np.testing.assert_allclose(np.array(tall["keypoints_3d"]), np.array(short["keypoints_3d"]) * ratio, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(tall["keypoints_2d"], short["keypoints_2d"], atol=0.01)  # the photo is unchanged
    assert short["camera_source"] == "default"


def test_duplicate_people_are_warned_about_and_kept(capsys, tmp_path, tiny_model_dir):
    data, out = _infer(capsys, tmp_path, tiny_model_dir, "dup", "--bbox", *BOX, "--bbox", "22", "12", "372", "512")
    assert data["num_people"] == 2
    for person, other in ((0, 1), (1, 0)):
        assert any(f"same person as person {other}" in w for w in data["people"][person]["warnings"])
    assert "warning: may be the same person" in out
