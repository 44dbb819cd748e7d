"""Person box -> model input crop, reproducing upstream SAM 3D Body's preprocessing.

Upstream composes GetBBoxCenterScale(padding) -> TopdownAffine(512, use_udp=False) ->
ToTensor. In words:
  1. centre = box centre; size = (box width, box height) * padding
     (1.25 for the body, 0.9 for the hand crops);
  2. the size is widened to the person prior w/h = 0.75, then to the crop's own shape
     (square), so the crop is a square of side max(padding*h, padding*w / 0.75) around
     the box centre;
  3. an affine map (no rotation) sends that square onto the 512x512 crop, sampled with
     cv2.warpAffine(INTER_LINEAR), black outside the photo, then divided by 255.

We keep upstream's numbers bit for bit, because the model was trained on exactly these
pixels and downstream camera maths (crop -> full image) reuses the same matrix:
  * the matrix is built like upstream's get_warp_matrix: three anchor points rounded to
    float32, then solved in float64 (see `crop_affine`);
  * the warp reproduces OpenCV 4.x's fixed-point bilinear sampling (see
    `_source_positions_in_subpixels`) without depending on OpenCV. Against cv2 4.10 and
    4.14 the crop is identical (max difference 0/255 on all parity fixtures). OpenCV 5
    samples at float precision instead of on a 1/32-pixel grid; against it (and against
    any plain float bilinear warp, e.g. grid_sample) crops differ by up to 6/255, mean
    0.05-0.18/255, on the fixtures' high-contrast texture.

The box itself is not clipped to the photo (upstream does not either): a box partly
outside the image gives a crop with black where the photo ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from sam3dbody_gui.errors import UserError

from .box import checked_image_size as _checked_image_size
from .box import validate_box  # noqa: F401  (part of this module's API)

BODY_CROP_SIZE = 512
BODY_PADDING = 1.25
HAND_PADDING = 0.9
PERSON_ASPECT_RATIO = 0.75  # width / height prior applied before squaring the crop

# OpenCV's warpAffine (4.x) fixed point: source positions are computed in 1/1024 pixel,
# then snapped to 1/32 pixel; the bilinear weights are then exact multiples of 1/1024.
_POSITION_ONE = 1024
_SUBPIXEL_BITS = 5  # 1/32 pixel
_SUBPIXEL_ONE = 1 << _SUBPIXEL_BITS
_SNAP_SHIFT = 10 - _SUBPIXEL_BITS  # from 1/1024 to 1/32 pixel
_SNAP_ROUNDING = (_POSITION_ONE // _SUBPIXEL_ONE) // 2


@dataclass
class CropGeometry:
    """Where the model's square crop sits in the photo.

    bbox_xyxy: the person box as validated (float64, (4,)), possibly partly outside.
    center:    box centre (x, y) in image pixels, upstream's `bbox_center`.
    scale:     crop side (w, h) in image pixels after padding and aspect fixes, upstream's
               `bbox_scale` after TopdownAffine (square, so w == h).
    affine:    (2, 3) float64 map image pixel -> crop pixel, upstream's `affine_trans`.
    crop_size: crop side in pixels (512).
    image_hw:  (height, width) of the photo.
    """

    bbox_xyxy: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    affine: np.ndarray
    crop_size: int
    image_hw: Tuple[int, int]

    @property
    def inverse_affine(self) -> np.ndarray:
        """(2, 3) map crop pixel -> image pixel, computed as OpenCV does."""
        return _invert_affine(self.affine)


def crop_geometry(box_xyxy: Optional[Sequence[float]], image_hw: Tuple[int, int],
                  crop_size: int = BODY_CROP_SIZE, padding: float = BODY_PADDING,
                  aspect_ratio: float = PERSON_ASPECT_RATIO) -> CropGeometry:
    """Upstream's crop for a person box: GetBBoxCenterScale(padding) + TopdownAffine."""
    if not (padding > 0 and math.isfinite(padding)):
        raise ValueError(f"padding must be a positive number, got {padding}")
    if not (aspect_ratio > 0 and math.isfinite(aspect_ratio)):
        raise ValueError(f"aspect_ratio must be a positive number, got {aspect_ratio}")
    crop_size = int(crop_size)
    if crop_size <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")

    image_hw = _checked_image_size(image_hw)
    box = validate_box(box_xyxy, image_hw)
    x1, y1, x2, y2 = box
    # Same operation order as upstream's bbox_xyxy2cs, so the float64 results are identical.
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    scale = np.array([x2 - x1, y2 - y1]) * padding
    # Two widenings, as TopdownAffine does: to the person prior, then to the crop's own
    # shape, which is square (width / height = 1).
    scale = _widen_to_aspect(_widen_to_aspect(scale, aspect_ratio), 1.0)
    return CropGeometry(bbox_xyxy=box, center=center, scale=scale,
                        affine=crop_affine(center, scale, crop_size),
                        crop_size=crop_size, image_hw=image_hw)


