"""The person detector for batches on a GPU: several photos a call, little host time.

The plain detector (model/detector.py) costs 21-52 ms a call on an H200's host, whatever the
photo: PIL's resize, then transformers' eager RT-DETR (~1,000 small kernel launches), then the
selection on the host. In a batch run that made the detector the bottleneck (47 persons/s,
docs/bench/h200_people_notes.md). Here, for a batch of photos:

    upload     each photo's uint8 pixels through a reused pinned buffer, on our own stream
    resize     PIL's resize, bit for bit, on the device (detector_resize.py), into one static
               (bucket, 3, 640, 640) input; a bucket is 1, 2, 4 or 8 photos (padded up; a batch
               run's detector has the one bucket of 8: load_batch_detector says why)
    network    the same module, replayed as one CUDA graph per bucket (captured at load), under
               fp16 or bf16 autocast where that keeps the detections, else in fp32
    select     threshold, boxes and NMS batched in the same graph (select_people_batched), then
               one device->host copy; each photo's Detections built from the kept queries

Our own CUDA stream, captured with thread-local error mode: the engine's detector thread runs it
while the main thread runs the body model on the default stream; nothing here synchronises the
device, only this stream's last event.

It checks itself when it loads (detector_check.py: the same people as the plain fp32 path, boxes
and scores within tolerance, on three probe photos, one by one and as a batch), trying fp16,
then bf16, then fp32 (the fp32 graph replays the eager kernels: it matches exactly); if none
passes, or anything fails while building, the plain detector is used and one line says why.
On the CPU `load_batch_detector` gives the plain detector (the default there is unchanged); the
class itself also runs on the CPU (no graphs, fp32), which is how the tests check its logic.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..model.detector import PersonDetector, check_photo, load_detector
from ..model.detector_postprocess import (DEFAULT_MAX_PEOPLE, DEFAULT_MIN_SCORE, DEFAULT_NMS_IOU, Detections,
                                          check_settings, people_from_selection, select_people,
                                          select_people_batched)
from .detector_resize import DeviceResize

BUCKETS = (1, 2, 4, 8)  # photos a network call takes; the engine's DETECT_BATCH is the largest
BATCH_BUCKET = 8  # a batch run's one bucket (load_batch_detector): the engines' DETECT_BATCH
PRECISIONS = ("fp16", "bf16", "fp32")  # tried in this order on a GPU
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
_WARMUP = 3


_DEVICE_READS = (torch.ops.aten.item.default, torch.ops.aten._local_scalar_dense.default)  # `.item()`, either way


class CaptureSafe(TorchDispatchMode):
    """What transformers' RT-DETR does each call that a CUDA graph capture refuses, made safe for
    one bucket's fixed shapes:

    - it writes Python ints into a device tensor (`spatial_shapes[level, 0] = height`): a copy
      from an unpinned host scalar. Those are the bucket's feature-map sizes, so a fill with the
      value baked into the graph is the same thing;
    - it checks shapes with `.item()` (`torch_compilable_check(... .sum() == sequence_length)`):
      a device-to-host read, which a capture cannot make. With `reads` given (capturing), each
      read answers what the same read answered in the warm-up pass that recorded them (`reads`
      None: recording, into `.recorded`): with the shapes fixed, those checks cannot change.

    Only while warming up and capturing: a replay runs no Python. `host`: where a tensor is the
    host's (the tests move it to check the logic on a machine without a GPU)."""

    def __init__(self, reads: list | None = None, host: torch.device = torch.device("cpu")) -> None:
        super().__init__()
        self.host = host
        self.replaying = reads is not None
        self.recorded: list = [] if reads is None else list(reads)
        self._next = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _DEVICE_READS and args[0].device != self.host:
            if not self.replaying:
                value = func(*args, **kwargs)
                self.recorded.append(value)
                return value
            if self._next >= len(self.recorded):
                raise RuntimeError("the capture read more device values than the warm-up did")
            self._next += 1
            return self.recorded[self._next - 1]
        if self.replaying and func is torch.ops.aten.copy_.default:
            dst, src = args[0], args[1]
            if src.device == self.host and src.dim() == 0 and dst.device != self.host and not src.is_pinned():
                return dst.fill_(src.item())
        return func(*args, **kwargs)


class _Bucket:
    """One batch size's static buffers (and, on a GPU, its captured graph)."""

    def __init__(self, size: int, input_hw: tuple[int, int], device: torch.device) -> None:
        self.size = size
        self.pixels = torch.zeros(size, 3, *input_hw, device=device).contiguous(memory_format=torch.channels_last)
        self.photo_hw = torch.ones(size, 2, device=device)
        self.min_score = torch.zeros((), device=device)
        self.nms_iou = torch.zeros((), device=device)
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.out: Optional[torch.Tensor] = None


