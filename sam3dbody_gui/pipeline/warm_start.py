"""Warm start: a pipeline answers at once with the quickest path to open (the eager backbone in
the fast path's precision, the eager decoder), while a background thread builds the fast path
(the compiled backbone; on a GPU the compiled and captured decoder passes and the compiled
crop), checks it against the path in use, and swaps it in between two runs.

    pipeline.fast_path_status   ("checking the eager path against fp32 in the background" →)
                                "compiling in the background" → "in use (checked: …)"
                                or "failed: …; using the eager path" or "not built: …"

How it stays safe while runs go on:
  - the swap takes the pipeline's run lock (every run holds it), so a run sees all the old
    stages or all the new ones, never half of each;
  - compiling (the slow part: tens of seconds) overlaps runs, but every CUDA-graph capture of
    the build takes the run lock too (runtime/cuda_graph.py `captures_guarded_by`): a capture
    records all work on its stream, and an allocation or a sync from a run in the middle of it
    could break it. The captures are short (a few replays' work), so a run waits at most that
    long. They also capture in thread-local error mode, so a CUDA call from another thread that
    holds no run lock (the person detector) cannot break one either;
  - the fast stages are built on the same weights as the eager ones (the compile wraps the
    loaded modules), so the build costs no second copy of the model, only its workspace.

A failed build or check keeps the eager path, says why once (progress and the status), and
never raises into a run. Bench and the batch engine build blocking (`warm_start=False`): they
want the fast path from the first image.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from .pipeline import Pipeline

BUILDING = "compiling in the background"
CHECKING = "checking the eager path against fp32 in the background"  # a precheck (build.py `_eager_check`)
# The build waits this long at most for the first run to end (a window with no photo yet, or a
# caller that never runs, still gets its fast path). On the H200 the first mesh of a cold start
# took 12 s while the compiler ran beside it (28 s from process start): it shares the GIL.
FIRST_RUN_GRACE_S = 20.0
# "0": the window and `infer` open blocking as before (the test suite sets it: its runs compare
# results exactly, and a swap in the middle of a test would change them).
WARM_START_ENV = "SAM3DBODY_GUI_WARM_START"


def warm_start_wanted() -> bool:
    """Whether the window and `infer` start warm (the default) or blocking (WARM_START_ENV=0)."""
    return os.environ.get(WARM_START_ENV, "1").strip() not in ("0", "false", "no", "off")


STAGE_NAMES = ("backbone", "decoder", "hand_decoder", "cropper", "batch_decoder", "prompted_decoder")


@dataclass
class FastStages:
    """What the background build made; a stage left None keeps the one in use."""

    backbone: Any = None
    decoder: Any = None
    hand_decoder: Any = None
    cropper: Any = None
    batch_decoder: Any = None
    prompted_decoder: Any = None
    notes: list[str] = field(default_factory=list)  # e.g. a compiled decoder that fell back to the captured one

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STAGE_NAMES if getattr(self, name) is not None}


@dataclass
class Hooks:
    """Points a test can hold the build at (the defaults do nothing): `before_build` runs on the
    background thread before anything is built; `during_swap` between two stage assignments."""

    before_build: Callable[[], None] = lambda: None
    during_swap: Callable[[], None] = lambda: None


hooks = Hooks()


def mesh_of(backbone, decoder, crop: torch.Tensor, crop_size: int, device: torch.device) -> torch.Tensor:
    """The (V, 3) camera-frame body mesh in metres that `decoder` makes of `backbone(crop)`."""
    from ..runtime.decoders.decoder_graph import plausible_camera

    with torch.inference_mode():
        out = decoder(backbone(crop), plausible_camera(crop_size, device))
        return (out["pred_vertices"][0] + out["pred_cam_t"][0][None, :]).float().clone()


class _Cancelled(Exception):
    pass


class FastPathDeclined(Exception):
    """Raised by a build's `precheck` to end it with nothing built: its message becomes the status
    ("not built: …"), e.g. an eager fast path that missed its check and was replaced by fp32."""


class BackgroundFastPath:
    """Builds `build()`'s stages on a thread, checks the fast backbone against the one in use on
    `crop()` (the mesh check's limits: runtime/backbones/cpu_check.py), and swaps them in."""

    def __init__(self, pipeline: Pipeline, build: Callable[[], FastStages], crop: Callable[[], torch.Tensor],
                 progress: Callable[[str], None] = lambda m: None, what: str = "the compiled fast path",
                 first_run_grace_s: float = 0.0, on_swapped: Callable[[Any], None] = lambda verdict: None,
                 precheck: Callable[[], None] | None = None) -> None:
        """`first_run_grace_s`: wait up to this long for the pipeline's first run to end before
        building (build_pipeline: FIRST_RUN_GRACE_S), so the first answer does not share the
        cores and the GIL with the compiler. `on_swapped(verdict)`: after the swap, with the
        check's verdict against the path it replaced (e.g. to remember it for the next start).
        `precheck`: run before building (the eager path's own check against fp32, when it
        answered unchecked); raising FastPathDeclined ends the build with its message."""
        self.pipeline, self._build, self._crop, self._progress, self.what = pipeline, build, crop, progress, what
        self.first_run_grace_s = first_run_grace_s
        self._on_swapped = on_swapped
        self._precheck = precheck
        self.verdict = None  # the check's FidelityVerdict once it ran
        self.error: str | None = None
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._set_status(BUILDING)
        # Not a daemon: a process that ends mid-build waits for it (and keeps its compile caches)
        # instead of tearing torch down under a running compile (an abort at exit, seen on the CPU).
        self._thread = threading.Thread(target=self._work, name="fast-path-build", daemon=False)

    def start(self) -> BackgroundFastPath:
        self._thread.start()
        return self

    @property
    def status(self) -> str:
        return self.pipeline.fast_path_status

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the build is swapped in or has failed; False if `timeout` ran out first."""
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Stop at the next step boundary and swap nothing in (the pipeline is being replaced).
        A compile under way runs to its end: torch cannot interrupt it."""
        self._cancelled.set()

    def _set_status(self, status: str) -> None:
        self.pipeline.fast_path_status = status  # one attribute: a reader sees the old or the new string

    def _work(self) -> None:
        from ..runtime.cuda_graph import captures_guarded_by

        try:
            waited = 0.0
            while waited < self.first_run_grace_s and not self._cancelled.is_set():
                if self.pipeline.answered.wait(min(0.25, self.first_run_grace_s - waited)):
                    break
                waited += 0.25
            hooks.before_build()
            if self._cancelled.is_set():
                raise _Cancelled()
            if self._precheck is not None:
                self._set_status(CHECKING)
                self._precheck()
                self._set_status(BUILDING)
            if self._cancelled.is_set():
                raise _Cancelled()
            with captures_guarded_by(self.pipeline.run_lock):
                stages = self._build()
            if self._cancelled.is_set():
                raise _Cancelled()
            verdict = self._check(stages)
            self._swap(stages)
            try:
                self._on_swapped(verdict)
            except Exception as exc:  # noqa: BLE001 - an extra (e.g. a verdict kept for the next start): the swap stands
                self._progress(f"note: after the swap, {type(exc).__name__}: {exc}")
            notes = "".join(f"; {n}" for n in stages.notes)
            said = verdict.describe(against="eager")
            self._set_status(f"in use (checked: {said}){notes}")
            self._progress(f"{self.what} is in use ({said}){notes}")
        except _Cancelled:
            self._set_status("cancelled; using the eager path")
        except FastPathDeclined as declined:
            self._set_status(f"not built: {declined}")
            self._progress(f"{self.what} is not built: {declined}")
        except Exception as exc:  # noqa: BLE001 - the eager path is in place and stays
            self.error = f"{type(exc).__name__}: {exc}"
            self._set_status(f"failed: {self.error}; using the eager path")
            self._progress(f"{self.what} is unavailable ({self.error}); the eager path stays in use")
        finally:
            self._done.set()

    def _check(self, stages: FastStages):
        """The fast backbone against the one in use, on one calibration crop, both decoded by the
        decoder in use (as the CPU check does: the backbone's error alone, in the mesh check's
        limits), or the build counts as failed. The fast decoder passes, crop and hand pass check
        themselves against eager when they are built (compiled_decoder.py, decoder_buckets.py,
        hand_graph.py), as in a blocking build, and fall back to the captured pass there."""
        from ..runtime.backbones.cpu_check import mesh_deviation

        p = self.pipeline
        crop = self._crop()
        size, device = p.config.crop_size, p.device
        want = mesh_of(p.backbone, p.decoder, crop, size, device)
        got = mesh_of(stages.backbone or p.backbone, p.decoder, crop, size, device)
        self.verdict = mesh_deviation(got, want)
        if not self.verdict.ok:
            raise RuntimeError(f"it missed the check ({self.verdict.describe(against='eager')})")
        return self.verdict

    def _swap(self, stages: FastStages) -> None:
        with self.pipeline.run_lock:  # between two runs: none sees half of it
            for name, stage in stages.given().items():
                setattr(self.pipeline, name, stage)
                hooks.during_swap()
