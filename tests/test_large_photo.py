"""Large photos (issue 11 item 4): decoded reduced for display, crops read from the
full-resolution file only where the box is, bit-identical to cropping the whole photo.

The photos here are small; `large` lowers the threshold so they take the large-photo path.
The memory test makes a 39 MP JPEG and measures peak RSS in subprocesses. The 144 MP
measurement of the whole `infer` is this file run as a script:

    .venv/bin/python tests/test_large_photo.py [MEGAPIXELS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3dbody_gui.errors import ImageError
from sam3dbody_gui.pipeline import image_io
from sam3dbody_gui.pipeline.image_io import load_image, load_photo
from sam3dbody_gui.pipeline.preprocess import (crop_geometry, sampled_rows_cols, square_rows_cols,
                                               warp_crop_uint8)

REPO = Path(__file__).resolve().parents[1]
W, H = 203, 157  # odd sizes: partial JPEG blocks, uneven reductions


@pytest.fixture
def large(monkeypatch):
    """Every photo over 1,000 pixels is 'large'; displays at most 4,000 pixels (so reduced by 4 or 8)."""
    monkeypatch.setattr(image_io, "LARGE_PHOTO_PIXELS", 1_000)
    monkeypatch.setattr(image_io, "DISPLAY_MAX_PIXELS", 4_000)


def texture(width: int = W, height: int = H, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x * 7 + y * 3) % 256], -1)
    return np.clip(base + rng.integers(-60, 61, base.shape), 0, 255).astype(np.uint8)


def exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def make_photo(folder: Path, kind: str, orientation: int) -> Path:
    rgb = texture()
    if kind == "jpeg":
        path = folder / f"p{orientation}.jpg"
        Image.fromarray(rgb).save(path, quality=85, exif=exif(orientation))
    elif kind == "cmyk-jpeg":
        path = folder / f"c{orientation}.jpg"
        Image.fromarray(rgb).convert("CMYK").save(path, quality=90, exif=exif(orientation))
    elif kind == "grey-jpeg":
        path = folder / f"g{orientation}.jpg"
        Image.fromarray(rgb[..., 0]).save(path, quality=90, exif=exif(orientation))
    elif kind == "rgba-png":
        path = folder / f"a{orientation}.png"
        alpha = (np.arange(W)[None, :].repeat(H, 0) * 255 // W).astype(np.uint8)
        Image.fromarray(np.dstack([rgb, alpha])).save(path, exif=exif(orientation))
    elif kind == "palette-png":
        path = folder / f"q{orientation}.png"
        Image.fromarray(rgb).quantize(40).save(path, transparency=3, exif=exif(orientation))
    elif kind == "16bit-png":
        path = folder / f"s{orientation}.png"
        Image.fromarray((rgb[..., 1].astype(np.uint16) * 257 + 3)).save(path, exif=exif(orientation))
    else:
        raise ValueError(kind)
    return path


KINDS = ("jpeg", "cmyk-jpeg", "grey-jpeg", "rgba-png", "palette-png", "16bit-png")
# Inside, partly outside, upsampled (a box smaller than the crop), far larger than the photo, whole photo.
BOXES = ((30.0, 20.0, 110.0, 140.0), (-40.5, 60.25, 90.0, 210.0), (70.3, 50.7, 95.1, 81.9),
         (-500.0, -300.0, 900.0, 800.0), None)


# ------------------------------------------------------------------ bit-identical crops
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_crops_from_the_file_are_bit_identical_to_crops_of_the_whole_photo(large, tmp_path, kind, orientation):
    path = make_photo(tmp_path, kind, orientation)
    full = load_image(path)
    photo = load_photo(path)
    assert photo.reduced and photo.full is None
    assert photo.size_hw == full.shape[:2]
    for box in BOXES:
        geom = crop_geometry(box, photo.size_hw)
        rows, cols = sampled_rows_cols(geom)
        pixels = photo.pixels(rows, cols)
        assert pixels.shape == full.shape and pixels.dtype == np.uint8
        np.testing.assert_array_equal(warp_crop_uint8(pixels, geom), warp_crop_uint8(full, geom), err_msg=str(box))
        # Exactly those pixels are the photo's; the rest is never read from the file.
        on_grid = np.zeros(full.shape[:2], bool)
        on_grid[np.ix_(rows, cols)] = True
        np.testing.assert_array_equal(pixels[on_grid], full[on_grid])
        assert not pixels[~on_grid].any()


@pytest.mark.parametrize("orientation", [1, 6, 7])
def test_the_crop_square_serves_later_crops_inside_it_mirrored_too(large, tmp_path, orientation):
    """Full mode's hand crops (the right hand's, and the left hand's of the mirrored photo)
    come from the body crop's square."""
    path = make_photo(tmp_path, "jpeg", orientation)
    full = load_image(path)
    photo = load_photo(path)
    body = crop_geometry((40.0, 30.0, 120.0, 150.0), photo.size_hw)
    pixels = photo.pixels(*square_rows_cols(body, margin=0.25))
    width = photo.size_hw[1]
    for hand_box in ((60.0, 50.0, 80.0, 75.0), (95.0, 100.0, 118.0, 130.0)):
        hand = crop_geometry(hand_box, photo.size_hw, padding=0.9)
        np.testing.assert_array_equal(warp_crop_uint8(pixels, hand), warp_crop_uint8(full, hand))
        x1, y1, x2, y2 = hand_box
        mirrored = crop_geometry((width - x2, y1, width - x1, y2), photo.size_hw, padding=0.9)
        np.testing.assert_array_equal(warp_crop_uint8(pixels[:, ::-1], mirrored),
                                      warp_crop_uint8(np.ascontiguousarray(full[:, ::-1]), mirrored))


