"""Body/hand crop preprocessing against golden values from upstream's own transform code.

The goldens (tests/fixtures/preprocess_golden.npz) come from tools/parity/preprocess_oracle.py,
which runs upstream SAM 3D Body's GetBBoxCenterScale + TopdownAffine + ToTensor and
prepare_batch with OpenCV 4.x on a synthetic photo that this test rebuilds from the same
formula.
"""

import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sam3dbody_gui.errors import BoxError, UserError
from sam3dbody_gui.pipeline.preprocess import (
    CropGeometry,
    crop_geometry,
    default_intrinsics,
    intrinsics_from,
    normalize_crop,
    validate_box,
    warp_crop,
    warp_crop_uint8,
)

REPO = Path(__file__).resolve().parents[1]
GOLDEN_PATH = REPO / "tests" / "fixtures" / "preprocess_golden.npz"
ORACLE_PATH = REPO / "tools" / "parity" / "preprocess_oracle.py"
GEOMETRY_TOLERANCE = 1e-6


def _load_oracle_module():
    # The oracle defines the synthetic photo; importing it needs only numpy (it loads
    # OpenCV and upstream inside main()).
    spec = importlib.util.spec_from_file_location("preprocess_oracle", ORACLE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ORACLE = _load_oracle_module()
GOLDEN = dict(np.load(GOLDEN_PATH))
CASE_NAMES = [str(name) for name in GOLDEN["case_names"]]


@pytest.fixture(scope="module")
def photo():
    return ORACLE.synthetic_photo()


def _case(name):
    box = GOLDEN[f"{name}__box"]
    box = None if np.isnan(box).all() else box
    return box, float(GOLDEN[f"{name}__padding"])


def test_synthetic_photo_is_the_one_the_goldens_were_made_from(photo):
    assert ORACLE.photo_digest(photo) == str(GOLDEN["photo_sha256"])
    assert str(GOLDEN["opencv_version"]).startswith("4.")


@pytest.mark.parametrize("name", CASE_NAMES)
def test_geometry_matches_upstream(name, photo):
    box, padding = _case(name)
    geom = crop_geometry(box, photo.shape[:2], padding=padding)

    np.testing.assert_allclose(geom.center, GOLDEN[f"{name}__bbox_center"],
                               rtol=0, atol=GEOMETRY_TOLERANCE)
    np.testing.assert_allclose(geom.scale, GOLDEN[f"{name}__bbox_scale"],
                               rtol=0, atol=GEOMETRY_TOLERANCE)
    np.testing.assert_allclose(geom.affine, GOLDEN[f"{name}__affine_trans"],
                               rtol=0, atol=GEOMETRY_TOLERANCE)
    np.testing.assert_allclose(default_intrinsics(photo.shape[:2]), GOLDEN[f"{name}__cam_int"],
                               rtol=0, atol=GEOMETRY_TOLERANCE)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_crop_matches_upstream_cv2_warp(name, photo):
    box, padding = _case(name)
    geom = crop_geometry(box, photo.shape[:2], padding=padding)
    stride = int(GOLDEN[f"{name}__crop_stride"])

    ours = warp_crop(photo, geom).permute(1, 2, 0).numpy()[::stride, ::stride] * 255.0
    difference = np.abs(ours - GOLDEN[f"{name}__crop"].astype(np.float64))
    # Measured: identical to OpenCV 4.10/4.14 (max 0). One level is allowed for a
    # last-bit difference between our affine solve and OpenCV's flipping a rounding.
    assert difference.max() <= 1.0 + 1e-4
    assert np.mean(difference > 0.5) < 1e-3


def test_geometry_fields_and_square_side():
    geom = crop_geometry([100, 50, 180, 350], (480, 640))
    assert isinstance(geom, CropGeometry)
    assert geom.bbox_xyxy.dtype == np.float64 and geom.bbox_xyxy.shape == (4,)
    assert geom.center.shape == (2,) and geom.scale.shape == (2,)
    assert geom.affine.shape == (2, 3) and geom.affine.dtype == np.float64
    assert geom.crop_size == 512 and geom.image_hw == (480, 640)
    np.testing.assert_allclose(geom.center, [140, 200])
    # side = max(1.25 * h, 1.25 * w / 0.75) = max(375, 133.3)
    np.testing.assert_allclose(geom.scale, [375, 375])
    wide = crop_geometry([0, 0, 300, 60], (480, 640))
    np.testing.assert_allclose(wide.scale, [500, 500])  # 1.25 * 300 / 0.75


def test_affine_maps_box_centre_to_crop_centre_and_inverse_undoes_it():
    geom = crop_geometry([10.5, 20.25, 200.75, 400.5], (480, 640))
    centre = geom.affine @ np.append(geom.center, 1.0)
    np.testing.assert_allclose(centre, [256, 256], atol=1e-3)
    round_trip = geom.inverse_affine @ np.vstack([geom.affine, [0, 0, 1]])
    np.testing.assert_allclose(round_trip, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_hand_padding_is_a_parameter():
    body = crop_geometry([0, 0, 100, 100], (480, 640))
    hand = crop_geometry([0, 0, 100, 100], (480, 640), padding=0.9)
    np.testing.assert_allclose(body.scale, [125 / 0.75] * 2)
    np.testing.assert_allclose(hand.scale, [90 / 0.75] * 2)


def test_validate_box_whole_image_and_reordering():
    np.testing.assert_array_equal(validate_box(None, (480, 640)), [0, 0, 640, 480])
    np.testing.assert_array_equal(validate_box([300, 400, 100, 50], (480, 640)),
                                  [100, 50, 300, 400])
    swapped = crop_geometry([300, 400, 100, 50], (480, 640))
    straight = crop_geometry([100, 50, 300, 400], (480, 640))
    np.testing.assert_array_equal(swapped.affine, straight.affine)


def test_validate_box_keeps_a_box_partly_outside():
    np.testing.assert_array_equal(validate_box([-50, -20, 700, 100], (480, 640)),
                                  [-50, -20, 700, 100])


@pytest.mark.parametrize("box, words", [
    ([0, 0, float("nan"), 10], "non-finite"),
    ([0, 0, float("inf"), 10], "non-finite"),
    ([10, 10, 10, 50], "zero width or height"),
    ([10, 10, 50, 10], "zero width or height"),
    ([700, 10, 800, 50], "outside"),
    ([-100, 10, 0, 50], "outside"),
    ([10, 480, 50, 600], "outside"),
    ([1, 2, 3], "4 numbers"),
    ("abcd", "4 numbers"),
])
def test_validate_box_rejects_unusable_boxes(box, words):
    with pytest.raises(BoxError, match=words):
        validate_box(box, (480, 640))


def test_warp_crop_layout_range_and_black_outside(photo):
    geom = crop_geometry([-80.0, 300.0, 150.0, 700.0], photo.shape[:2])
    crop = warp_crop(photo, geom)
    assert crop.shape == (3, 512, 512) and crop.dtype == torch.float32
    assert float(crop.min()) >= 0.0 and float(crop.max()) <= 1.0
    # The photo ends at y = 480 (row 479 is the last), mid-crop for this box: below it
    # the crop is black, not clipped or stretched; just above it the photo shows.
    photo_end_in_crop = (geom.affine @ np.array([0.0, 480.0, 1.0]))[1]
    first_black_row = int(np.ceil(photo_end_in_crop)) + 1
    assert 100 < first_black_row < 400
    assert float(crop[:, first_black_row:, :].max()) == 0.0
    assert float(crop[:, first_black_row - 3, :].max()) > 0.0
    np.testing.assert_array_equal((crop * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(),
                                  warp_crop_uint8(photo, geom))


def test_warp_crop_rejects_wrong_image(photo):
    geom = crop_geometry(None, (100, 100))
    with pytest.raises(ValueError, match="crop geometry"):
        warp_crop(photo, geom)
    with pytest.raises(ValueError, match="uint8"):
        warp_crop(photo.astype(np.float32), crop_geometry(None, photo.shape[:2]))


def test_warp_crop_is_fast_on_a_12_megapixel_photo():
    height, width = 3000, 4000
    big = np.empty((height, width, 3), np.uint8)
    big[...] = (np.arange(width, dtype=np.uint32) % 251).astype(np.uint8)[None, :, None]
    geom = crop_geometry([1500, 500, 2500, 2900], (height, width))
    warp_crop(big, geom)  # warm-up
    start = time.perf_counter()
    crop = warp_crop(big, geom)
    elapsed = time.perf_counter() - start
    assert crop.shape == (3, 512, 512)
    assert elapsed < 0.5, f"warp took {elapsed:.3f} s"


def test_normalize_crop():
    crop = torch.full((3, 4, 4), 0.5)
    normalized = normalize_crop(crop, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    assert normalized.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(normalized[0, :, 0, 0].numpy(),
                               [(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                                (0.5 - 0.406) / 0.225], rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        normalize_crop(crop, mean=[0, 0, 0], std=[1, 0, 1])
    with pytest.raises(ValueError, match="one per channel"):
        normalize_crop(crop, mean=[0, 0], std=[1, 1])


def test_default_intrinsics():
    k = default_intrinsics((480, 640))
    np.testing.assert_array_equal(k, [[800, 0, 320], [0, 800, 240], [0, 0, 1]])
    k = default_intrinsics((1080, 1920))
    assert k[0, 0] == k[1, 1] == pytest.approx(math.hypot(1080, 1920))
    assert (k[0, 2], k[1, 2]) == (960.0, 540.0)


def test_intrinsics_from():
    np.testing.assert_array_equal(intrinsics_from(1000, 1100, 320.5, -10),
                                  [[1000, 0, 320.5], [0, 1100, -10], [0, 0, 1]])
    with pytest.raises(UserError, match="fx must be positive"):
        intrinsics_from(0, 1000, 320, 240)
    with pytest.raises(UserError, match="fy must be positive"):
        intrinsics_from(1000, -5, 320, 240)
    with pytest.raises(UserError, match="cx must be a finite"):
        intrinsics_from(1000, 1000, float("nan"), 240)
    with pytest.raises(UserError, match="cy must be a number"):
        intrinsics_from(1000, 1000, 320, "centre")


@pytest.mark.parametrize("box", [(20, 10, 370, 512), (-100, -50, 200, 300), (400, 400, 600, 700), None])
def test_tensor_warp_is_bit_identical_to_the_numpy_warp(box):
    """The GPU path (same integer arithmetic in torch) must give exactly the reference crop."""
    from sam3dbody_gui.pipeline.preprocess import warp_crop_tensor

    image = np.random.default_rng(5).integers(0, 256, (512, 480, 3), dtype=np.uint8)
    geom = crop_geometry(box, image.shape[:2])
    assert torch.equal(warp_crop_tensor(torch.from_numpy(image), geom), warp_crop(image, geom))


@pytest.mark.parametrize("mirrored", [False, True])
def test_device_cropper_gives_the_reference_crop_and_keeps_the_photo(mirrored):
    """The pipeline's device-side crop (eager here; compiled on GPUs) = the numpy warp, normalised."""
    from sam3dbody_gui.pipeline.device_crop import DeviceCropper

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    image = np.random.default_rng(6).integers(0, 256, (300, 410, 3), dtype=np.uint8)
    cropper = DeviceCropper(torch.device("cpu"), mean, std)
    for box in ((20, 10, 370, 290), (-100, -50, 200, 300)):
        geom = crop_geometry(box, image.shape[:2])
        want = normalize_crop(warp_crop(image[:, ::-1] if mirrored else image, geom), mean, std)
        got = cropper(image, geom, mirrored=mirrored)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6, rtol=0)
    photo = cropper._photo
    cropper(image, geom)
    assert cropper._photo is photo  # the same photo is not uploaded again
    cropper(image.copy(), geom)
    assert cropper._photo is not photo  # a new array is a new photo
    with pytest.raises(ValueError, match="std be positive"):
        DeviceCropper(torch.device("cpu"), mean, (0.2, 0.0, 0.2))


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_compiled_device_crop_matches_the_reference_for_any_photo_size(device, tmp_path):
    """The fused (torch.compile, dynamic sizes) crop: exact on the CPU, within float rounding on
    a GPU; one compile serves square, wide and tall photos; its kernels are kept on disk."""
    from sam3dbody_gui.pipeline.device_crop import DeviceCropper

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    cropper = DeviceCropper(torch.device(device), mean, std, compiled=True, cache_dir=tmp_path)
    assert cropper.status == "compiled" and len(list(tmp_path.glob("crop-*.compile-cache"))) == 1
    rng = np.random.default_rng(7)
    for shape, box in (((512, 512, 3), (20, 10, 370, 512)), ((333, 1001, 3), (-100, -50, 600, 300)),
                       ((1080, 720, 3), None)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        geom = crop_geometry(box, image.shape[:2])
        want = normalize_crop(warp_crop(image, geom), mean, std)
        assert torch.allclose(cropper(image, geom).cpu(), want, atol=1e-5, rtol=0)


def test_compiled_device_crop_compiles_nothing_at_first_use(tmp_path):
    """The warm-up at construction covers what a run then asks for: the first body crop and the
    first pair of hand crops (one mirrored) compile nothing more (its warm-up inputs were once
    inference tensors: a guard mismatch, so a recompile — 1 s on an H200 — at both first uses)."""
    from torch._dynamo.utils import counters

    from sam3dbody_gui.pipeline.device_crop import DeviceCropper

    cropper = DeviceCropper(torch.device("cpu"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), compiled=True,
                            cache_dir=tmp_path)
    assert cropper.status == "compiled"
    image = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    body = crop_geometry((100, 50, 300, 400), image.shape[:2])
    graphs_before = counters["stats"]["unique_graphs"]
    cropper.crops(image, [body], [False])
    cropper.crops(image, [body, body], [True, False])
    assert counters["stats"]["unique_graphs"] == graphs_before
