"""Full mode's passes compiled by TorchInductor and captured as CUDA graphs, fed through static inputs.

`StaticPass` is the one mechanism behind full mode's fast path (the hand-decoder pass here, the
body re-run in compiled_hand_refine.py): a function of a few tensors (dicts of tensors allowed)
is compiled (optional), run once outside the capture (the compile happens there), captured as
one CUDA graph, and checked against the plain function on other inputs than the capture's (an
input baked into the graph, or a compile that changed the numbers, would show). Off CUDA there is
no capture: the (compiled) function runs on the static copies, which is how the CPU tests cover
the logic.

Why: captured as they are, the hand pass and the re-run replay thousands of small kernels (the
same as the body pass, compiled_decoder.py); compiling fuses the element-wise steps between the
TorchScript rig calls. Compiling takes a while, so the caches are kept on disk like the body
pass's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils._pytree import tree_flatten, tree_map

from ...model import full_mode
from ...model.crop_camera import CropCamera
from ...model.sam3d_body import SAM3DBody
from ..compile_cache import cache_path, load_compile_cache, save_compile_cache
from ..compile_limits import allow_decoder_recompiles
from ..cuda_graph import capture
from .decoder_graph import CAMERA_FIELDS, check_agreement

Progress = Callable[[str], None]
# Compiled (bf16) vs eager at the same precision: as the body pass (compiled_decoder.py).
COMPILED_RTOL = {torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 2e-2}
CAPTURED_RTOL = 1e-3  # a plain capture replays the eager kernels: far tighter in practice
HAND_CHECK_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "hand", "scale", "wrist_rotation")


def camera_fields(cam: CropCamera) -> dict[str, torch.Tensor]:
    return {name: getattr(cam, name) for name in CAMERA_FIELDS}


def check_rtol(dtype: torch.dtype, compiled: bool) -> float:
    return COMPILED_RTOL.get(dtype, 5e-2) if compiled else CAPTURED_RTOL


class StaticPass:
    """`fn(*inputs)` replayed from static copies of `example`'s tensors: compiled first when
    `compile_backend` is set ("inductor" on the GPU; "aot_eager" lets the CPU tests trace it),
    captured as one CUDA graph on CUDA. Call it with inputs of the example's structure and
    shapes; its outputs are static buffers the next call overwrites."""

    def __init__(self, fn: Callable, example: tuple, device: torch.device, compile_backend: str | None = None) -> None:
        self.eager = fn
        self.compiled = compile_backend is not None
        if self.compiled:
            allow_decoder_recompiles()
        self.fn = torch.compile(fn, dynamic=False, backend=compile_backend) if self.compiled else fn
        self.inputs = tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, example)
        self._leaves = tree_flatten(self.inputs)[0]
        with torch.inference_mode():
            outputs = self.fn(*self.inputs)  # the compile happens here, outside the capture
        self.graph = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            self.graph, outputs = capture(lambda: self.fn(*self.inputs), device)
        self.outputs = outputs

    def __call__(self, *inputs):
        leaves = tree_flatten(inputs)[0]
        if len(leaves) != len(self._leaves):
            raise ValueError("inputs do not have the structure this pass was captured with")
        with torch.inference_mode():
            for static, value in zip(self._leaves, leaves):
                if isinstance(static, torch.Tensor):
                    if static.shape != value.shape:  # copy_ would broadcast some silently
                        raise ValueError(f"input of shape {tuple(value.shape)} for a pass captured with "
                                         f"{tuple(static.shape)}")
                    static.copy_(value)
            if self.graph is None:
                return self.fn(*self.inputs)
            self.graph.replay()
            return self.outputs

    def check(self, inputs: tuple, keys: tuple[str, ...], rtol: float, what: str) -> None:
        """Raise unless a call on `inputs` (not the capture's) matches the plain function on them."""
        with torch.inference_mode():
            want = self.eager(*inputs)
            got = self(*inputs)
            if self._leaves and isinstance(self._leaves[0], torch.Tensor) and self._leaves[0].is_cuda:
                torch.cuda.synchronize(self._leaves[0].device)
        check_agreement(got, want, keys, rtol, what)


def hand_cameras(n: int, crop_size: int, device: torch.device) -> CropCamera:
    """Plausible hand-crop cameras (values only shape the warm-up and the checks)."""
    focal = crop_size * 2.8
    return CropCamera(
        box_center=torch.tensor([[crop_size * 0.4, crop_size * 0.55]] * n, device=device),
        box_size=torch.tensor([crop_size * 0.3] * n, device=device),
        affine=torch.tensor([[[3.3, 0.0, -420.0], [0.0, 3.3, -660.0]]] * n, device=device),
        intrinsics=torch.tensor([[[focal, 0, crop_size / 2], [0, focal, crop_size / 2], [0, 0, 1]]] * n, device=device),
        crop_size=crop_size,
    )


def hand_example(model: SAM3DBody, crop_size: int, device: torch.device, seed: int = 0
                 ) -> tuple[torch.Tensor, CropCamera]:
    """Hand-crop features (2, C, h, w) of one person and their cameras, for captures and checks."""
    side = crop_size // model.patch_size
    features = torch.randn(2, model.feature_dim, side, side, device=device, dtype=model.decoder_dtype,
                           generator=torch.Generator(device).manual_seed(seed))
    cams = hand_cameras(2, crop_size, device)
    cams.box_center[0, 0] += crop_size * 0.1 * seed
    cams.box_size[-1] *= 1.0 + 0.3 * seed
    return features, cams


class CompiledHandPass:
    """`decode_hands` for one person (its two hand crops), compiled + captured (or, with
    `compile_backend` None, only captured), checked against the eager pass at construction."""

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, cache_dir: Path | None,
                 progress: Progress = lambda m: None, compile_backend: str | None = "inductor") -> None:
        if model.mhr is None:
            raise RuntimeError("the MHR rig is not attached")
        self.crop_size = crop_size
        t0 = time.perf_counter()
        compiled = compile_backend is not None
        self.label = "compiled + CUDA graph" if compiled else "CUDA graph"
        self.cache_file = self.from_cache = None
        if compiled and cache_dir is not None:
            self.cache_file = cache_path(cache_dir, "hand-decoder", device, config=repr(model.cfg),
                                         dtype=model.decoder_dtype)
            self.from_cache = load_compile_cache(self.cache_file)
        if compiled:
            progress(f"{'loading' if self.from_cache else 'compiling'} full mode's hand decoder")

        def run(features: torch.Tensor, cam: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return full_mode.decode_hands(model, features, CropCamera(crop_size=crop_size, **cam))

        features, cams = hand_example(model, crop_size, device)
        self.graph = StaticPass(run, (features, camera_fields(cams)), device, compile_backend)
        if self.cache_file is not None and not self.from_cache:
            save_compile_cache(self.cache_file)
        features, cams = hand_example(model, crop_size, device, seed=1)
        self.graph.check((features, camera_fields(cams)), HAND_CHECK_KEYS, check_rtol(model.decoder_dtype, compiled),
                         f"{self.label} hand decoder")
        self.seconds = time.perf_counter() - t0

    def __call__(self, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
        return self.graph(features, camera_fields(cams))
