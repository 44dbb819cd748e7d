"""The batched fast paths of several people: one batched crop, the compiled batched decoder.

On the CPU: the batched device crop equals the crop made one by one (and the numpy warp) bit for
bit, mirrored crops included; a pipeline cropping in one batch gives what it gave before; the
batched decoder pass traces with a dynamic batch size, so every bucket is made at load and
nothing compiles at run time. On a GPU (skipped here): the compiled buckets against each person
run alone through the single-person compiled pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam3dbody_gui.pipeline.device_crop import DeviceCropper
from sam3dbody_gui.pipeline.hand_crops import hand_crop_geometry
from sam3dbody_gui.pipeline.preprocess import crop_geometry, normalize_crop, warp_crop

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Inside, partly outside (black border), tiny, whole photo.
BOXES = [(40.0, 30.0, 200.0, 170.0), (-60.0, 90.0, 120.0, 260.0), (150.0, 5.0, 171.0, 31.0), None]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (211, 263, 3), dtype=np.uint8)  # sides unequal and unlike the crop's


def _one_by_one(photo, geom, mirrored=False) -> torch.Tensor:
    return normalize_crop(warp_crop(photo[:, ::-1] if mirrored else photo, geom), MEAN, STD)


def test_batched_device_crop_equals_the_crops_made_one_by_one(photo):
    cropper = DeviceCropper(torch.device("cpu"), MEAN, STD)
    geoms = [crop_geometry(b, photo.shape[:2], crop_size=64) for b in BOXES]
    batch = cropper.crops(photo, geoms)
    assert batch.shape == (len(geoms), 3, 64, 64) and batch.dtype == torch.float32
    for i, geom in enumerate(geoms):
        assert torch.equal(batch[i:i + 1], _one_by_one(photo, geom))
        assert torch.equal(batch[i:i + 1], cropper(photo, geom))


def test_mirrored_crops_in_the_batch_equal_crops_of_the_flipped_photo(photo):
    """Full mode's hands: left hands are cropped from the photo flipped left-right; the batch reads
    the unflipped photo right to left instead (no flipped copy) and must give the same pixels."""
    cropper = DeviceCropper(torch.device("cpu"), MEAN, STD)
    hands = [(30.0, 40.0, 60.0, 75.0), (200.0, 150.0, 262.0, 210.0), (-10.0, -5.0, 20.0, 25.0)]
    geoms = [hand_crop_geometry(np.array(b), photo.shape[:2], 48) for b in hands] * 2
    mirrored = [True] * len(hands) + [False] * len(hands)
    batch = cropper.crops(photo, geoms, mirrored)
    for i, (geom, flip) in enumerate(zip(geoms, mirrored)):
        assert torch.equal(batch[i:i + 1], _one_by_one(photo, geom, flip)), (i, flip)
    assert not torch.equal(batch[0], batch[len(hands)])  # the flag did something


def test_batched_crops_refuse_mismatched_flags_and_sizes(photo):
    cropper = DeviceCropper(torch.device("cpu"), MEAN, STD)
    a = crop_geometry(BOXES[0], photo.shape[:2], crop_size=64)
    b = crop_geometry(BOXES[0], photo.shape[:2], crop_size=32)
    with pytest.raises(ValueError, match="one mirrored flag per crop"):
        cropper.crops(photo, [a, a], [False])
    with pytest.raises(ValueError, match="one size"):
        cropper.crops(photo, [a, b])


def test_a_pipeline_cropping_in_one_batch_gives_the_same_people(tiny_model_dir):
    """The CPU pipeline crops with numpy one by one; given the device cropper (on the CPU here) it
    crops every person, and in full mode every hand, in one batch: the same results."""
    from sam3dbody_gui.bundled import sample_image_path
    from sam3dbody_gui.pipeline.image_io import load_image
    from sam3dbody_gui.pipeline.build import build_pipeline

    image = load_image(sample_image_path())
    boxes = [(20.0, 10.0, 370.0, 512.0), (200.0, 40.0, 470.0, 500.0)]
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    assert pipe.cropper is None
    for mode in ("body", "full"):
        want = pipe.run_people(image, boxes, mode=mode)
        pipe.cropper = DeviceCropper(torch.device("cpu"), pipe.config.image_mean, pipe.config.image_std)
        try:
            got = pipe.run_people(image, boxes, mode=mode)
        finally:
            pipe.cropper = None
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.features, w.features)
            np.testing.assert_allclose(g.vertices, w.vertices, rtol=0, atol=1e-6)
            if mode == "full":
                np.testing.assert_array_equal(g.hands.crop_boxes_xyxy, w.hands.crop_boxes_xyxy)
                assert g.hands.accepted.tolist() == w.hands.accepted.tolist()


def test_the_batched_decoder_pass_traces_once_for_every_bucket(tiny_loaded):
    """What CompiledBucketedBodyDecoder relies on, on the CPU (no Inductor kernels: the
    'aot_eager' backend traces and partitions like Inductor does): after the single-person
    compile, the batch sizes 2-16 share a dynamic-batch trace (a piece may recompile once on the
    way, all at load); calling the buckets again compiles nothing, and each matches eager."""
    from torch._dynamo.utils import counters

    from sam3dbody_gui.runtime.decoders.decoder_buckets import BUCKETS
    from sam3dbody_gui.runtime.decoders.decoder_graph import CAMERA_FIELDS, plausible_camera

    torch._dynamo.reset()
    model = tiny_loaded.model
    cpu = torch.device("cpu")
    single = torch.compile(model.decode_body, dynamic=False, backend="aot_eager")
    batched = torch.compile(model.decode_body, dynamic=None, backend="aot_eager")

    def inputs(size):
        g = torch.Generator().manual_seed(size)
        features = torch.randn(size, model.feature_dim, 32, 32, generator=g)
        cam = plausible_camera(512, cpu).rows([0] * size)
        cam.box_center[:, 0] += torch.linspace(-60, 60, size)
        return features, cam

    try:
        with torch.inference_mode():
            single(*inputs(1))
            for size in BUCKETS:
                features, cam = inputs(size)
                for t in (features, *(getattr(cam, name) for name in CAMERA_FIELDS)):
                    torch._dynamo.maybe_mark_dynamic(t, 0)
                batched(features, cam)
            made = counters["stats"]["unique_graphs"]
            for size in BUCKETS:
                features, cam = inputs(size)
                got, want = batched(features, cam), model.decode_body(features, cam)
                for key in ("pred_vertices", "pred_cam_t", "pred_keypoints_2d"):
                    assert torch.allclose(got[key], want[key], rtol=1e-5, atol=1e-6), (size, key)
            assert counters["stats"]["unique_graphs"] == made  # nothing compiled after "load"
    finally:
        torch._dynamo.reset()


def _decoder_inputs(model, n: int, device):
    from test_decoder_buckets import _inputs  # the same random people as the captured buckets' test

    return _inputs(model, n, device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_compiled_buckets_give_each_person_what_a_run_alone_gives(tiny_model_dir, tmp_path):
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.runtime.decoders.compiled_decoder import CompiledBodyDecoder
    from sam3dbody_gui.runtime.decoders.decoder_buckets import CompiledBucketedBodyDecoder

    dev = torch.device("cuda")
    loaded = load_model_folder(tiny_model_dir, device=dev, decoder_dtype=torch.bfloat16)
    alone = CompiledBodyDecoder(loaded.model, 512, dev, tmp_path)
    batched = CompiledBucketedBodyDecoder(loaded.model, 512, dev, tmp_path)
    assert set(batched._graphs) == set(batched.buckets)  # every bucket made at load
    for n in (2, 3, 7, 16, 19):
        features, cam = _decoder_inputs(loaded.model, n, dev)
        with torch.inference_mode():
            together = {k: v.clone() for k, v in batched(features, cam).items()}
            for i in range(n):
                one = alone(features[i:i + 1], cam.rows([i]))
                for key in ("pred_vertices", "pred_cam_t", "pred_keypoints_2d"):
                    err = ((together[key][i] - one[key][0]).abs().max() / one[key][0].abs().max()).item()
                    assert err < 3e-2, (n, i, key, err)  # bf16 decoder, other kernels per batch size
    assert CompiledBucketedBodyDecoder(loaded.model, 512, dev, tmp_path).from_cache


def test_the_patch_embedding_as_a_matrix_product_equals_the_convolution(tiny_loaded):
    from sam3dbody_gui.runtime.backbones.patch_embed import GemmPatchEmbed

    conv = tiny_loaded.model.backbone.encoder.patch_embed
    gemm = GemmPatchEmbed(conv)
    images = torch.randn(3, 3, 100, 84, generator=torch.Generator().manual_seed(1))  # trailing pixels dropped
    with torch.no_grad():
        want, got = conv(images), gemm(images)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def _jobs(images, boxes):
    from sam3dbody_gui.batch.photo_work import Job

    return [Job(i, f"/nowhere/p{i}.jpg", "photo", sha=f"{i}", image=im, boxes=list(b), scores=[None] * len(b))
            for i, (im, b) in enumerate(zip(images, boxes))]


def test_people_of_several_photos_in_one_batch_get_what_each_photo_alone_gives(tiny_model_dir):
    from sam3dbody_gui.batch.photo_work import infer, infer_many
    from sam3dbody_gui.batch.settings import BatchSettings
    from sam3dbody_gui.pipeline.build import build_pipeline

    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    settings = BatchSettings(model_dir=tiny_model_dir, formats=("obj", "json")).checked()
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((120, 160), (200, 90), (150, 150))]
    boxes = [[(10.0, 10.0, 100.0, 110.0), None], [(5.0, 20.0, 80.0, 190.0)], [(-20.0, 30.0, 60.0, 140.0),
                                                                               (50.0, 0.0, 150.0, 149.0), None]]
    boxes.append([(0.0, 0.0, 0.0, 0.0)])  # a bad box: that photo's own error line
    images.append(images[0])
    together = list(infer_many(_jobs(images, boxes), pipe, settings, "fp"))
    alone = [infer(job, pipe, settings, "fp") for job in _jobs(images, boxes)]
    assert together[-1].outcome["status"] == alone[-1].outcome["status"] == "error"
    for t, a in zip(together[:-1], alone[:-1]):
        assert t.outcome is None and len(t.people) == len(a.people)
        np.testing.assert_array_equal(t.faces, a.faces)
        for p, q in zip(t.people, a.people):
            np.testing.assert_allclose(p.vertices_camera, q.vertices_camera, rtol=1e-5, atol=1e-6)
            assert p.summary["box_xyxy"] == q.summary["box_xyxy"]
            assert p.summary["image_size_hw"] == q.summary["image_size_hw"]
            for key, value in q.summary["params"].items():
                np.testing.assert_allclose(p.summary["params"][key], value, rtol=1e-5, atol=1e-6)
            assert set(p.params_json) == set(q.params_json)


def test_one_detector_run_for_several_photos_finds_what_each_run_finds():
    import tempfile
    from pathlib import Path

    from sam3dbody_gui.batch.photo_work import detect_many
    from sam3dbody_gui.model.detector import load_detector
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector

    folder = make_synthetic_detector(Path(tempfile.mkdtemp()) / "detector", size="tiny")
    detector = load_detector(folder)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((96, 128), (200, 64), (64, 64))]
    together = detect_many(detector, images, 0.0, 5)
    for image, found in zip(images, together):
        alone = detector.detect(image, min_score=0.0, max_people=5)
        assert len(found.people) == len(alone.people) and found.found == alone.found
        for p, q in zip(found.people, alone.people):
            np.testing.assert_allclose(p.box_xyxy, q.box_xyxy, rtol=1e-4, atol=1e-3)
            assert abs(p.score - q.score) < 1e-4


def test_the_patch_matrix_product_traces_with_a_dynamic_batch_and_is_checked_before_use(tiny_loaded):
    import copy

    from sam3dbody_gui.runtime.backbones.patch_embed import GemmPatchEmbed, use_gemm_patch_embed_

    encoder = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    assert use_gemm_patch_embed_(encoder) and isinstance(encoder.patch_embed, GemmPatchEmbed)
    compiled = torch.compile(encoder.patch_embed, backend="aot_eager", dynamic=None)
    conv = tiny_loaded.model.backbone.encoder.patch_embed
    with torch.no_grad():
        for batch in (2, 4, 16):
            x = torch.randn(batch, 3, 64, 64)
            torch._dynamo.maybe_mark_dynamic(x, 0)
            assert torch.allclose(compiled(x), conv(x), rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
    broken = copy.deepcopy(tiny_loaded.model.backbone.encoder)
    broken.patch_embed.proj.stride = (1, 1)  # overlapping patches: not a plain matrix product
    assert not use_gemm_patch_embed_(broken) and not isinstance(broken.patch_embed, GemmPatchEmbed)


def test_the_compiled_crop_compiles_nothing_after_its_warm_up(photo, monkeypatch):
    """Full mode's first run on the H200 spent ~1 s in 'hand crops': the warm-up's inputs were
    not inference tensors, the pipeline's were (it runs inside inference mode), and the guards
    recompiled for two crops. Dynamo's guards are the same under its eager backend."""
    import torch._dynamo

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real_compile(fn, **{**kw, "backend": "eager"}))
    torch._dynamo.reset()
    cropper = DeviceCropper(torch.device("cpu"), MEAN, STD, compiled=True)
    assert cropper.status == "compiled"
    geoms = [crop_geometry(b, photo.shape[:2], crop_size=64) for b in BOXES]
    want = [_one_by_one(photo, g) for g in geoms]
    with torch._dynamo.config.patch(error_on_recompile=True):
        for count in (1, 2, 4):
            for caller_in_inference_mode in (True, False):
                with torch.inference_mode(caller_in_inference_mode):
                    batch = cropper.crops(photo, geoms[:count])
                for i in range(count):
                    assert torch.equal(batch[i:i + 1], want[i])
    torch._dynamo.reset()
