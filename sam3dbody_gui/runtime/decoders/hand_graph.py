"""Full mode's GPU passes: the hand-decoder pass (both hands, 6 layers, 6 MHR calls) and the body
re-run, as CUDA graphs, compiled first where the body pass is.

Same idea as decoder_graph.py / compiled_decoder.py for the body pass: `decode_hands` has static
shapes (two crops per person), no host syncs and no host-made tensors, so it is captured once and
replayed; the re-run (`refine_body`) is captured per number of kept prompts
(compiled_hand_refine.py). With `compiled`, both are compiled by TorchInductor first (kernels
cached on disk). Everything is made by `prepare()` — the window calls it while the model loads,
so its first full-mode run pays nothing; otherwise the first full-mode run does. Each piece is
checked against eager on inputs other than its capture's and falls back: compiled → captured →
eager, with `status` / `refine_status` saying why, so a problem costs speed, never correctness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ...model import full_mode
from ...model.crop_camera import CropCamera
from ...model.full_mode import HandChecks
from ...model.sam3d_body import SAM3DBody
from .compiled_hand_pass import CompiledHandPass
from .compiled_hand_refine import CompiledRefinement

Progress = Callable[[str], None]


class LazyHandDecoder:
    """The hand-decoder pass a pipeline runs (`__call__`) and its body re-run (`refine`): CUDA
    graphs when `graph` is set and the device is CUDA (compiled too with `compiled`), else eager.
    `fallback` False: a failed compile raises instead (benchmarks)."""

    compile_backend = "inductor"
    needs_cuda = True  # the tests lift both (aot_eager on the CPU) to run the same plumbing without a GPU

    def __init__(self, model: SAM3DBody, crop_size: int, device: torch.device, graph: bool, compiled: bool = False,
                 cache_dir: Path | None = None, progress: Progress = lambda m: None, fallback: bool = True) -> None:
        self.model = model
        self.crop_size = crop_size
        self.device = device
        self.want_graph = graph and device.type == "cuda"
        self.compiled = compiled and self.want_graph
        self.cache_dir = cache_dir
        self.progress = progress
        self.fallback = fallback
        self._graphed: CompiledHandPass | None = None
        self._refiner: CompiledRefinement | None = None
        self._prepared = False
        pending = "(made on the first full-mode run or at load)"
        self.status = f"{'compiled + ' if self.compiled else ''}CUDA graph {pending}" if self.want_graph else "eager"
        self.refine_status = f"{'compiled + ' if self.compiled else ''}CUDA graphs {pending}" if self.want_graph \
            else "eager"

    def _eager(self, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
        return full_mode.decode_hands(self.model, features, cams)

    def _build(self, make: Callable[[str | None], object], what: str):
        """`make(compile_backend)`: compiled first (if wanted), then only captured; (object, status)."""
        failures = []
        for backend in ((self.compile_backend, None) if self.compiled else (None,)):
            try:
                if self.needs_cuda and self.device.type != "cuda":
                    raise ValueError("CUDA graphs need a CUDA device")
                made = make(backend)
                return made, made.label + (f" (compiled {failures[0]})" if failures else "")
            except Exception as exc:  # noqa: BLE001 - any compile/capture problem: stay correct, go slower
                if backend is not None and not self.fallback:
                    raise
                failures.append(f"failed: {type(exc).__name__}: {exc}")
                self.progress(f"{'compiled' if backend else 'captured'} {what} unavailable "
                              f"({type(exc).__name__}: {exc})")
        return None, f"eager (CUDA graph capture {failures[-1]})"

    def prepare(self) -> bool:
        """Make the passes now (compile, capture, check); whether the hand pass is a graph.
        Idempotent; eager where no graph is wanted."""
        if self.want_graph and not self._prepared:
            self._prepared = True
            cache, say = self.cache_dir, self.progress
            self._graphed, self.status = self._build(
                lambda backend: CompiledHandPass(self.model, self.crop_size, self.device, cache, say, backend),
                "hand decoder")
            self._refiner, self.refine_status = self._build(
                lambda backend: CompiledRefinement(self.model, self.crop_size, self.device, cache, say, backend),
                "body re-run")
            if self._graphed is None:
                self.want_graph = False
        return self._graphed is not None

    def __call__(self, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
        if not self.want_graph or features.shape[0] != 2:
            return self._eager(features, cams)
        if not self.prepare():
            return self._eager(features, cams)
        return self._graphed(features, cams)

    def refine(self, model: SAM3DBody, body: dict, body_features: torch.Tensor, cam: CropCamera, hands: dict,
               hand_cams: CropCamera, image_width: int, checks: HandChecks = HandChecks(),
               user_prompts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`full_mode.refine_body` (same signature, same numbers): from the graphs for one
        person once prepared, eager otherwise."""
        refine = self._refiner if self._refiner is not None and body_features.shape[0] == 1 else full_mode.refine_body
        return refine(model, body, body_features, cam, hands, hand_cams, image_width, checks, user_prompts)


HandDecoder = Callable[[torch.Tensor, CropCamera], dict]
