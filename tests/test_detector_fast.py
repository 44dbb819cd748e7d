"""The fast batch detector (runtime/detector_fast.py) against the plain one, on the CPU.

What runs here is the logic a GPU runs: PIL's resize done as matrix products (against PIL
itself), the batched selection with its fixed NMS rounds (against select_people), the batched
network + selection on the tiny synthetic detector (against the plain path, photo by photo),
the load-time check (it passes the fp32 path, it catches bf16 moving the synthetic detector's
people, and then falls back to the plain detector), and a batch run with it (the same manifest
as with the plain detector). Only the CUDA graphs, the stream and the pinned copies need a GPU
(tools/gpu/batch_speed.py)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from PIL import Image

from sam3dbody_gui.errors import ImageError, UserError
from sam3dbody_gui.model.detector_postprocess import (Detections, PersonBox, people_from_selection, select_people,
                                                      select_people_batched)
from sam3dbody_gui.runtime.detector_check import check_fast, compare_detections, plain_batch
from sam3dbody_gui.runtime.detector_fast import FastDetector, fast_detector, load_batch_detector
from sam3dbody_gui.runtime.detector_resize import DeviceResize, pil_coefficients


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector

    return make_synthetic_detector(tmp_path_factory.mktemp("fastdet") / "rtdetr", "tiny", seed=0)


@pytest.fixture(scope="module")
def plain(detector_dir):
    from sam3dbody_gui.model.detector import load_detector

    return load_detector(detector_dir)


@pytest.fixture(scope="module")
def fast(plain):
    return FastDetector(plain, "fp32")


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _smooth(h: int, w: int) -> np.ndarray:
    """Gradients and edges: where resize rounding ties happen (noise alone rarely has them)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), ((x // 7 + y // 5) % 2) * 200], -1)
    return img.astype(np.uint8)


# ----------------------------------------------------------------------- resize ---
@pytest.mark.parametrize("hw", [(30, 50), (90, 60), (300, 500), (300, 800), (900, 200), (645, 10), (512, 512), (640, 640),
                                (650, 600), (700, 1000), (1000, 700), (641, 1277), (1280, 720), (1080, 1920)])
def test_device_resize_is_pil_bit_for_bit(hw):
    resize = DeviceResize("cpu", (640, 640), Image.BILINEAR)
    for img in (_noise(*hw), _smooth(*hw)):
        want = np.asarray(Image.fromarray(img).resize((640, 640), Image.BILINEAR))
        got = resize(torch.from_numpy(img))[0].permute(1, 2, 0).numpy()
        assert np.array_equal(got, want.astype(np.float32)), f"{hw}: {np.abs(got - want).max()} levels off"


@pytest.mark.parametrize("resample", [Image.BICUBIC, Image.LANCZOS, Image.BOX, Image.HAMMING])
def test_device_resize_other_pil_filters(resample):
    img = _smooth(300, 700)
    want = np.asarray(Image.fromarray(img).resize((640, 640), resample))
    got = DeviceResize("cpu", (640, 640), resample)(torch.from_numpy(img))[0].permute(1, 2, 0).numpy()
    assert np.array_equal(got, want.astype(np.float32))


def test_coefficients_sum_to_one_in_fixed_point_and_nearest_is_refused():
    m = pil_coefficients(1920, 640, Image.BILINEAR)
    assert np.all(np.abs(m.sum(1) - 2 ** 22) <= m.shape[1])  # each row: 1.0 give or take the rounding
    with pytest.raises(ValueError):
        pil_coefficients(100, 640, Image.NEAREST)


def test_plain_float_interpolate_is_not_pil():
    """Why the resize is done PIL's way: antialiased interpolate rounds differently (measured)."""
    img = _noise(300, 500)
    want = np.asarray(Image.fromarray(img).resize((640, 640), Image.BILINEAR)).astype(np.float32)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    got = torch.nn.functional.interpolate(t, size=(640, 640), mode="bilinear", antialias=True)
    off = np.abs(got[0].permute(1, 2, 0).round().numpy() - want)
    assert off.max() == 1 and (off > 0).mean() > 0.05  # close, not equal (~20 % of the values)


# -------------------------------------------------------------- batched selection ---
def _raw(batch: int, queries: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, queries, 80, generator=g) * 2 + 1
    boxes = torch.rand(batch, queries, 4, generator=g) * torch.tensor([1, 1, 0.3, 0.3])
    boxes[1, :60] = boxes[1, :1] + torch.randn(60, 4, generator=g) * 0.004  # a pile of duplicates
    logits[2, ::3, 0] = logits[2, 0, 0]  # ties in score: the stable order decides
    return logits, boxes


HW = [(300, 500), (1080, 1920), (640, 640), (100, 50)]


@pytest.mark.parametrize("cap", [None, 1, 4, 16])
@pytest.mark.parametrize("min_score, nms_iou", [(0.5, 0.7), (0.0, 0.5), (0.9, 1.0)])
def test_batched_selection_equals_select_people(cap, min_score, nms_iou):
    logits, boxes = _raw(len(HW), 300, seed=1)
    sel = select_people_batched(logits[..., 0], boxes, torch.tensor(HW, dtype=torch.float32),
                                torch.tensor(min_score), torch.tensor(nms_iou))
    assert sel["settled"].all()
    for i, hw in enumerate(HW):
        want = select_people(logits[i], boxes[i], hw, 0, min_score, nms_iou, cap)
        got = people_from_selection(logits[i, :, 0], boxes[i], sel["order"][i], sel["kept"][i], hw, min_score, cap)
        assert got == want, i


def test_a_long_suppression_chain_is_flagged_unsettled():
    # Boxes sliding right one step at a time, scores falling: each suppresses the next, so the
    # greedy answer (every other box) needs as many rounds as the chain is long.
    n = 12
    boxes = torch.tensor([[[0.1 + 0.01 * k, 0.5, 0.1, 0.2] for k in range(n)]])
    logits = torch.tensor([[4.0 - 0.1 * k for k in range(n)]])
    args = (logits, boxes, torch.tensor([[100.0, 100.0]]), torch.tensor(0.5), torch.tensor(0.7))
    short, enough = select_people_batched(*args, rounds=2), select_people_batched(*args, rounds=n)
    assert not bool(short["settled"][0]) and bool(enough["settled"][0])
    want = select_people(logits[0][:, None], boxes[0], (100, 100), 0, 0.5, 0.7, None)
    got = people_from_selection(logits[0], boxes[0], enough["order"][0], enough["kept"][0], (100, 100), 0.5, None)
    assert got == want and 1 < want.found < n


# ------------------------------------------------------------- the fast detector ---
def test_fast_detector_finds_what_the_plain_one_finds(plain, fast):
    photos = [_noise(300, 500, 1), _smooth(480, 640), _noise(90, 60, 2), _noise(720, 1280, 3), _smooth(200, 900)]
    # The same batches on both sides (a bucket of 4, then 1): see detector_check.py on why.
    want = plain_batch(plain, photos[:4]) + [plain.detect(photos[4], min_score=0.5, max_people=None)]
    got = fast.detect_many(photos, min_score=0.5, max_people=None)
    for p, w, g in zip(photos, want, got):
        assert w.found > 4  # the synthetic heads: many confident people
        assert compare_detections(w, g, p.shape[:2]) is None
        np.testing.assert_allclose([b.box_xyxy for b in g.people], [b.box_xyxy for b in w.people], atol=0.05)
    capped = fast.detect(photos[0], min_score=0.5, max_people=3)
    assert capped.capped and len(capped.people) == 3 and capped.message() == plain.detect(
        photos[0], min_score=0.5, max_people=3).message()
    doubled = fast.detect(photos[0], min_score=0.5, max_people=3, photo_hw=(600, 1000))
    assert [v for p in doubled.people for v in p.box_xyxy] == pytest.approx(
        [2 * v for p in capped.people for v in p.box_xyxy], rel=1e-5)


def test_fast_detector_bad_input_is_one_clear_error(fast):
    with pytest.raises(ImageError, match="uint8 RGB photo"):
        fast.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(UserError, match="minimum score"):
        fast.detect(_noise(20, 20), min_score=2.0)


def test_the_check_passes_fp32_and_catches_a_difference(plain, fast):
    assert check_fast(fast, plain) is None
    ref = plain.detect(_noise(300, 500), min_score=0.5, max_people=5)
    moved = replace(ref, people=[PersonBox((p.box_xyxy[0] + 3.0, *p.box_xyxy[1:]), p.score) for p in ref.people])
    assert "no match" in compare_detections(ref, moved, (300, 500))  # 3 px > 2 input px (1.6 photo px)
    fewer = Detections(ref.people[:-1], ref.found - 1, True, 0.5, 5)
    assert "person 4 of the plain path has no match" in compare_detections(ref, fewer, (300, 500))
    assert "of the fast path has no match" in compare_detections(fewer, ref, (300, 500))  # one made up
    swapped = replace(ref, people=[ref.people[1], ref.people[0], *ref.people[2:]])
    assert compare_detections(ref, swapped, (300, 500)) is None  # a rank swap is the same people


def _people(scores, shift: float = 0.0) -> list:
    return [PersonBox((10.0 * i + shift, 5.0, 10.0 * i + 8.0, 40.0), s) for i, s in enumerate(scores)]


def test_the_check_lets_borderline_and_past_the_cap_people_differ_but_nothing_else():
    ref = Detections(_people([0.9, 0.8, 0.7, 0.51]), 4, False, 0.5, None)
    # the last one is within SCORE_TOL of the threshold: rounding may drop it
    assert compare_detections(ref, replace(ref, people=ref.people[:3], found=3), (300, 500)) is None
    assert compare_detections(ref, replace(ref, people=ref.people[:2], found=2), (300, 500)) is not None
    # past the first `top` people nothing is compared (ties decide there); within it, everything
    many = Detections(_people([0.9] * 6), 6, False, 0.5, None)
    other_tail = replace(many, people=many.people[:3] + _people([0.9] * 3, shift=500.0)[3:])
    assert compare_detections(many, other_tail, (300, 1000), top=3) is None
    assert "person 3 of the plain path" in compare_detections(many, other_tail, (300, 1000), top=4)
    # the last places of the cap may trade with the next ones (within the first 2 x top)
    traded = replace(many, people=[many.people[i] for i in (0, 1, 2, 4, 3, 5)])
    assert compare_detections(many, traded, (300, 1000), top=3) is None
    assert compare_detections(ref, Detections([], 0, False, 0.5, None), (300, 500)).endswith("found nobody)")


def test_bf16_moves_the_synthetic_people_so_it_falls_back(plain):
    """The synthetic detector scores every query ~0.98: bf16's rounding picks other people,
    which the check sees; with nothing left to try, the plain detector is what comes back."""
    said = []
    got = fast_detector(plain, said.append, precisions=("bf16",), graphs=False)
    assert got is plain and len(said) == 1 and "fast path is off" in said[0] and "bf16 missed" in said[0]
    said.clear()
    got = fast_detector(plain, said.append, precisions=("bf16", "fp32"), graphs=False)
    assert isinstance(got, FastDetector) and got.precision == "fp32" and "bf16 missed" in said[0]


def test_the_cpu_default_stays_the_plain_detector(detector_dir):
    from sam3dbody_gui.model.detector import PersonDetector

    assert type(load_batch_detector(detector_dir, torch.device("cpu"), log=lambda m: None)) is PersonDetector


def test_a_batch_run_with_it_writes_the_plain_runs_manifest(tiny_model_dir, detector_dir, plain, fast, tmp_path):
    from test_batch_local import assert_same_manifest, lines

    from sam3dbody_gui.batch.inputs import expand_inputs
    from sam3dbody_gui.batch.local_engine import run_local
    from sam3dbody_gui.batch.settings import BatchSettings
    from sam3dbody_gui.pipeline.build import build_pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    for i, hw in enumerate([(120, 160), (96, 128), (150, 100)]):
        Image.fromarray(_noise(*hw, seed=10 + i)).save(folder / f"g{i}.png")
    pipe = build_pipeline(tiny_model_dir, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    settings = BatchSettings(model_dir=tiny_model_dir, formats=("obj",), people="detect", detector_dir=detector_dir,
                             max_people=2, min_score=0.0, device="cpu", backend="pytorch", precision="fp32").checked()
    outs = []
    for name, det in (("plain", plain), ("fast", fast)):
        out = tmp_path / name
        run_local(expand_inputs([str(folder)], out), settings, out, pipeline=pipe, detector=det, log=lambda m: None,
                  progress_out=io.StringIO())
        outs.append(lines(out))
    assert len([r for r in outs[0] if r["status"] == "ok"]) == 6
    assert_same_manifest(outs[0], outs[1])


class _Ops(TorchDispatchMode):
    """What reaches the kernels below the mode under test."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_capture_safe_turns_host_scalar_writes_into_fills():
    """RT-DETR's `spatial_shapes[level, 0] = height` is a copy from a host scalar, which a CUDA
    graph capture refuses; while capturing it becomes a fill of the same value (checked with a
    device the CPU has: a host scalar copied into a meta tensor)."""
    from sam3dbody_gui.runtime.detector_fast import CaptureSafe

    target = torch.zeros(3, 2, dtype=torch.long, device="meta")
    with _Ops() as seen, CaptureSafe(reads=[]):  # what `cuda_tensor[i, j] = int` dispatches to
        target[1, 0].copy_(torch.tensor(7))
    assert "aten.fill_.Scalar" in seen.names and "aten.copy_.default" not in seen.names
    host = torch.zeros(3, 2, dtype=torch.long)
    with CaptureSafe(reads=[]):
        host[1, 0] = 7  # same device: left as the copy it is
    assert host[1, 0].item() == 7


def test_capture_safe_answers_device_reads_from_the_warm_up():
    """Its shape checks read device values (`.item()`), which a capture cannot; the capture gets
    the warm-up's answers in order, and no read reaches the device (checked with the CPU standing
    in for the device: `host` is meta)."""
    from sam3dbody_gui.runtime.detector_fast import CaptureSafe

    shapes = torch.tensor([[20, 20], [10, 10], [5, 5]])

    def checks():
        return [bool(((shapes[:, 0] * shapes[:, 1]).sum() == 525).item()), int(shapes[1, 0].item())]

    with CaptureSafe(host=torch.device("meta")) as warm:
        want = checks()
    assert warm.recorded == want == [True, 10]
    with _Ops() as seen, CaptureSafe(warm.recorded, host=torch.device("meta")):
        got = checks()
    assert got == want and not {"aten.item.default", "aten._local_scalar_dense.default"} & set(seen.names)
    with CaptureSafe([True], host=torch.device("meta")), pytest.raises(RuntimeError, match="more device values"):
        checks()


def test_the_network_pass_under_the_capture_mode_gives_the_eager_outputs(fast):
    """The whole detector pass (network + batched selection) as the capture runs it: the reads
    answered from the warm-up, the host-scalar writes as fills — the same outputs as eager (the
    CPU standing in for the device: every CPU tensor counts as on the device)."""
    from sam3dbody_gui.runtime.detector_fast import CaptureSafe

    bucket = fast._buckets[fast.buckets[1]]
    with torch.inference_mode():
        want = fast._forward(bucket).clone()
        with CaptureSafe(host=torch.device("meta")) as warm:
            fast._forward(bucket)
        assert warm.recorded, "the network read no device values: the mode would not be needed"
        with _Ops() as seen, CaptureSafe(warm.recorded, host=torch.device("meta")):
            got = fast._forward(bucket)
    assert torch.equal(got, want)
    assert not {"aten.item.default", "aten._local_scalar_dense.default"} & set(seen.names)


def test_one_bucket_gives_a_photo_the_same_people_whatever_shares_its_call(plain):
    """A batch run's detector (load_batch_detector: one bucket of 8, padded) — a photo's people
    do not depend on its call's other photos or their number, and the check compares it at that
    batch size."""
    one_bucket = FastDetector(plain, "fp32", buckets=(8,))
    assert check_fast(one_bucket, plain) is None
    a, b, c = _noise(300, 500, 21), _smooth(480, 640), _noise(720, 1280, 22)
    alone = one_bucket.detect(c, min_score=0.5, max_people=None)
    for group in ([a, b, c], [c, a], [b, a, b, a, b, a, c]):
        where = next(i for i, photo in enumerate(group) if photo is c)
        assert one_bucket.detect_many(group, min_score=0.5, max_people=None)[where] == alone
