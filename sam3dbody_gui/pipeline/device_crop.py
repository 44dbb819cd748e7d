"""Backbone crops made on the GPU from a photo uploaded once.

Dragging a box re-crops the same photo many times, so the photo goes to the device once and
each crop is a gather there (the integer warp of preprocess.py, bit-identical to OpenCV).
Every crop of a photo (all its people; full mode's hands, the left ones mirrored) is made in
one go: their sampling positions travel in one host→device copy and one batched warp +
normalisation makes all of them. Eager, that warp is ~80 small kernels (~1 ms on an H100,
more on the host) whatever the number of crops; with `compiled` it is fused by torch.compile
(shapes dynamic: one compile serves every photo size and number of crops; a single crop is a
second, specialised compile, also made at start) into a few kernels. If compiling fails, the
eager warp is used and `status` says why.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .preprocess import CropGeometry, position_parts_batch, warp_integer_positions_batch


def normalized_crops(image: torch.Tensor, parts: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) float32 (crop / 255 - mean) / std, from the uint8 photo and the crops'
    `position_parts_batch` (N, 5, S)."""
    crops = warp_integer_positions_batch(image, parts).permute(0, 3, 1, 2).float() / 255.0
    return (crops - mean) / std


def _sizes_never_assumed_equal():
    """torch.compile assumes sizes that were equal stay equal ("duck shaping"): a square photo,
    or one of the crop's size, would compile again (seconds, mid-drag). Off for the crop."""
    try:
        from torch.fx.experimental import _config

        return _config.patch(use_duck_shape=False)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


class DeviceCropper:
    def __init__(self, device: torch.device, mean: Sequence[float], std: Sequence[float], compiled: bool = False,
                 cache_dir: Path | None = None) -> None:
        """`compiled`: fuse the warp with torch.compile; its kernels are kept under `cache_dir`."""
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise ValueError(f"mean/std must pair up and std be positive, got {list(mean)} / {list(std)}")
        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).reshape(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).reshape(-1, 1, 1)
        self._photo_ref: weakref.ref | None = None
        self._photo: torch.Tensor | None = None
        self._run = normalized_crops
        self._sizes = contextlib.nullcontext  # the compiled crop swaps in _sizes_never_assumed_equal
        self.status = "eager"
        if compiled:
            self._compile(cache_dir)

    def _compile(self, cache_dir: Path | None) -> None:
        from ..runtime.compile_cache import cache_path, load_compile_cache, save_compile_cache

        cache_file = None if cache_dir is None else cache_path(cache_dir, "crop", self.device, version=2)
        from_cache = cache_file is not None and load_compile_cache(cache_file)
        compiled = torch.compile(normalized_crops, dynamic=True, fullgraph=True)
        # Warm up on a photo whose sides differ from each other and from the crop's, for one crop
        # (sizes of 1 are specialised: a compile of its own) and for several.
        # Inputs made as crops() makes them: inference tensors, whatever mode the caller is in.
        # Another dispatch key set is new to the guards: a recompile (~1 s on an H200) at the
        # first photo, and again at the first several crops (full mode's hands).
        try:
            with torch.inference_mode(), _sizes_never_assumed_equal():
                photo = torch.zeros(97, 131, 3, dtype=torch.uint8, device=self.device)
                for count in (1, 3):
                    compiled(photo, torch.zeros(count, 5, 61, dtype=torch.int64, device=self.device), self.mean,
                             self.std)
        except Exception as exc:  # noqa: BLE001 - a compile problem costs speed, not the crop
            self.status = f"eager (compiling the crop failed: {type(exc).__name__})"
            return
        if cache_file is not None and not from_cache:
            save_compile_cache(cache_file)
        self._run, self._sizes = compiled, _sizes_never_assumed_equal
        self.status = "compiled"

    def forget(self) -> None:
        self._photo_ref = self._photo = None

    def _on_device(self, image: np.ndarray) -> torch.Tensor:
        # The same array object (alive, hence not a new photo at a recycled address) is the same photo.
        if self._photo_ref is None or self._photo_ref() is not image:
            self._photo = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            self._photo_ref = weakref.ref(image)
        return self._photo

    def crops(self, image: np.ndarray, geoms: Sequence[CropGeometry], mirrored: Sequence[bool] | None = None
              ) -> torch.Tensor:
        """The normalised crops (N, C, S, S) of `image` ((H, W, C) uint8) that `geoms` describe,
        on the device, in one batch; `mirrored[i]`: crop i is of the photo flipped left-right
        (its geometry is in the flipped photo's pixels). Each crop equals the one made alone."""
        mirrored = [False] * len(geoms) if mirrored is None else list(mirrored)
        # Both inputs made in inference mode, as at the warm-up: a caller inside inference mode
        # (the pipeline's runs) and one outside (a drag's preview) then pass the same guards.
        with torch.inference_mode(), self._sizes():
            photo = self._on_device(image)
            parts = torch.from_numpy(position_parts_batch(geoms, mirrored)).to(self.device)
            return self._run(photo, parts, self.mean, self.std)

    def __call__(self, image: np.ndarray, geom: CropGeometry, mirrored: bool = False) -> torch.Tensor:
        """The normalised crop (1, C, S, S) of `image` ((H, W, C) uint8; `mirrored`: flipped
        left-right) that `geom` describes, on the device."""
        return self.crops(image, [geom], [mirrored])
