"""Does the fast detector find what the plain one finds? The load-time check of detector_fast.py.

The plain path (model/detector.py: PIL resize on the host, the network in fp32, eager, the
selection on the host) is the reference. On each probe photo, the fast path's people and the
reference's are paired one to one:

    boxes    every coordinate within BOX_TOL_INPUT_PX pixels of the network's 640x640 input
             (2 px: 0.3 % of the photo's side; the network's boxes are fractions of that input,
             and its finest feature map has a stride of 8 input pixels, so two pixels is well
             under what it resolves; on a 1080p photo, 6 px across and 3.4 px down)
    scores   within SCORE_TOL (0.02) of the reference's

What must pair: each side's first CHECK_TOP people (the default cap, DEFAULT_MAX_PEOPLE: the
people a run gets) with people among the other side's first 2 x CHECK_TOP, except a person whose
score is within SCORE_TOL of the threshold (rounding may put it on either side). So two people
whose scores are closer than the rounding may swap places, or trade the last places of the cap,
without failing; a person moved, lost or made up among the first CHECK_TOP fails. Not compared:
the people past the cap, and the count when they differ only there. Why not everything: where
scores tie (the synthetic detector scores every query ~0.98, and the anchors outside the photo
score exactly alike), which of two tied queries the top-k or the NMS keeps is up to the kernel
(a GPU's top-k picks among exact ties by its own order, graphs or not); a check of all ~280
synthetic people failed even the fp32 graphs on an H200, which replay the eager kernels.

The reference runs the plain path at the batch size the fast path runs (four probes, then the
first alone, each padded with black photos up to the fast path's bucket), as the engine ran the
plain detector before (batched, photo_work.detect_many): batch size changes a convolution's
rounding in the last bits.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..model.detector_postprocess import DEFAULT_MAX_PEOPLE, DEFAULT_MIN_SCORE, Detections

BOX_TOL_INPUT_PX = 2.0
SCORE_TOL = 0.02
CHECK_TOP = DEFAULT_MAX_PEOPLE


def probe_photos() -> list[np.ndarray]:
    """Four photos of the shapes a batch meets: the bundled portrait as it is (512x512), stretched
    to 1080p landscape, mirrored and stretched to 720x1280 portrait, and a 4:3 corner of it."""
    from PIL import Image

    from ..bundled import sample_image_path

    with Image.open(sample_image_path()) as photo:
        base = np.asarray(photo.convert("RGB"))
    wide = np.asarray(Image.fromarray(base).resize((1920, 1080), Image.BILINEAR))
    tall = np.asarray(Image.fromarray(np.ascontiguousarray(base[:, ::-1])).resize((720, 1280), Image.BILINEAR))
    corner = np.ascontiguousarray(base[: base.shape[0] * 3 // 4])
    return [np.ascontiguousarray(base), wide, tall, corner]


def plain_batch(plain, photos: list[np.ndarray], min_score: float = DEFAULT_MIN_SCORE,
                max_people: Optional[int] = None) -> list[Detections]:
    """The plain path on `photos` as one batch: PIL, the fp32 module eagerly, select_people."""
    from ..model.detector_postprocess import DEFAULT_NMS_IOU, select_people

    with torch.inference_mode():
        # channels_last, as `prepare` gives one photo (a plain cat would be NCHW: other kernels)
        pixels = torch.cat([plain.prepare(p) for p in photos]).contiguous(memory_format=torch.channels_last)
        out = plain.model(pixel_values=pixels)
        logits, boxes = out.logits.float().cpu(), out.pred_boxes.float().cpu()
    return [select_people(logits[i], boxes[i], tuple(p.shape[:2]), plain.found.person_id, min_score,
                          DEFAULT_NMS_IOU, max_people) for i, p in enumerate(photos)]


def compare_detections(ref: Detections, got: Detections, photo_hw: tuple[int, int],
                       top: int = CHECK_TOP) -> Optional[str]:
    """None when `got` finds the people `ref` finds (the first `top` of each, within the
    tolerances; see the module's docstring), else why not."""
    h, w = photo_hw
    tol = torch.tensor([w, h, w, h], dtype=torch.float64) * BOX_TOL_INPUT_PX / 640.0
    for name, want, have in (("plain", ref, got), ("fast", got, ref)):
        why = _unpaired(want.people[:top], have.people[: 2 * top], ref.min_score, tol)
        if why:
            return f"person {why[0]} of the {name} path has no match{why[1]}"
    return None


def _unpaired(want: list, have: list, min_score: float, tol: torch.Tensor) -> Optional[tuple[int, str]]:
    """The first decisive person of `want` with no free partner in `have` (greedy, in rank
    order; its own rank first), with how near the nearest came; None when all pair."""
    decisive = [i for i, p in enumerate(want) if p.score >= min_score + SCORE_TOL]
    if not decisive:
        return None
    if not have:
        return decisive[0], " (the other path found nobody)"
    a = torch.tensor([p.box_xyxy for p in want], dtype=torch.float64)
    b = torch.tensor([p.box_xyxy for p in have], dtype=torch.float64)
    sa = torch.tensor([p.score for p in want], dtype=torch.float64)
    sb = torch.tensor([p.score for p in have], dtype=torch.float64)
    # (N, M): how far each pair is, in tolerances (<= 1: the same person)
    far = torch.maximum(((a[:, None] - b[None]).abs() / tol).amax(-1), (sa[:, None] - sb[None]).abs() / SCORE_TOL)
    free = torch.ones(len(b), dtype=torch.bool)
    for i in decisive:
        j = i if i < len(b) and free[i] and far[i, i] <= 1 else int(torch.where(free, far[i], torch.inf).argmin())
        if not free[j] or far[i, j] > 1:
            box_px = float((a[i] - b[j]).abs().max())
            return i, (f" (nearest: box {box_px:.1f} px off, score {abs(float(sa[i] - sb[j])):.3f} off; "
                       f"allowed {float(tol.max()):.1f} px, {SCORE_TOL})")
        free[j] = False
    return None


def check_fast(fast, plain, photos: Optional[list[np.ndarray]] = None) -> Optional[str]:
    """None when `fast` matches `plain` on every probe photo, as one batch and the first alone;
    else the first difference, in words."""
    photos = probe_photos() if photos is None else photos
    ref = plain_batch(plain, padded(photos, fast.bucket_for(len(photos))))
    batch = fast.detect_many(photos, min_score=DEFAULT_MIN_SCORE, max_people=None)
    for k, (photo, want, got) in enumerate(zip(photos, ref, batch)):
        why = compare_detections(want, got, photo.shape[:2])
        if why:
            return f"probe {k} ({photo.shape[1]}x{photo.shape[0]}, in a batch of {len(photos)}): {why}"
    alone = fast.detect(photos[0], min_score=DEFAULT_MIN_SCORE, max_people=None)
    why = compare_detections(plain_batch(plain, padded(photos[:1], fast.bucket_for(1)))[0], alone,
                             photos[0].shape[:2])
    return f"probe 0 alone: {why}" if why else None


def padded(photos: list[np.ndarray], size: int) -> list[np.ndarray]:
    """`photos` and black ones up to `size`: the reference at the batch size the fast path runs
    (its padding slots hold other pixels, which no row of the network mixes into a photo's)."""
    return list(photos) + [np.zeros_like(photos[0])] * (size - len(photos))