class FastDetector:
    """PersonDetector's interface (`detect`, `detect_many`, `folder`, `synthetic`, `found`), batched."""

    def __init__(self, plain: PersonDetector, precision: str = "fp32", graphs: Optional[bool] = None,
                 buckets: tuple[int, ...] = BUCKETS) -> None:
        if plain.dtype != torch.float32:
            raise ValueError("the fast detector runs the fp32 module (autocast gives the lower precisions)")
        spec = plain.found.preprocess
        self.plain, self.model, self.found, self.device = plain, plain.model, plain.found, plain.device
        self.precision = precision
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.buckets = tuple(sorted(buckets))
        self.resize = DeviceResize(self.device, spec.size_hw, spec.resample)
        # The normalisation's constants on the device once, not made from lists per photo.
        self._mean = None if spec.mean is None else torch.tensor(spec.mean, device=self.device)[:, None, None]
        self._std = None if spec.mean is None else torch.tensor(spec.std, device=self.device)[:, None, None]
        cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if cuda else None
        self._done = torch.cuda.Event() if cuda else None
        self._staging: list[torch.Tensor] = []  # a pinned upload buffer per slot (CUDA)
        self._host: Optional[torch.Tensor] = None  # pinned results
        self._buckets = {size: _Bucket(size, spec.size_hw, self.device) for size in self.buckets}
        if self.graphs:
            for bucket in self._buckets.values():
                self._capture(bucket)

    # -- what it is ------------------------------------------------------------------------
    @property
    def folder(self):
        return self.found.folder

    @property
    def synthetic(self) -> bool:
        return self.found.synthetic

    @property
    def label(self) -> str:
        how = "CUDA graphs" if self.graphs else "eager"
        return f"{how} per batch of {'/'.join(map(str, self.buckets))}, {self.precision}, resize on the device"

    def bucket_for(self, photos: int) -> int:
        """The batch size a call of `photos` photos (at most the largest bucket) runs at."""
        return next(size for size in self.buckets if size >= photos)

    # -- the network and the selection, static shapes --------------------------------------
    def _forward(self, bucket: _Bucket) -> torch.Tensor:
        """(size, 7Q + 1) float32: person logits, boxes (Q x 4), order, kept, settled."""
        dtype = _AUTOCAST.get(self.precision)
        ctx = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with ctx:
            out = self.model(pixel_values=bucket.pixels)
        logits = out.logits[..., self.found.person_id].float()
        boxes = out.pred_boxes.float()
        sel = select_people_batched(logits, boxes, bucket.photo_hw, bucket.min_score, bucket.nms_iou)
        return torch.cat([logits, boxes.flatten(1), sel["order"].float(), sel["kept"].float(),
                          sel["settled"].float()[:, None]], dim=1)

    def _capture(self, bucket: _Bucket) -> None:
        bucket.min_score.fill_(DEFAULT_MIN_SCORE)
        bucket.nms_iou.fill_(DEFAULT_NMS_IOU)
        with torch.cuda.stream(self.stream), torch.inference_mode():
            for _ in range(_WARMUP - 1):  # fills transformers' anchor and position caches, picks kernels
                self._forward(bucket)
            with CaptureSafe() as warm:  # the last warm-up records its device reads for the capture
                self._forward(bucket)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        # thread_local: the body model may be loading or running in another thread meanwhile
        with torch.inference_mode(), torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"), \
                CaptureSafe(warm.recorded):
            bucket.out = self._forward(bucket)
        bucket.graph = graph

    # -- photos in, Detections out ---------------------------------------------------------
    def _upload(self, slot: int, image: np.ndarray) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.from_numpy(image if image.flags.writeable and image.flags.c_contiguous else image.copy())
        while len(self._staging) <= slot:
            self._staging.append(torch.empty(0, dtype=torch.uint8, pin_memory=True))
        if self._staging[slot].numel() < image.size:
            self._staging[slot] = torch.empty(image.size, dtype=torch.uint8, pin_memory=True)
        staged = self._staging[slot][: image.size].view(image.shape)
        staged.numpy()[...] = image  # reused after this batch's event: the copy below is done by then
        return staged.to(self.device, non_blocking=True)

    def _prepare(self, bucket: _Bucket, images: list[np.ndarray], sizes: list[tuple[int, int]],
                 min_score: float, nms_iou: float) -> None:
        spec = self.found.preprocess
        for slot, image in enumerate(images):
            pixels = self.resize(self._upload(slot, image))[0]
            if spec.rescale is not None:
                pixels = pixels * spec.rescale
            if self._mean is not None:
                pixels = (pixels - self._mean.to(pixels.dtype)) / self._std.to(pixels.dtype)
            bucket.pixels[slot].copy_(pixels)
        bucket.photo_hw[: len(sizes)].copy_(torch.tensor(sizes, dtype=torch.float32), non_blocking=True)
        bucket.min_score.fill_(float(min_score))
        bucket.nms_iou.fill_(float(nms_iou))

    def _run(self, images: list[np.ndarray], sizes: list[tuple[int, int]], min_score: float,
             nms_iou: float) -> torch.Tensor:
        """Host (n, 7Q + 1) results of up to the largest bucket's photos."""
        bucket = self._buckets[self.bucket_for(len(images))]
        stream = torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()
        with stream, torch.inference_mode():
            self._prepare(bucket, images, sizes, min_score, nms_iou)
            if bucket.graph is not None:
                bucket.graph.replay()
                out = bucket.out[: len(images)]
            else:
                out = self._forward(bucket)[: len(images)]
            if self.stream is None:
                return out.clone()
            if self._host is None or self._host.numel() < out.numel():
                self._host = torch.empty(out.numel(), dtype=torch.float32, pin_memory=True)
            host = self._host[: out.numel()].view(out.shape)
            host.copy_(out, non_blocking=True)
            self._done.record(self.stream)
        self._done.synchronize()  # this stream only; releases the GIL while it waits
        return host.clone()

    def detect_many(self, images: list, min_score: float = DEFAULT_MIN_SCORE,
                    max_people: Optional[int] = DEFAULT_MAX_PEOPLE, nms_iou: float = DEFAULT_NMS_IOU,
                    photo_hw: Optional[list] = None) -> list[Detections]:
        """Each photo's Detections, as PersonDetector.detect gives them; the photos run in
        batches of up to the largest bucket. `photo_hw`: one size per photo (reduced copies)."""
        check_settings(min_score, nms_iou, max_people)
        for image in images:
            check_photo(image)
        sizes = [tuple(int(v) for v in (photo_hw[i] if photo_hw is not None else image.shape[:2]))
                 for i, image in enumerate(images)]
        found: list[Detections] = []
        step = self.buckets[-1]
        for start in range(0, len(images), step):
            chunk, chunk_sizes = images[start:start + step], sizes[start:start + step]
            host = self._run(chunk, chunk_sizes, min_score, nms_iou)
            q = (host.shape[1] - 1) // 7
            for row, size in zip(host, chunk_sizes):
                logits, boxes = row[:q], row[q:5 * q].view(q, 4)
                if row[7 * q] > 0.5:
                    order, kept = row[5 * q:6 * q].long(), row[6 * q:7 * q] > 0.5
                    found.append(people_from_selection(logits, boxes, order, kept, size, min_score, max_people))
                else:  # NMS needed more rounds than the graph has: the host's greedy loop
                    found.append(select_people(logits[:, None], boxes, size, 0, min_score, nms_iou, max_people))
        return found

    def detect(self, image: np.ndarray, min_score: float = DEFAULT_MIN_SCORE,
               max_people: Optional[int] = DEFAULT_MAX_PEOPLE, nms_iou: float = DEFAULT_NMS_IOU,
               photo_hw: Optional[tuple[int, int]] = None) -> Detections:
        return self.detect_many([image], min_score, max_people, nms_iou,
                                None if photo_hw is None else [photo_hw])[0]


