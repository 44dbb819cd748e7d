"""The body pass for several people on a GPU: one CUDA graph per batch-size bucket.

A graph has static shapes, so a batch of n people runs the graph of the smallest bucket ≥ n with
the batch padded by copies of its last row (rows are independent in the decoder, so padding never
changes a real row), and the first n rows of the outputs are returned. Buckets are captured on
first use — a capture is a few replays' work, not a compile — or all at once by `prepare()`.
Batches larger than the largest bucket run in bucket-sized chunks.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...model.crop_camera import CropCamera
from ...model.sam3d_body import SAM3DBody
from .decoder_graph import GraphedBodyDecoder

BUCKETS = (2, 4, 8, 16)


def bucket_for(n: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The smallest bucket that holds `n` rows (the largest bucket for more: chunked)."""
    for size in buckets:
        if n <= size:
            return size
    return buckets[-1]


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
