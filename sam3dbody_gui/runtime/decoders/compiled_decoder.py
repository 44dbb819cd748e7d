"""The body decoder pass compiled by TorchInductor, then captured as one CUDA graph.

Captured as it is (decoder_graph.py), a body pass replays ~2,800 small kernels: every
element-wise step of the heads, rotations, camera and keypoint update is its own kernel, and on
the GPU each costs a few microseconds however little it does. Compiling fuses those steps.

The MHR rig is TorchScript, which the compiler cannot look into: it compiles the pass in seven
pieces around the six rig calls, and the CUDA graph then holds all of it. (Converting the rig to
an FX graph with torch's TorchScript → ExportedProgram converter, so the pass compiles whole, was
measured on the H100: 6.6 ms instead of 6.1 for a bf16 pass, 2 GB more memory and a 150 s
compile: the rig's 127-joint kinematic chain stays a chain of small kernels either way.)

Compiling takes a minute, so the compile caches are saved to disk like the backbone's
(compiled_backend.py) and a later start reuses the kernels. The compiled pass is checked against
the eager one on inputs other than the capture's; `build_pipeline` falls back to the plain
captured pass if anything here fails, so this can cost start-up time, never correctness.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from ...model.sam3d_body import SAM3DBody
from ..compile_cache import cache_path, load_compile_cache, save_compile_cache
from ..compile_limits import allow_decoder_recompiles
from ..cuda_graph import capture
from .decoder_graph import GraphedDecoderPass, check_agreement, plausible_camera

CHECK_KEYS = ("pred_vertices", "pred_keypoints_2d", "pred_keypoints_3d", "pred_cam_t", "body_pose")
CHECK_RTOL = {torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 2e-2}

Progress = Callable[[str], None]


def decoder_cache_path(cache_dir: Path, model: SAM3DBody, device: torch.device) -> Path:
    """Where the compile caches of this pass live: one file per kind of pass, GPU and torch."""
    return cache_path(cache_dir, "body-decoder", device, config=repr(model.cfg), dtype=model.decoder_dtype)


class CompiledBodyDecoder(GraphedDecoderPass):
    label = "compiled + CUDA graph"

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, cache_dir: Path,
                 progress: Progress = lambda m: None) -> None:
        if device.type != "cuda":
            raise ValueError("the compiled decoder pass is captured as a CUDA graph: it needs a CUDA device")
        if model.mhr is None:
            raise RuntimeError("the MHR rig is not attached")
        side = crop_size // model.patch_size
        dtype = model.decoder_dtype
        self.features = torch.randn(1, model.feature_dim, side, side, device=device, dtype=dtype,
                                    generator=torch.Generator(device).manual_seed(0))
        self.camera = plausible_camera(crop_size, device)
        t0 = time.perf_counter()
        self.cache_file = decoder_cache_path(cache_dir, model, device)
        self.from_cache = load_compile_cache(self.cache_file)
        if self.from_cache:
            progress(f"loaded the compiled decoder from the cache ({self.cache_file.name})")
        else:
            progress("compiling the decoder (one time, about a minute)")
        # The rig is TorchScript: the compiler leaves its six calls as they are (graph breaks) and
        # fuses everything between them.
        allow_decoder_recompiles()
        self.compiled = torch.compile(model.decode_body, dynamic=False)
        with torch.inference_mode():
            self.compiled(self.features, self.camera)  # compile here, outside the capture
        torch.cuda.synchronize(device)
        if not self.from_cache:
            save_compile_cache(self.cache_file)
        self.graph, self.outputs = capture(lambda: self.compiled(self.features, self.camera), device)
        self.compile_seconds = time.perf_counter() - t0
        self._check(model, crop_size, device)
        progress(f"decoder ready in {self.compile_seconds:.0f} s ({'from cache' if self.from_cache else 'compiled'})")

    def _check(self, model: SAM3DBody, crop_size: int, device: torch.device) -> None:
        """Replay vs eager on inputs the capture did not see (an input baked into the graph would show)."""
        with torch.inference_mode():
            features = torch.roll(self.features, shifts=3, dims=-1) * 0.7
            cam = plausible_camera(crop_size, device)
            cam.box_center[0, 0] += crop_size * 0.1
            cam.box_size.mul_(1.2)
            want = model.decode_body(features, cam)
            got = self(features, cam)
            torch.cuda.synchronize(device)
        check_agreement(got, want, CHECK_KEYS, CHECK_RTOL.get(model.decoder_dtype, 5e-2), "compiled decoder")

