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
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sam3dbody_gui.errors import ImageError

TRANSPARENT_BACKGROUND = (255, 255, 255)

# Pillow modes with an alpha channel. Other modes ('P', 'L', 'RGB') carry transparency
# only as a "transparency" entry (PNG tRNS, GIF transparent index), checked separately.
_MODES_WITH_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
# Pillow modes holding one channel of numbers wider than 8 bits.
_WIDE_GREY_MODES = {"I", "F"}


def load_image(path: Union[str, Path],
               background: Sequence[int] = TRANSPARENT_BACKGROUND) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, upright as its EXIF says.

    Raises ImageError (one line, naming the file) when the file is missing, is not an
    image, is truncated or corrupt, is empty, or is too large to decode safely.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image file not found: {path}")
    if path.is_dir():
        raise ImageError(f"expected an image file but got a folder: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"image file is empty: {path}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.seek(0)  # first frame of GIF / APNG / multi-page TIFF
                # load() decodes every byte now, so a truncated or corrupt file fails
                # here rather than later with a half-grey picture.
                opened.load()
                picture = _upright(opened)
                return _to_rgb_array(picture, background)
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
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
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


def _upright(picture: Image.Image) -> Image.Image:
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
    try:
        converted = picture.convert("RGBA" if has_alpha else "RGB")
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