# ------------------------------------------------------------------ the display copy
@pytest.mark.parametrize("kind", ["jpeg", "rgba-png", "palette-png", "16bit-png"])
@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_a_large_photo_is_displayed_reduced_and_upright(large, tmp_path, kind, orientation):
    path = make_photo(tmp_path, kind, orientation)
    full = load_image(path)
    photo = load_photo(path)
    h, w = photo.display.shape[:2]
    sy, sx = photo.display_scale
    assert photo.display.dtype == np.uint8 and photo.display.shape[2] == 3
    assert w * h <= image_io.DISPLAY_MAX_PIXELS and 0.1 < sx < 0.3 and abs(sx - sy) < 0.02
    # The same picture, the same way up: the mean colour of each of 4 x 4 regions matches (the
    # regions are large, so how the decoder's reduction blocks align with them does not matter).
    def regions(picture: np.ndarray) -> np.ndarray:
        rows = np.array_split(np.arange(picture.shape[0]), 4)
        cols = np.array_split(np.arange(picture.shape[1]), 4)
        return np.array([[picture[np.ix_(r, c)].reshape(-1, 3).mean(0) for c in cols] for r in rows])

    assert np.abs(regions(photo.display.astype(float)) - regions(full.astype(float))).max() < 8


def test_a_normal_photo_loads_whole_as_before(tmp_path):
    path = make_photo(tmp_path, "jpeg", 6)
    photo = load_photo(path)
    assert not photo.reduced and photo.display is photo.full and photo.display_scale == (1.0, 1.0)
    np.testing.assert_array_equal(photo.full, load_image(path))
    assert photo.pixels(np.arange(3), np.arange(3)) is photo.full


def test_a_truncated_large_jpeg_is_refused_when_opened(large, tmp_path):
    path = make_photo(tmp_path, "jpeg", 1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="truncated"):
        load_photo(path)


# ------------------------------------------------------------------ the whole run
def test_infer_on_a_large_photo_gives_the_same_result_and_a_reduced_overlay(large, tiny_model_dir, tmp_path,
                                                                             monkeypatch):
    from test_cli import run_cli

    path = tmp_path / "big.png"
    Image.fromarray(texture(640, 480, seed=3)).save(path)
    box = ("40", "60", "200", "420")
    runs = {}
    for name, limit in (("normal", 10**12), ("large", 1_000)):
        monkeypatch.setattr(image_io, "LARGE_PHOTO_PIXELS", limit)
        out = tmp_path / name
        out.mkdir()
        rc, stdout, err = run_cli("infer", path, "--bbox", *box, "--model", tiny_model_dir, "--device", "cpu",
                                  "--mode", "full", "--json", out / "j.json", "--overlay", out / "o.png",
                                  "--out", out / "m.obj")
        assert rc == 0, err
        data = json.loads((out / "j.json").read_text())
        data.pop("timings_ms")
        runs[name] = (data, (out / "m.obj").read_text(), Image.open(out / "o.png").size, stdout)
    assert runs["large"][0] == runs["normal"][0]  # every number, bit for bit
    assert runs["large"][1] == runs["normal"][1]
    assert runs["normal"][2] == (640, 480)
    assert runs["large"][2] == (80, 60)  # 1/8: at most DISPLAY_MAX_PIXELS (4,000)
    assert "photo reduced" in runs["large"][3]


