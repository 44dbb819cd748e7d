"""The body pass for several people on a GPU: one CUDA graph per batch-size bucket.

A graph has static shapes, so a batch of n people runs the graph of the smallest bucket ≥ n with
the batch padded by copies of its last row (rows are independent in the decoder, so padding never
changes a real row), and the first n rows of the outputs are returned. Buckets are captured on
first use — a capture is a few replays' work, not a compile — or all at once by `prepare()`
(which `batch_decoder_for` calls at load). Batches larger than the largest bucket run in
bucket-sized chunks. One person is not a bucket here: the pipeline runs it through its
single-person pass (compiled_decoder.py / decoder_graph.py), the "bucket of 1".

`CompiledBucketedBodyDecoder` is the same with the pass compiled by TorchInductor first (like
the single-person compiled pass: the ~2,800 small kernels of a captured eager pass fused into a
few hundred), compiled with the batch size dynamic (one compile serves the buckets, a piece or
two recompiling on the way), every bucket's graph captured from it, all at load, the kernels
cached on disk, and each bucket checked against the eager pass on inputs its capture did not see.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ...model.crop_camera import CropCamera
from ...model.sam3d_body import SAM3DBody
from ..compile_cache import cache_path, load_compile_cache, save_compile_cache
from ..compile_limits import allow_decoder_recompiles
from ..cuda_graph import capture
from .decoder_graph import CAMERA_FIELDS, GraphedBodyDecoder, GraphedDecoderPass, check_agreement, plausible_camera

Progress = Callable[[str], None]

BUCKETS = (2, 4, 8, 16)


def bucket_for(n: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The smallest bucket that holds `n` rows (the largest bucket for more: chunked)."""
    for size in buckets:
        if n <= size:
            return size
    return buckets[-1]


# Rows the eager reference of a bucket's check decodes at a time. Rows are independent, and the
# eager pass's intermediates grow with the rows: at 16 they set the fast path's peak GPU memory
# (2.30 → 2.66 GiB on the H200 while the buckets were checked; on this CPU, fp32, the eager pass
# of 16 rows rose the peak by 337 MB, of 4 rows by nothing over one row's).
CHECK_ROWS = 4


def eager_reference(model: SAM3DBody, features: torch.Tensor, cam: CropCamera,
                    rows: int = CHECK_ROWS) -> dict[str, torch.Tensor]:
    """`model.decode_body(features, cam)` run `rows` rows at a time, the outputs joined."""
    parts = [model.decode_body(features[i:i + rows], cam.rows(slice(i, i + rows)))
             for i in range(0, features.shape[0], rows)]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    if t.shape[0] == rows:
        return t
    return torch.cat([t, t[-1:].expand(rows - t.shape[0], *t.shape[1:])])


class BucketedBodyDecoder:
    label = "CUDA graph per batch size"

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device,
                 buckets: Sequence[int] = BUCKETS) -> None:
        self.model, self.crop_size, self.device = model, crop_size, device
        self.buckets = tuple(sorted(buckets))
        self._graphs: dict[int, GraphedBodyDecoder] = {}

    def _graph(self, size: int) -> GraphedBodyDecoder:
        if size not in self._graphs:
            side = self.crop_size // self.model.patch_size
            self._graphs[size] = GraphedBodyDecoder(self.model, (size, self.model.feature_dim, side, side),
                                                    self.model.decoder_dtype, self.crop_size, self.device)
        return self._graphs[size]

    def prepare(self) -> None:
        """Capture every bucket now (at model load), so no batch size waits for one later."""
        for size in self.buckets:
            self._graph(size)

    def _run(self, features: torch.Tensor, cam: CropCamera) -> dict[str, torch.Tensor]:
        n = features.shape[0]
        size = bucket_for(n, self.buckets)
        graph = self._graph(size)
        padded = CropCamera(crop_size=cam.crop_size, **{
            name: pad_rows(getattr(cam, name), size) for name in ("box_center", "box_size", "affine", "intrinsics")})
        outputs = graph(pad_rows(features, size), padded)
        # Copies: the graph's buffers are overwritten by its next replay (the next chunk).
        return {key: value[:n].clone() for key, value in outputs.items()}

    def __call__(self, features: torch.Tensor, cam: CropCamera) -> dict[str, torch.Tensor]:
        n, largest = features.shape[0], self.buckets[-1]
        if n <= largest:
            return self._run(features, cam)
        parts = [self._run(features[i:i + largest], cam.rows(slice(i, i + largest))) for i in range(0, n, largest)]
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


