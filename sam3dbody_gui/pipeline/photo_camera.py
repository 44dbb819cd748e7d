"""The photo's camera: its focal length from EXIF where the photo has one, else upstream's default
(focal = the image diagonal, principal point at the centre).

EXIF gives the focal length two ways: `FocalLengthIn35mmFilm` (the lens as on a 36 × 24 mm frame:
f_px = f35 / 36 mm × the photo's longer side in pixels) or `FocalLength` in mm with the sensor's
`FocalPlaneXResolution` (pixels per `FocalPlaneResolutionUnit`: f_px = f_mm × pixels per mm). Both
are properties of the lens and sensor, so the EXIF orientation (a rotation of the picture) does
not change them; square pixels are assumed, as upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .preprocess import default_intrinsics

FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_UNIT = 0xA210
MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, µm (EXIF 2.3)
FULL_FRAME_WIDTH_MM = 36.0


@dataclass(frozen=True)
class PhotoCamera:
    intrinsics: np.ndarray  # 3 × 3, photo pixels
    source: str  # "exif (35 mm equivalent)", "exif (focal length and sensor)", "default" or "user"

    @property
    def focal_px(self) -> float:
        return float(self.intrinsics[0, 0])


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def exif_focal_px(exif, image_hw: tuple[int, int]) -> tuple[Optional[float], str]:
    """(focal length in pixels, which tags gave it) from a PIL Exif, or (None, "")."""
    sub = exif.get_ifd(0x8769) if hasattr(exif, "get_ifd") else {}  # the Exif IFD holds the lens tags
    tags = {**dict(exif), **dict(sub)}
    f35 = _number(tags.get(FOCAL_LENGTH_35MM))
    if f35 is not None:
        return f35 / FULL_FRAME_WIDTH_MM * max(image_hw), "exif (35 mm equivalent)"
    f_mm = _number(tags.get(FOCAL_LENGTH))
    resolution = _number(tags.get(FOCAL_PLANE_X_RESOLUTION))
    unit = MM_PER_UNIT.get(int(tags.get(FOCAL_PLANE_UNIT, 2) or 2))
    if f_mm is not None and resolution is not None and unit is not None:
        return f_mm * resolution / unit, "exif (focal length and sensor)"
    return None, ""


def photo_camera(path: Optional[Path], image_hw: tuple[int, int], user: Optional[np.ndarray] = None) -> PhotoCamera:
    """The camera to use: the user's intrinsics, else EXIF's focal length (centred), else the default."""
    if user is not None:
        return PhotoCamera(np.asarray(user, dtype=np.float64), "user")
    k = default_intrinsics(image_hw)
    if path is not None:
        try:
            from PIL import Image

            with Image.open(path) as im:  # reads the header only, not the pixels
                focal, source = exif_focal_px(im.getexif(), image_hw)
        except Exception:  # noqa: BLE001 - unreadable EXIF: the default camera, not an error
            focal, source = None, ""
        if focal is not None:
            k = k.copy()
            k[0, 0] = k[1, 1] = focal
            return PhotoCamera(k, source)
    return PhotoCamera(k, "default")
