"""Read a photo into the one layout the pipeline uses: an (H, W, 3) uint8 RGB array.

Whatever the file holds (grey, palette, CMYK, 16-bit, float, transparency, several frames,
an EXIF rotation) comes out as the picture a viewer would show, so the person box the user
draws on screen matches the pixels the model sees. Anything unreadable becomes one
`ImageError` line; no decoder traceback reaches the user.

Choices, and why:
  * EXIF orientation is applied, like cv2.imread (which upstream uses) does by default.
  * Transparency is composited onto white (`TRANSPARENT_BACKGROUND`). Dropping the alpha
    channel instead, as cv2.imread does, exposes whatever colour the editor left under
    transparent pixels (often black, sometimes garbage); white is what image viewers show
    and what cut-out product and studio shots look like.
  * 16-bit and 32-bit integer data are scaled from 0..65535 to 0..255 (rounded, not clipped
    or truncated). 16-bit-per-channel colour PNGs are the exception: Pillow itself reduces
    them to 8-bit RGB by keeping the high byte (at most one level below rounding). Float data in 0..1 is scaled by 255; float data in 0..255 is kept;
    other integer or float ranges (scientific data with no defined white level) are
    stretched from their minimum to maximum.
  * Colour profiles (ICC) are not applied: upstream's cv2.imread ignores them too, and the
    model was trained on such pixels.
  * Pillow's refusal of truncated files (ImageFile.LOAD_TRUNCATED_IMAGES = False) is kept:
    a half-decoded photo would silently give a grey bottom half.
  * Pillow's decompression-bomb guard is kept. Its warning (above ~89 MP) is silenced, as
    108 MP phone photos are real; its error (above ~179 MP) becomes an ImageError.

Large photos (`load_photo`, above LARGE_PHOTO_PIXELS): holding a 144 MP photo as one array
costs 3 GB by the time Pillow's buffer, its conversions and our copy coexist. A viewer needs
far fewer pixels and the model's 512x512 crop reads at most ~1024 rows and columns of it. So
a large photo is decoded reduced for display (a JPEG straight to 1/2, 1/4 or 1/8 size in
Pillow's draft mode, without the full-size buffer), and the pixels a crop reads are taken
from the full-resolution file, strip by strip, into `Photo.pixels`'s array (bit-identical
to the same pixels of `load_image`, tested).
"""

from __future__ import annotations

import mmap
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from sam3dbody_gui.errors import ImageError, first_line

TRANSPARENT_BACKGROUND = (255, 255, 255)

# Pillow modes with an alpha channel. Other modes ('P', 'L', 'RGB') carry transparency
# only as a "transparency" entry (PNG tRNS, GIF transparent index), checked separately.
_MODES_WITH_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
# Pillow modes holding one channel of numbers wider than 8 bits.
_WIDE_GREY_MODES = {"I", "F"}

# Photos with more pixels than this are loaded reduced (see the module notes). 48-50 MP phone
# photos stay below: they load whole, as before, in about 1 GB.
LARGE_PHOTO_PIXELS = 50_000_000
# A large photo's display copy is reduced by 2, 4 or 8 (the JPEG decoder's own scales) to at
# most this many pixels: 144 MP -> 9 MP, still more than a 4K screen shows.
DISPLAY_MAX_PIXELS = 16_000_000
_REDUCTIONS = (2, 4, 8)
_STRIP_ROWS = 256  # rows of the full-resolution photo converted at a time
# EXIF orientations (Pillow's exif_transpose): which ones swap rows and columns, and which
# reverse the stored rows / columns, for upright pixel (r, c) -> stored pixel.
_TRANSPOSED = {5, 6, 7, 8}
_ROWS_REVERSED = {3, 4, 6, 7}
_COLS_REVERSED = {2, 3, 7, 8}