def warp_crop_uint8(image: np.ndarray, geom: CropGeometry) -> np.ndarray:
    """Sample the (S, S, C) uint8 crop exactly like cv2.warpAffine(INTER_LINEAR, black border).

    Only the S*S output pixels are computed, reading four source pixels each, so the
    cost does not depend on the photo's resolution and the photo is never converted to
    float.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    if tuple(image.shape[:2]) != tuple(geom.image_hw):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the crop geometry "
                         f"was made for {geom.image_hw[1]}x{geom.image_hw[0]}")

    x_sub, y_sub = _source_positions_in_subpixels(geom.inverse_affine, geom.crop_size)
    # Any strides: a mirrored view (full mode's left hand) is read in place, not copied whole.
    return _bilinear_black_border(image, x_sub, y_sub)


def warp_crop(image: np.ndarray, geom: CropGeometry) -> torch.Tensor:
    """The crop as upstream feeds it to the model: (C, S, S) float32 in [0, 1]."""
    crop = warp_crop_uint8(image, geom)
    # Same arithmetic as torchvision's ToTensor: float32 division by 255.
    return torch.from_numpy(crop).permute(2, 0, 1).contiguous().float().div(255.0)


def normalize_crop(crop: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(C, S, S) crop in [0, 1] -> (1, C, S, S) normalised as (x - mean) / std per channel."""
    mean_t = torch.as_tensor(mean, dtype=crop.dtype, device=crop.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=crop.dtype, device=crop.device).reshape(-1, 1, 1)
    if mean_t.shape[0] != crop.shape[0] or std_t.shape[0] != crop.shape[0]:
        raise ValueError(f"mean/std need {crop.shape[0]} values, one per channel")
    if not bool(torch.all(std_t > 0)):
        raise ValueError(f"std must be positive, got {list(std)}")
    return ((crop - mean_t) / std_t).unsqueeze(0)


def default_intrinsics(image_hw: Tuple[int, int]) -> np.ndarray:
    """Upstream's camera when none is given: focal = image diagonal, centre principal point."""
    height, width = _checked_image_size(image_hw)
    focal = math.sqrt(height * height + width * width)
    return intrinsics_from(focal, focal, width / 2.0, height / 2.0)


