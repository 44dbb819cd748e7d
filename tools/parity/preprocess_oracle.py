#!/usr/bin/env python3
"""Golden preprocessing values from upstream SAM 3D Body's own code, for tests/test_preprocess.py.

For a few person boxes on a synthetic photo (defined below by a formula, so the test can
rebuild it instead of storing it), this runs upstream's transform exactly as
SAM3DBodyEstimator composes it:

    Compose([GetBBoxCenterScale(padding), TopdownAffine(input_size=[512, 512], use_udp=False),
             VisionTransformWrapper(ToTensor())])

through upstream's prepare_batch, and writes bbox_center, bbox_scale, affine_trans, the
512x512 crop (uint8, i.e. the cv2.warpAffine output; whole for two boxes, subsampled for
the rest) and cam_int to an .npz file.

Nothing of upstream is copied here: its package is imported from --upstream. Two shims:
  * the packages `sam_3d_body` and `sam_3d_body.models` are registered without running
    their __init__ files, which import the whole network; only data/transforms,
    data/utils/prepare_batch and models/modules (for to_2tuple) are loaded;
  * without torchvision, a minimal ToTensor (HWC uint8 -> CHW float32 / 255) stands in.

Requirements: numpy, torch, opencv-python-headless 4.x. OpenCV 5 interpolates on a finer
grid than 4.x (see sam3dbody_gui/pipeline/preprocess.py); the goldens are made with 4.x,
the major version current when upstream was released, and the script refuses 5.x unless
--allow-opencv5 is given.

Usage:
    python tools/parity/preprocess_oracle.py \\
        --upstream /tmp/up/wheel/sam3d/third_party/meta \\
        --out tests/fixtures/preprocess_golden.npz
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import types
from pathlib import Path

import numpy as np

PHOTO_HW = (480, 640)
CROP_SIZE = 512

# name -> (box x1, y1, x2, y2 or None for "whole image", padding). 1.25 is the body crop,
# 0.9 the hand crop.
CASES = {
    "normal": ([200.5, 100.25, 330.75, 420.0], 1.25),
    "wide": ([50.0, 200.0, 600.0, 300.0], 1.25),
    "tall": ([300.0, 10.0, 340.0, 470.0], 1.25),
    "partly_outside": ([-80.0, 300.0, 150.0, 700.0], 1.25),
    "tiny_at_corner": ([-3.5, -2.25, 8.75, 14.0], 1.25),
    "whole_image": (None, 1.25),
    "hand": ([400.3, 150.7, 455.1, 199.9], 0.9),
}
# Crops stored whole; the others keep every CROP_SUBSAMPLE-th row and column, which keeps
# the fixture under 2 MB while still spanning the whole crop.
FULL_CROPS = ("normal", "partly_outside")
CROP_SUBSAMPLE = 3


def synthetic_photo(height: int = PHOTO_HW[0], width: int = PHOTO_HW[1]) -> np.ndarray:
    """Deterministic (H, W, 3) uint8 test photo: ramps, a checkerboard and fine texture.

    Integer arithmetic only, so every platform and numpy version makes the same bytes.
    The fine texture makes interpolation differences visible.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    red = x * 255 // (width - 1)
    green = y * 255 // (height - 1)
    blue = ((x // 8 + y // 8) % 2) * 160 + (x * x + 3 * y * y) % 96
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def photo_digest(photo: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(photo).tobytes()).hexdigest()


def _install_shims(upstream_root: Path) -> None:
    sys.path.insert(0, str(upstream_root))
    for package in ("sam_3d_body", "sam_3d_body.models"):
        module = types.ModuleType(package)
        module.__path__ = [str(upstream_root.joinpath(*package.split(".")))]
        sys.modules[package] = module

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by file path (tests)
    from torchvision_stub import install_torchvision_stub

    install_torchvision_stub()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True,
                        help="folder holding the sam_3d_body package")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--allow-opencv5", action="store_true")
    args = parser.parse_args()

    import cv2

    if int(cv2.__version__.split(".")[0]) >= 5 and not args.allow_opencv5:
        sys.exit(f"OpenCV {cv2.__version__} samples differently from the 4.x upstream used; "
                 "install opencv-python-headless<5 (or pass --allow-opencv5)")

    _install_shims(args.upstream)
    from sam_3d_body.data.transforms import (Compose, GetBBoxCenterScale, TopdownAffine,
                                             VisionTransformWrapper)
    from sam_3d_body.data.utils.prepare_batch import prepare_batch
    from torchvision.transforms import ToTensor

    photo = synthetic_photo()
    height, width = photo.shape[:2]
    golden = {
        "photo_hw": np.array(PHOTO_HW),
        "photo_sha256": np.array(photo_digest(photo)),
        "crop_size": np.array(CROP_SIZE),
        "opencv_version": np.array(cv2.__version__),
        "case_names": np.array(list(CASES)),
    }
    for name, (box, padding) in CASES.items():
        transform = Compose([
            GetBBoxCenterScale(padding=padding),
            TopdownAffine(input_size=[CROP_SIZE, CROP_SIZE], use_udp=False),
            VisionTransformWrapper(ToTensor()),
        ])
        if box is None:  # what SAM3DBodyEstimator.process_one_image does without a box
            boxes = np.array([0, 0, width, height]).reshape(1, 4)
        else:
            boxes = np.array([box], dtype=np.float64)

        # One sample through the transform keeps upstream's float64 geometry; prepare_batch
        # (which casts it to float32) supplies the crop and the default intrinsics.
        sample = transform(dict(img=photo, bbox=boxes[0], bbox_format="xyxy"))
        batch = prepare_batch(photo, transform, boxes)
        crop = np.rint(batch["img"][0, 0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)

        golden[f"{name}__box"] = np.full(4, np.nan) if box is None else np.array(box)
        golden[f"{name}__padding"] = np.array(padding)
        golden[f"{name}__bbox_center"] = np.asarray(sample["bbox_center"], np.float64)
        golden[f"{name}__bbox_scale"] = np.asarray(sample["bbox_scale"], np.float64)
        golden[f"{name}__affine_trans"] = np.asarray(sample["affine_trans"], np.float64)
        stride = 1 if name in FULL_CROPS else CROP_SUBSAMPLE
        golden[f"{name}__crop"] = crop[::stride, ::stride]
        golden[f"{name}__crop_stride"] = np.array(stride)
        golden[f"{name}__cam_int"] = batch["cam_int"][0].numpy().astype(np.float64)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **golden)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) with OpenCV {cv2.__version__}")


if __name__ == "__main__":
    main()