def load_image(path: Union[str, Path],
               background: Sequence[int] = TRANSPARENT_BACKGROUND) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, upright as its EXIF says.

    Raises ImageError (one line, naming the file) when the file is missing, is not an
    image, is truncated or corrupt, is empty, or is too large to decode safely.
    """
    path = _checked_path(path)
    with _decoding(path) as opened:
        # load() decodes every byte now, so a truncated or corrupt file fails
        # here rather than later with a half-grey picture.
        opened.load()
        picture = _upright(opened)
        return _to_rgb_array(picture, background)


@dataclass(frozen=True, eq=False)
class Photo:
    """A photo as a viewer and the pipeline need it.

    size_hw: (height, width) upright, at full resolution: the pixel frame of boxes, camera
             intrinsics and results.
    display: (h, w, 3) uint8 RGB, the whole photo; for a large photo reduced (`reduced`), by
             `display_scale` (display pixels per photo pixel, per axis (y, x)).
    full:    the full-resolution (H, W, 3) array (`load_image`'s), or None for a large photo.
    """

    path: Path
    size_hw: Tuple[int, int]
    display: np.ndarray
    full: Optional[np.ndarray]
    background: Tuple[int, ...] = TRANSPARENT_BACKGROUND

    @property
    def reduced(self) -> bool:
        return self.full is None

    @property
    def display_scale(self) -> Tuple[float, float]:
        return self.display.shape[0] / self.size_hw[0], self.display.shape[1] / self.size_hw[1]

    def pixels(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """An (H, W, 3) uint8 array at full resolution that holds the photo's own values at every
        (row, column) of rows x cols: what the pipeline crops from.

        For a normal photo it is `full`. For a large one only those pixels are read, from the
        file, and the rest stays 0 and costs no memory: the array is allocated zeroed, and
        the operating system backs a page with memory only when it is written. Anything else
        than a crop whose pixels lie on rows x cols must use `display`, not this array."""
        if self.full is not None:
            return self.full
        height, width = self.size_hw
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        cols = np.unique(np.asarray(cols, dtype=np.int64))
        if rows.size and (rows[0] < 0 or rows[-1] >= height) or cols.size and (cols[0] < 0 or cols[-1] >= width):
            raise ValueError(f"rows/columns outside the {width}x{height} photo")
        with _decoding(self.path) as opened:
            return _read_pixels(opened, self.size_hw, rows, cols, self.background)


def load_photo(path: Union[str, Path], background: Sequence[int] = TRANSPARENT_BACKGROUND) -> Photo:
    """Read a photo for display and cropping; large photos reduced (see the module notes).

    Raises ImageError like `load_image`. A large photo's file is decoded whole (reduced), so a
    truncated or corrupt one fails here too."""
    path = _checked_path(path)
    background = tuple(int(v) for v in background)
    with _decoding(path) as opened:
        width, height = opened.size
        if width * height <= LARGE_PHOTO_PIXELS or opened.mode in _WIDE_GREY_MODES:
            # Whole, as load_image (wide grey data is scaled by its global range, which a
            # strip-by-strip read could not reproduce).
            opened.load()
            full = _to_rgb_array(_upright(opened), background)
            return Photo(path, (int(full.shape[0]), int(full.shape[1])), full, full, background)
        factor = next((f for f in _REDUCTIONS if width * height / (f * f) <= DISPLAY_MAX_PIXELS), _REDUCTIONS[-1])
        if opened.format == "JPEG":
            # DCT-domain scaling: decodes straight to the small size (mode unchanged).
            opened.draft(None, (width // factor, height // factor))
        opened.load()
        picture: Image.Image = opened
        left = round(factor * picture.width / width)  # what the decoder did not reduce (all, but for JPEG)
        if left > 1:
            picture = _reduce(picture, left)
        orientation = _orientation(opened)
        display = _to_rgb_array(_upright(picture), background)
        size_hw = (width, height) if orientation in _TRANSPOSED else (height, width)
        return Photo(path, size_hw, display, None, background)


def _checked_path(path: Union[str, Path]) -> Path:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file but got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")
    return path


@contextmanager
def _decoding(path: Path) -> Iterator[Image.Image]:
    """The opened file (first frame of GIF / APNG / multi-page TIFF); every failure to read or
    decode it, inside the block too, becomes one ImageError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.seek(0)
                yield opened
    except ImageError as err:
        raise ImageError(f"{err}: {path}") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"image is too large to open safely (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels): "
            f"{path}") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"not an image, an unsupported format, or a damaged file: {path}") from None
    except MemoryError:
        raise ImageError(f"not enough memory to decode the image: {path}") from None
    except PermissionError:
        raise ImageError(f"no permission to read the image file: {path}") from None
    except Exception as err:  # any decoder failure means a broken file, not a bug of ours
        reason = first_line(err)
        raise ImageError(
            f"cannot decode the image, the file is truncated or corrupt ({reason}): {path}"
        ) from None