def intrinsics_from(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """3x3 pinhole intrinsics from focal lengths and principal point, in pixels.

    The principal point may lie outside the photo (e.g. for a cropped picture), so only
    finiteness is required of it; focal lengths must be positive.
    """
    values = {"fx": fx, "fy": fy, "cx": cx, "cy": cy}
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"camera intrinsic {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise UserError(f"camera intrinsic {name} must be a finite number, got {value!r}")
        values[name] = number
    for name in ("fx", "fy"):
        if values[name] <= 0:
            raise UserError(f"camera focal length {name} must be positive (in pixels), "
                            f"got {values[name]:g}")
    return np.array([[values["fx"], 0.0, values["cx"]],
                     [0.0, values["fy"], values["cy"]],
                     [0.0, 0.0, 1.0]])


def _widen_to_aspect(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the short side so width / height == aspect_ratio (upstream's fix_aspect_ratio)."""
    width, height = scale
    if width > height * aspect_ratio:
        return np.array([width, width / aspect_ratio])
    return np.array([height * aspect_ratio, height])


def crop_affine(center: np.ndarray, scale: np.ndarray, crop_size: int) -> np.ndarray:
    """Image -> crop affine, built the way upstream's get_warp_matrix builds it.

    Upstream pairs three points: the box centre, the middle of the box's top edge and the
    top-left corner (the centre-to-top vector turned 90 degrees), with the crop's centre,
    top-middle and (0, 0). It stores the points as float32 and solves in float64
    (cv2.getAffineTransform). We round the same way: the exact formula
    (s = crop/side, t = crop/2 - s*centre) differs from upstream's matrix by up to 4e-4
    in the translation on the parity fixtures, far above float64 noise, and could move a
    crop pixel across a 1/32-pixel sampling step.
    Only the width scale[0] sets the size, as upstream; the crop is square here anyway.
    """
    half_side = scale[0] * -0.5
    centre = center.astype(np.float32)
    top_middle = (center + np.array([0.0, half_side])).astype(np.float32)
    top_left = _turn_quarter(centre, top_middle)

    crop_half = crop_size * 0.5
    crop_centre = np.array([crop_half, crop_half], dtype=np.float32)
    crop_top_middle = np.array([crop_half, 0.0], dtype=np.float32)
    crop_top_left = _turn_quarter(crop_centre, crop_top_middle)

    source = np.stack([centre, top_middle, top_left]).astype(np.float64)
    target = np.stack([crop_centre, crop_top_middle, crop_top_left]).astype(np.float64)
    homogeneous = np.hstack([source, np.ones((3, 1))])
    return np.linalg.solve(homogeneous, target).T


def _turn_quarter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b + (a - b) turned 90 degrees, in float32 arithmetic like upstream's _get_3rd_point."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def _invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine with OpenCV's formula and operation order (warpAffine).

    The order matters: the fixed-point positions below are rounded, and the same inverse
    makes them round identically.
    """
    m = affine.astype(np.float64).reshape(-1)
    det = m[0] * m[4] - m[1] * m[3]
    inv_det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * inv_det, m[0] * inv_det
    a12, a21 = m[1] * -inv_det, m[3] * -inv_det
    b1 = -a11 * m[2] - a12 * m[5]
    b2 = -a21 * m[2] - a22 * m[5]
    return np.array([[a11, a12, b1], [a21, a22, b2]])


def _position_parts(inverse: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The per-column and per-row parts of the source positions, in 1/1024 pixel (int64).

    OpenCV splits x_src = a*col + (b*row + c) into a per-column and a per-row part, rounds
    each to 1/1024 pixel (round half to even), adds them, then drops to 1/32 pixel with a
    half-step offset. Pixel centres sit on integer coordinates in both images.
    """
    steps = np.arange(size, dtype=np.float64)

    def fixed(values: np.ndarray) -> np.ndarray:
        return np.rint(values * _POSITION_ONE).astype(np.int64)

    x_by_col = fixed(inverse[0, 0] * steps)
    y_by_col = fixed(inverse[1, 0] * steps)
    x_by_row = fixed(inverse[0, 1] * steps + inverse[0, 2]) + _SNAP_ROUNDING
    y_by_row = fixed(inverse[1, 1] * steps + inverse[1, 2]) + _SNAP_ROUNDING
    return x_by_col, y_by_col, x_by_row, y_by_row


def _source_positions_in_subpixels(inverse: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Source (x, y) of every crop pixel, in 1/32 pixel, rounded as OpenCV 4.x does."""
    x_by_col, y_by_col, x_by_row, y_by_row = _position_parts(inverse, size)
    x_sub = (x_by_row[:, None] + x_by_col[None, :]) >> _SNAP_SHIFT
    y_sub = (y_by_row[:, None] + y_by_col[None, :]) >> _SNAP_SHIFT
    return x_sub, y_sub


def _bilinear_black_border(image: np.ndarray, x_sub: np.ndarray, y_sub: np.ndarray) -> np.ndarray:
    """Bilinear sample at 1/32-pixel positions; neighbours outside the image count as 0.

    Weights are integers summing to 32*32 = 1024, so the blend is exact in integers and
    rounds to nearest like OpenCV's 15-bit fixed point (whose weights are these times 32).
    `image` may have any strides; only the sampled pixels are read.
    """
    height, width, channels = image.shape
    x0, y0 = x_sub >> _SUBPIXEL_BITS, y_sub >> _SUBPIXEL_BITS
    fx = (x_sub & (_SUBPIXEL_ONE - 1)).astype(np.int32)
    fy = (y_sub & (_SUBPIXEL_ONE - 1)).astype(np.int32)

    total = np.zeros(x_sub.shape + (channels,), dtype=np.int32)
    for dy, weight_y in ((0, _SUBPIXEL_ONE - fy), (1, fy)):
        rows = y0 + dy
        row_inside = (rows >= 0) & (rows < height)
        row_clipped = np.clip(rows, 0, height - 1)
        for dx, weight_x in ((0, _SUBPIXEL_ONE - fx), (1, fx)):
            cols = x0 + dx
            inside = row_inside & (cols >= 0) & (cols < width)
            weight = weight_x * weight_y * inside
            neighbour = image[row_clipped, np.clip(cols, 0, width - 1)]
            total += weight[:, :, None] * neighbour
    full_weight = _SUBPIXEL_ONE * _SUBPIXEL_ONE
    return ((total + full_weight // 2) // full_weight).astype(np.uint8)


def sampled_rows_cols(geom: CropGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """The photo rows and columns (sorted, inside the photo) that `warp_crop_uint8` reads for `geom`.

    Every pixel the warp reads, with any weight, lies at one of these rows and one of these
    columns; so an array that holds the photo's values on rows x columns, whatever it holds
    elsewhere, gives a bit-identical crop. For a large photo that is at most ~2 x crop-size rows
    and columns, read from the file instead of the whole picture (see image_io.Photo)."""
    x_sub, y_sub = _source_positions_in_subpixels(geom.inverse_affine, geom.crop_size)
    height, width = geom.image_hw

    def lines(sub: np.ndarray, size: int) -> np.ndarray:
        first = np.unique(sub >> _SUBPIXEL_BITS)
        both = np.union1d(first, first + 1)  # the bilinear neighbour
        return both[(both >= 0) & (both < size)]

    return lines(y_sub, height), lines(x_sub, width)


def square_rows_cols(geom: CropGeometry, margin: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Every photo row and column of the crop's square, grown by `margin` x its side on each side
    (and clipped to the photo): the pixels later crops inside this one read (full mode's hand
    crops, which the body pass decides)."""
    height, width = geom.image_hw
    half = geom.scale / 2.0 * (1.0 + 2.0 * margin)
    x1, x2 = math.floor(geom.center[0] - half[0]) - 1, math.ceil(geom.center[0] + half[0]) + 2
    y1, y2 = math.floor(geom.center[1] - half[1]) - 1, math.ceil(geom.center[1] + half[1]) + 2
    return (np.arange(max(y1, 0), min(y2, height), dtype=np.int64),
            np.arange(max(x1, 0), min(x2, width), dtype=np.int64))


def warp_crop_tensor(image: torch.Tensor, geom: CropGeometry) -> torch.Tensor:
    """`warp_crop` on an (H, W, C) uint8 tensor already on the compute device.

    The same integer arithmetic as `warp_crop_uint8`, in torch: on a GPU the crop costs a few
    kernels instead of ~40 ms of numpy, and a photo uploaded once serves every box the user
    tries. Bit-identical to the numpy path (tested).
    """
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise ValueError(f"expected an (H, W, C) uint8 tensor, got {tuple(image.shape)} {image.dtype}")
    parts = torch.from_numpy(position_parts_batch([geom], [False])).to(image.device)
    return warp_integer_positions_batch(image, parts)[0].permute(2, 0, 1).float().div(255.0).contiguous()


def position_parts(geom: CropGeometry) -> np.ndarray:
    """(4, S) int64: the per-column x, y and per-row x, y parts of the source positions, one
    array so they reach the device in one copy (only these travel; the S×S grids form there)."""
    return np.stack(_position_parts(geom.inverse_affine, geom.crop_size))


def position_parts_batch(geoms: Sequence[CropGeometry], mirrored: Sequence[bool]) -> np.ndarray:
    """(N, 5, S) int64 for N crops of one size: each crop's `position_parts`, then a row holding
    1 where that crop reads the photo mirrored left-right (full mode's left hands), else 0. One
    array, so a whole photo's crops reach the device in one copy."""
    if len(geoms) != len(mirrored) or not geoms:
        raise ValueError(f"need one mirrored flag per crop, got {len(mirrored)} for {len(geoms)} crops")
    sizes = {g.crop_size for g in geoms}
    if len(sizes) != 1:
        raise ValueError(f"crops of one batch must have one size, got {sorted(sizes)}")
    size = sizes.pop()
    out = np.empty((len(geoms), 5, size), dtype=np.int64)
    for i, (geom, flip) in enumerate(zip(geoms, mirrored)):
        out[i, :4] = position_parts(geom)
        out[i, 4] = 1 if flip else 0
    return out


def warp_integer_positions_batch(image: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """The crops (N, S, S, C) as int32 in 0..255 of one (H, W, C) uint8 photo at once, from
    `position_parts_batch` (N, 5, S): `warp_crop_uint8`'s integer arithmetic in torch (bit-identical,
    tested). A mirrored crop reads column W-1-x where the
    warp of the flipped photo reads column x: the same pixels, so the same integers as cropping
    a flipped copy (and no flipped copy of the photo is made). Pure tensor code: one kernel
    once torch.compile fuses it."""
    height, width, channels = image.shape
    x_by_col, y_by_col, x_by_row, y_by_row, flip = parts.unbind(1)
    x_sub = (x_by_row[:, :, None] + x_by_col[:, None, :]) >> _SNAP_SHIFT
    y_sub = (y_by_row[:, :, None] + y_by_col[:, None, :]) >> _SNAP_SHIFT
    x0, y0 = x_sub >> _SUBPIXEL_BITS, y_sub >> _SUBPIXEL_BITS
    fx, fy = x_sub & (_SUBPIXEL_ONE - 1), y_sub & (_SUBPIXEL_ONE - 1)
    mirror = flip[:, :1, None] != 0  # (N, 1, 1)
    pixels = image.reshape(-1, channels)
    total = None
    for dy, weight_y in ((0, _SUBPIXEL_ONE - fy), (1, fy)):
        rows = y0 + dy
        row_inside = (rows >= 0) & (rows < height)
        row_start = rows.clamp(0, height - 1) * width
        for dx, weight_x in ((0, _SUBPIXEL_ONE - fx), (1, fx)):
            cols = x0 + dx
            inside = row_inside & (cols >= 0) & (cols < width)  # symmetric: the same for the flipped photo
            weight = (weight_x * weight_y * inside).to(torch.int32)
            col = cols.clamp(0, width - 1)
            col = torch.where(mirror, width - 1 - col, col)
            term = weight[..., None] * pixels[row_start + col].to(torch.int32)
            total = term if total is None else total + term
    full_weight = _SUBPIXEL_ONE * _SUBPIXEL_ONE
    return torch.div(total + full_weight // 2, full_weight, rounding_mode="floor")