def fast_detector(plain: PersonDetector, log: Callable[[str], None] = print,
                  precisions: tuple[str, ...] = PRECISIONS, graphs: Optional[bool] = None,
                  buckets: tuple[int, ...] = BUCKETS):
    """The first precision whose fast path passes the check against `plain`, or `plain` itself
    (one line through `log` says which, and why)."""
    from .detector_check import check_fast

    misses = []
    for precision in precisions:
        try:
            fast = FastDetector(plain, precision, graphs=graphs, buckets=buckets)
            why = check_fast(fast, plain)
        except Exception as exc:  # noqa: BLE001 - a fast path that cannot be built is a fast path we skip
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            fast = None
        if why is None:
            note = f" ({'; '.join(misses)})" if misses else ""
            log(f"person detector: fast path, {fast.label}; checked against the plain fp32 path{note}")
            return fast
        misses.append(f"{precision} missed: {why}")
        del fast
    log(f"person detector: the fast path is off ({'; '.join(misses)}); the plain fp32 path runs")
    return plain


def load_batch_detector(folder, device, log: Callable[[str], None] = print):
    """The detector a batch run uses: on a GPU the checked fast path (or the plain one it fell
    back to), on the CPU the plain one.

    One bucket, BATCH_BUCKET photos: every call runs at that batch size, padded. A photo's
    people then depend on the photo alone, not on which photos shared its call (a convolution's
    or a GEMM's rows come out the same bit for bit at one batch size, not across sizes). How a
    run groups photos depends on timing (the local engine takes what the readers have, Ray's
    blocks another way, a resumed run what is left): with several buckets, the same photo could
    come out with other people where scores tie, as the synthetic detector's do (an H200 run gave
    the local and Ray engines different people for some photos). A short call costs the full
    bucket (23 ms for 8 photos on the H200, 5.5 ms for one), only where the readers fall behind."""
    plain = load_detector(folder, device=device)
    if plain.device.type != "cuda":
        return plain
    return fast_detector(plain, log, buckets=(BATCH_BUCKET,))