def image_from_array(array: np.ndarray,
                     background: Sequence[int] = TRANSPARENT_BACKGROUND) -> np.ndarray:
    """Bring an in-memory image to (H, W, 3) uint8 RGB, by the same rules as load_image.

    Accepts (H, W) or (H, W, C) with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or
    4 (RGBA); dtype bool, uint8, other integers (16-bit range) or float.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"unsupported image array shape {array.shape}; "
                         "expected (H, W), or (H, W, C) with C = 1, 2, 3 or 4")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image has zero size ({array.shape[1]}x{array.shape[0]} pixels)")

    values = _to_uint8(array)
    channels = values.shape[2]
    if channels in (2, 4):
        values = _composite(values[:, :, :-1], values[:, :, -1], background)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    # Always a fresh, writable array: never a view of the caller's data or of Pillow's
    # read-only buffer.
    return np.array(values, dtype=np.uint8, order="C", copy=True)


def _reduce(picture: Image.Image, factor: int) -> Image.Image:
    if picture.mode.startswith("I;16"):  # not averaged by Pillow; 32-bit keeps the values
        return picture.convert("I").reduce(factor)
    try:
        return picture.reduce(factor)
    except ValueError:  # a mode Pillow cannot average (1-bit, palette): to colour first
        has_alpha = picture.mode in _MODES_WITH_ALPHA or "transparency" in picture.info
        return picture.convert("RGBA" if has_alpha else "RGB").reduce(factor)


def _orientation(picture: Image.Image) -> int:
    """The EXIF orientation exif_transpose applies (1 where `_upright` would not turn it)."""
    try:
        value = picture.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a malformed EXIF block: shown as stored, as `_upright` does
        return 1
    return value if value in range(1, 9) else 1


def _read_pixels(opened: Image.Image, size_hw: Tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                 background: Sequence[int]) -> np.ndarray:
    """`Photo.pixels` of an opened large photo: the upright pixels rows x cols (sorted, unique,
    inside) in a zeroed full-size array, converted exactly as load_image converts them (per pixel)."""
    height, width = size_hw
    canvas = _zeroed_array((height, width, 3))
    if not rows.size or not cols.size:
        return canvas
    opened.load()  # the full-resolution decode (Pillow's buffer: 4 bytes per pixel, freed after)
    orientation = _orientation(opened)
    transposed = orientation in _TRANSPOSED
    stored_w, stored_h = opened.size
    if (stored_w, stored_h) != ((height, width) if transposed else (width, height)):
        raise ImageError("the image file changed since it was opened")
    # Upright (r, c) is stored (row_of[...], col_of[...]): rows and columns swap for a transpose.
    row_source, col_source = (cols, rows) if transposed else (rows, cols)
    stored_rows = stored_h - 1 - row_source if orientation in _ROWS_REVERSED else row_source
    stored_cols = stored_w - 1 - col_source if orientation in _COLS_REVERSED else col_source
    left, right = int(stored_cols.min()), int(stored_cols.max()) + 1
    strip_of = stored_rows // _STRIP_ROWS
    for strip in np.unique(strip_of):
        chosen = np.nonzero(strip_of == strip)[0]
        top = int(strip) * _STRIP_ROWS
        bottom = min(top + _STRIP_ROWS, stored_h)
        rgb = _to_rgb_array(opened.crop((left, top, right, bottom)), background)
        block = rgb[stored_rows[chosen] - top][:, stored_cols - left]  # (chosen, all columns, 3)
        if transposed:
            canvas[np.ix_(rows, cols[chosen])] = block.transpose(1, 0, 2)
        else:
            canvas[np.ix_(rows[chosen], cols)] = block
    return canvas


def _zeroed_array(shape: Tuple[int, ...]) -> np.ndarray:
    """A zeroed uint8 array whose pages get memory only when written (anonymous mmap memory
    is zero-filled on first touch). Transparent huge pages are turned off for it: with them
    (Linux's `always` setting), writing a few rows spread over the photo would back every
    2 MiB they touch, i.e. all of it."""
    size = int(np.prod(shape))
    if size == 0:
        return np.zeros(shape, dtype=np.uint8)
    buffer = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        try:
            buffer.madvise(mmap.MADV_NOHUGEPAGE)
        except OSError:  # a kernel without transparent huge pages
            pass
    return np.frombuffer(buffer, dtype=np.uint8).reshape(shape)  # writable; keeps `buffer` alive


def _upright(picture: Image.Image) -> Image.Image:
    if _orientation(picture) == 1:
        return picture  # exif_transpose would return a copy (a 4-byte-a-pixel one)
    try:
        return ImageOps.exif_transpose(picture)
    except Exception:
        # A malformed EXIF block should not make a readable photo unusable: show the
        # pixels as stored, which is what a viewer that cannot parse the tag does too.
        return picture


def _to_rgb_array(picture: Image.Image, background: Sequence[int]) -> np.ndarray:
    if picture.width == 0 or picture.height == 0:
        raise ImageError(f"image has zero size ({picture.width}x{picture.height} pixels)")

    mode = picture.mode
    if mode.startswith("I;16") or mode in _WIDE_GREY_MODES:
        # Converting through Pillow would clip these to 0..255; scale them ourselves.
        return image_from_array(np.asarray(picture), background)

    has_alpha = mode in _MODES_WITH_ALPHA or "transparency" in picture.info
    target = "RGBA" if has_alpha else "RGB"
    if mode == target:  # convert() to the same mode is a copy of the buffer
        return image_from_array(np.asarray(picture), background)
    try:
        converted = picture.convert(target)
    except (ValueError, OSError):
        raise ImageError(f"unsupported colour mode {mode!r}") from None
    return image_from_array(np.asarray(converted), background)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Map any numeric image to uint8, following the range rules in the module notes."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if np.issubdtype(values.dtype, np.integer):
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 65535:
            # Round-to-nearest of v * 255 / 65535: 65535 -> 255, 32768 -> 128, 257 -> 1.
            wide = values.astype(np.uint32)
            return ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return _stretch(values.astype(np.float64))
    if np.issubdtype(values.dtype, np.floating):
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return np.floor(values * 255.0 + 0.5).astype(np.uint8)
        if low >= 0.0 and high <= 255.0:
            return np.floor(values + 0.5).astype(np.uint8)
        return _stretch(values)
    raise ImageError(f"unsupported image data type {values.dtype}")


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros(values.shape, np.uint8)
    return np.floor((values - low) * 255.0 / (high - low) + 0.5).astype(np.uint8)


def _composite(colour: np.ndarray, alpha: np.ndarray,
               background: Sequence[int]) -> np.ndarray:
    """Blend straight (non-premultiplied) alpha over a solid background, rounded."""
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    alpha = alpha.astype(np.uint32)[:, :, None]
    backdrop = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    blended = (colour.astype(np.uint32) * alpha + backdrop * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)