class _CompiledBucket(GraphedDecoderPass):
    """One bucket of the compiled pass: its static inputs (batch marked dynamic, so every bucket
    shares one compile) and the CUDA graph captured from the compiled code."""

    def __init__(self, run: Callable, model: SAM3DBody, size: int, crop_size: int, device: torch.device) -> None:
        side = crop_size // model.patch_size
        self.features = torch.randn(size, model.feature_dim, side, side, device=device, dtype=model.decoder_dtype,
                                    generator=torch.Generator(device).manual_seed(size))
        self.camera = plausible_camera(crop_size, device).rows([0] * size)
        # "maybe": the pieces after each rig call (a graph break) see tensors the rig made, of a
        # fixed size at first; they turn dynamic at the next bucket (automatic dynamic shapes).
        # A few pieces compile once more on the way (seen on the CPU: one at batch 16); all here.
        for t in (self.features, *(getattr(self.camera, name) for name in CAMERA_FIELDS)):
            torch._dynamo.maybe_mark_dynamic(t, 0)
        with torch.inference_mode():
            run(self.features, self.camera)  # compiles (first bucket) or reuses the compile; outside the capture
        torch.cuda.synchronize(device)
        self.graph, self.outputs = capture(lambda: run(self.features, self.camera), device)


def batched_decoder_cache_path(cache_dir: Path, model: SAM3DBody, device: torch.device,
                               buckets: Sequence[int]) -> Path:
    return cache_path(cache_dir, "body-decoder-batched", device, config=repr(model.cfg), dtype=model.decoder_dtype,
                      buckets=tuple(buckets), dynamic="batch")


class CompiledBucketedBodyDecoder(BucketedBodyDecoder):
    label = "compiled + CUDA graph per batch size"

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, cache_dir: Path,
                 progress: Progress = lambda m: None, buckets: Sequence[int] = BUCKETS) -> None:
        if device.type != "cuda":
            raise ValueError("the compiled batched decoder is captured as CUDA graphs: it needs a CUDA device")
        if model.mhr is None:
            raise RuntimeError("the MHR rig is not attached")
        super().__init__(model, crop_size, device, buckets)
        t0 = time.perf_counter()
        self.cache_file = batched_decoder_cache_path(cache_dir, model, device, self.buckets)
        self.from_cache = load_compile_cache(self.cache_file)
        progress(f"{'loading' if self.from_cache else 'compiling'} the decoder for several people at once "
                 f"(batches of {', '.join(map(str, self.buckets))})")
        # One compile, the batch size dynamic; the rig (TorchScript) stays as it is between the
        # fused pieces, as in the single-person pass.
        allow_decoder_recompiles()
        self.compiled = torch.compile(model.decode_body, dynamic=None)
        for size in self.buckets:
            self._graphs[size] = _CompiledBucket(self.compiled, model, size, crop_size, device)
        if not self.from_cache:
            save_compile_cache(self.cache_file)
        for size in self.buckets:
            self._check(size)
        self.compile_seconds = time.perf_counter() - t0
        progress(f"batched decoder ready in {self.compile_seconds:.0f} s")

    def _graph(self, size: int) -> GraphedDecoderPass:
        return self._graphs[size]  # all made at start: never a compile in front of the user

    def _check(self, size: int) -> None:
        """Each bucket's replay vs the eager pass, on rows the capture did not see."""
        from .compiled_decoder import CHECK_KEYS, CHECK_RTOL

        bucket = self._graphs[size]
        with torch.inference_mode():
            features = torch.roll(bucket.features, shifts=3, dims=-1) * 0.7
            cam = plausible_camera(self.crop_size, self.device).rows([0] * size)
            cam.box_center[:, 0] += torch.linspace(-0.2, 0.2, size, device=self.device) * self.crop_size
            cam.box_size.mul_(torch.linspace(0.8, 1.3, size, device=self.device))
            want = eager_reference(self.model, features, cam)
            got = bucket(features, cam)
            torch.cuda.synchronize(self.device)
        check_agreement(got, want, CHECK_KEYS, CHECK_RTOL.get(self.model.decoder_dtype, 5e-2),
                        f"compiled batched decoder (batch {size})")
