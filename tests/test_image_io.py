"""Every kind of image file comes out as (H, W, 3) uint8 RGB, or as one ImageError line."""

import numpy as np
import pytest
from PIL import Image, ImageFile

from sam3dbody_gui.errors import ImageError
from sam3dbody_gui.pipeline.image_io import TRANSPARENT_BACKGROUND, image_from_array, load_image

WHITE = TRANSPARENT_BACKGROUND


def _assert_rgb(array, height, width):
    assert isinstance(array, np.ndarray)
    assert array.shape == (height, width, 3)
    assert array.dtype == np.uint8
    assert array.flags.c_contiguous and array.flags.writeable


def test_rgb_png_round_trips_exactly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    loaded = load_image(tmp_path / "rgb.png")
    _assert_rgb(loaded, 7, 5)
    np.testing.assert_array_equal(loaded, pixels)


def test_exif_orientation_6_is_applied(tmp_path):
    # Stored 40 wide x 20 high, left half red, right half blue. Orientation 6 means
    # "rotate 90 degrees clockwise to view": 20 wide x 40 high, red on top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)

    loaded = load_image(tmp_path / "rotated.jpg")
    _assert_rgb(loaded, 40, 20)
    top, bottom = loaded[5, 10].astype(int), loaded[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_greyscale_and_one_bit(tmp_path):
    Image.fromarray(np.full((3, 4), 100, np.uint8)).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    _assert_rgb(grey, 3, 4)
    assert (grey == 100).all()

    Image.new("1", (4, 3), 1).save(tmp_path / "bits.png")
    assert (load_image(tmp_path / "bits.png") == 255).all()


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    grey_alpha = np.zeros((1, 3, 2), np.uint8)
    grey_alpha[..., 0] = 100
    grey_alpha[..., 1] = (0, 128, 255)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    _assert_rgb(loaded, 1, 3)
    half = (100 * 128 + 255 * 127 + 127) // 255
    np.testing.assert_array_equal(loaded[0, :, 0], [255, half, 100])


def test_rgba_transparency_is_composited_on_white(tmp_path):
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [200, 0, 0, 128]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    _assert_rgb(loaded, 1, 3)
    np.testing.assert_array_equal(loaded[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(loaded[0, 1], WHITE)  # hidden colour does not leak
    expected = [(c * 128 + w * 127 + 127) // 255 for c, w in zip((200, 0, 0), WHITE)]
    np.testing.assert_array_equal(loaded[0, 2], expected)


def test_palette_with_and_without_transparency(tmp_path):
    palette_image = Image.new("P", (3, 1))
    palette_image.putpalette([0, 255, 0] + [0, 0, 255] + [0, 0, 0] * 254)
    palette_image.putdata([0, 1, 0])
    palette_image.save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(load_image(tmp_path / "opaque.png")[0],
                                  [[0, 255, 0], [0, 0, 255], [0, 255, 0]])

    palette_image.save(tmp_path / "transparent.png", transparency=0)
    np.testing.assert_array_equal(load_image(tmp_path / "transparent.png")[0],
                                  [WHITE, [0, 0, 255], WHITE])


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "cmyk.jpg", quality=95)
    loaded = load_image(tmp_path / "cmyk.jpg")
    _assert_rgb(loaded, 8, 8)
    red = loaded.reshape(-1, 3).mean(axis=0)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    wide = np.array([[0, 257, 32768, 65535]], np.uint16)
    Image.fromarray(wide).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    loaded = load_image(tmp_path / "deep.png")
    _assert_rgb(loaded, 1, 4)
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 1, 128, 255])
    assert (loaded == loaded[:, :, :1]).all()


def test_32_bit_integer_tiff(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.int32)).save(tmp_path / "int.tif")
    assert Image.open(tmp_path / "int.tif").mode == "I"
    np.testing.assert_array_equal(load_image(tmp_path / "int.tif")[0, :, 1], [0, 128, 255])

    # Outside 0..65535 there is no defined white level: stretched min..max.
    Image.fromarray(np.array([[-100, 0, 100]], np.int32)).save(tmp_path / "signed.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "signed.tif")[0, :, 0], [0, 128, 255])


def test_float_tiff(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "unit.tif")
    assert Image.open(tmp_path / "unit.tif").mode == "F"
    np.testing.assert_array_equal(load_image(tmp_path / "unit.tif")[0, :, 2], [0, 128, 255])

    Image.fromarray(np.array([[0.0, 100.0, 200.0]], np.float32)).save(tmp_path / "bytes.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "bytes.tif")[0, :, 0], [0, 100, 200])


def test_multi_frame_gif_gives_first_frame(tmp_path):
    first = Image.new("RGB", (4, 4), (255, 0, 0))
    second = Image.new("RGB", (4, 4), (0, 0, 255))
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second])
    assert Image.open(tmp_path / "anim.gif").n_frames == 2
    loaded = load_image(tmp_path / "anim.gif")
    _assert_rgb(loaded, 4, 4)
    assert (loaded == (255, 0, 0)).all()


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "photo.jpg"
    with pytest.raises(ImageError, match="not found") as info:
        load_image(missing)
    assert str(missing) in str(info.value)


def test_folder_and_empty_file(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")


def test_text_file_named_jpg(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture\n" * 10)
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(fake)
    assert str(fake) in str(info.value)


def test_truncated_jpeg_is_refused(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(tmp_path / "cut.jpg")
    message = str(info.value)
    assert "cut.jpg" in message and "\n" not in message


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2 * 100: Pillow errors
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "big.png")


def test_large_but_sane_image_only_warns_in_pillow_and_loads(tmp_path, monkeypatch):
    Image.new("RGB", (15, 10)).save(tmp_path / "warn.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 150 px: warning zone only
    _assert_rgb(load_image(tmp_path / "warn.png"), 10, 15)


def test_image_from_array_rules():
    source = np.zeros((2, 3, 3), np.uint8)
    assert not np.shares_memory(image_from_array(source), source)
    _assert_rgb(image_from_array(np.zeros((2, 3), np.uint8)), 2, 3)
    _assert_rgb(image_from_array(np.zeros((2, 3, 1), np.uint16)), 2, 3)
    np.testing.assert_array_equal(image_from_array(np.array([[True, False]]))[0, :, 0], [255, 0])
    rgba = np.zeros((1, 1, 4), np.uint8)
    np.testing.assert_array_equal(image_from_array(rgba)[0, 0], WHITE)
    np.testing.assert_array_equal(image_from_array(rgba, background=(0, 0, 0))[0, 0], [0, 0, 0])
    with pytest.raises(ImageError, match="zero size"):
        image_from_array(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        image_from_array(np.zeros((2, 2, 5), np.uint8))