# ------------------------------------------------------------------ memory
PEAK_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from sam3dbody_gui.pipeline import image_io
    from sam3dbody_gui.pipeline.preprocess import crop_geometry, sampled_rows_cols, warp_crop_uint8
    def peak():
        # VmHWM, not getrusage's ru_maxrss: that one starts at the forking parent's (pytest's) peak.
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    path, how = sys.argv[1], sys.argv[2]
    before = peak()
    if how == "whole":
        image = image_io.load_image(path)
        hw = image.shape[:2]
    else:
        image_io.LARGE_PHOTO_PIXELS = 1_000_000
        photo = image_io.load_photo(path)
        hw = photo.size_hw
    geom = crop_geometry(None, hw)
    image = image if how == "whole" else photo.pixels(*sampled_rows_cols(geom))
    crop = warp_crop_uint8(image, geom)
    print(peak() - before, hw[0] * hw[1], int(crop.mean()))
""")


def make_big_jpeg(path: Path, width: int, height: int) -> None:
    """A photo-like JPEG built strip by strip (the maker never holds it as one array)."""
    picture = Image.new("RGB", (width, height))
    rng = np.random.default_rng(0)
    for top in range(0, height, 1024):
        rows = min(1024, height - top)
        y, x = np.mgrid[top:top + rows, 0:width]
        strip = np.stack([x * 255 // width, y * 255 // height, (x // 5 + y // 3) % 256], -1)
        strip = np.clip(strip + rng.integers(-20, 21, strip.shape), 0, 255).astype(np.uint8)
        picture.paste(Image.fromarray(strip), (0, top))
    picture.save(path, quality=85)


def peak_growth(path: Path, how: str) -> tuple[int, int]:
    r = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path), how], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    growth, pixels, _ = (int(v) for v in r.stdout.split())
    return growth, pixels


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS as Linux reports it")
def test_a_large_jpeg_needs_a_fraction_of_the_memory(tmp_path):
    path = tmp_path / "big.jpg"
    make_big_jpeg(path, 7200, 5400)  # 38.9 MP
    whole, pixels = peak_growth(path, "whole")
    reduced, _ = peak_growth(path, "reduced")
    # Whole: Pillow's 4-byte buffer, its bytes and our array (~10 bytes a pixel), the array kept.
    # Reduced: the one full-resolution decode (Pillow's 4 bytes a pixel, freed after) that the
    # crop's pixels come from, plus the display copy (a quarter of the pixels here).
    assert reduced < 6.5 * pixels, f"{reduced / pixels:.1f} bytes a pixel"
    assert reduced < 0.7 * whole, f"{reduced / pixels:.1f} against {whole / pixels:.1f} bytes a pixel"


# ------------------------------------------------------------------ the 144 MP measurement
def measure_infer(megapixels: float) -> None:
    """Peak RSS of `sam3dbody-gui infer` (tiny model, CPU, mesh + overlay + JSON) on a JPEG."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "big.jpg"
        make_big_jpeg(path, width, height)
        subprocess.run([sys.executable, "-m", "sam3dbody_gui.cli", "make-synthetic", str(tmp / "tiny"),
                        "--exports", "none"], check=True, capture_output=True, cwd=REPO)
        for mode, overlay in (("body", False), ("body", True), ("full", True)):
            start = time.perf_counter()
            command = [sys.executable, "-m", "sam3dbody_gui.cli", "infer", str(path), "--model", str(tmp / "tiny"),
                       "--device", "cpu", "--mode", mode, "--out", str(tmp / "m.obj"), "--json", str(tmp / "j.json")]
            command += ["--overlay", str(tmp / "o.jpg")] if overlay else []
            # A fresh, small launcher per run: RUSAGE_CHILDREN is then that one run's peak (a child's
            # ru_maxrss also starts at its forking parent's, which holds the big picture made above).
            r = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, cwd=REPO)
            rc, peak = r.stdout.split()[-2:]
            print(f"{width}x{height} ({width * height / 1e6:.1f} MP, {path.stat().st_size / 1e6:.0f} MB JPEG), "
                  f"{mode} mode{', overlay' if overlay else ''}: rc {rc}, peak RSS {int(peak) / 1024:.0f} MiB, "
                  f"{time.perf_counter() - start:.1f} s")
            if rc != "0":
                print(r.stdout, r.stderr)


LAUNCHER = textwrap.dedent("""
    import resource, subprocess, sys
    r = subprocess.run(sys.argv[1:])
    print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


if __name__ == "__main__":
    measure_infer(float(sys.argv[1]) if len(sys.argv) > 1 else 144.0)
