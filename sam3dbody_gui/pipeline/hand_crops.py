"""Full mode's hand crops: the body pass's hand boxes → crop geometry in the photo, the left hand
on the photo mirrored left-right (the hand decoder only knows right hands)."""

from __future__ import annotations

import numpy as np

from .preprocess import HAND_PADDING, PERSON_ASPECT_RATIO, CropGeometry, crop_affine


def mirror_box_x(box_xyxy: np.ndarray, width: int) -> np.ndarray:
    """A box in the photo → the same region in the photo mirrored left-right (pixel centres at
    integers: x → width - 1 - x)."""
    box = np.asarray(box_xyxy, dtype=np.float32)
    out = box.copy()
    out[..., 0] = width - box[..., 2] - 1
    out[..., 2] = width - box[..., 0] - 1
    return out


def hand_crop_geometry(box_xyxy: np.ndarray, image_hw: tuple[int, int], crop_size: int):
    """Crop geometry of a hand box, in float32 like upstream (its hand boxes are float32 arrays
    and its transform keeps their dtype; the body box path is float64). Not validated: a hand box
    partly or wholly outside the photo just gives black crop pixels."""
    x1, y1, x2, y2 = np.asarray(box_xyxy, dtype=np.float32).reshape(4)
    centre = np.array([x1 + x2, y1 + y2], dtype=np.float32) * np.float32(0.5)
    scale = np.array([x2 - x1, y2 - y1], dtype=np.float32) * np.float32(HAND_PADDING)
    for aspect in (np.float32(PERSON_ASPECT_RATIO), np.float32(1.0)):  # person prior, then square
        w, h = scale
        scale = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h], dtype=np.float32)
    return CropGeometry(
        bbox_xyxy=np.array([x1, y1, x2, y2], dtype=np.float64), center=centre.astype(np.float64),
        scale=scale.astype(np.float64), affine=crop_affine(centre, scale, crop_size),
        crop_size=int(crop_size), image_hw=(int(image_hw[0]), int(image_hw[1])),
    )
