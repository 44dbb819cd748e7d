"""A `.pt2` backbone made fast, each step checked against the program run as it is.

Run as it is, an ExportedProgram's module is eager PyTorch at the precision of its graph: an INT8
QDQ program does all its math in fp32 (fp32-eager speed). The steps, in order:

  lowered   its QDQ linears on real int8 GEMMs (`pt2_lowering.lower_qdq_linears`);
  + bf16 attention (opt-in: `half_attention`), as a TensorRT FP16+INT8 build would run it;
  compiled  the (lowered) module through `torch.compile`, on a GPU replayed as one CUDA graph.

After each step the output on a fixed probe crop is compared with the program's own; a step that
fails or differs by more than the tolerances below is dropped with a message saying why, and the
last good step runs instead: a speed-up never costs correctness. Where the pipeline hands a mesh
check (the app always does), the step is judged as every fast path is: by the body mesh the
decoder makes of its features on a calibration crop, against the program's mesh (mean ≤ 5 mm,
max ≤ 30 mm), for the reason `speed_up` gives.

Why two tolerances: an int8 program is chaotic in its last bit. Where an fp32 rounding moves an
activation across a quantisation level boundary, that element moves by a whole level and the
change travels through the later layers. On the tiny synthetic model the lowered program differs
from the program as is by up to 1.8 % of the largest feature (0.3 % RMS), while the program's own
int8 error against the float backbone is 5 % (3 % RMS): the flips are a tenth of the quantisation
noise. A wrong rewrite (a lost scale, a transposed weight) is off by tens of percent.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ...atomic_file import write_bytes_atomic
from ...errors import UserError

from ..cuda_graph import capture
from .cpu_check import FidelityVerdict, MeshCheck, mesh_deviation
from .pt2_lowering import attention_in_bf16, lower_qdq_linears

PT2_SPEEDS = ("as-is", "lowered", "compiled")
MAX_TOLERANCE = 5e-2  # largest |fast − as is|, relative to the largest |feature|
RMS_TOLERANCE = 1e-2  # RMS of (fast − as is), relative to the RMS of the features

Progress = Callable[[str], None]


def _why(exc: Exception) -> str:
    """An exception in a note: its type and the start of its first line."""
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def first_output(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@dataclass
class Check:
    max_abs: float
    relative: float  # max_abs / max |feature|
    rms: float  # RMS difference / RMS feature

    @property
    def ok(self) -> bool:
        return self.relative <= MAX_TOLERANCE and self.rms <= RMS_TOLERANCE  # NaN compares False: not ok

    def describe(self) -> str:
        return f"max abs diff {self.max_abs:.2g} = {self.relative:.2%} of the largest feature, RMS {self.rms:.2%}"


def compare(got: torch.Tensor, want: torch.Tensor) -> Check:
    if got.shape != want.shape:
        return Check(float("inf"), float("inf"), float("inf"))
    diff = got.float() - want.float()
    want = want.float()
    max_abs = diff.abs().max()
    return Check(float(max_abs), float(max_abs / want.abs().max().clamp(min=1e-12)),
                 float(diff.pow(2).mean().sqrt() / want.pow(2).mean().sqrt().clamp(min=1e-12)))


@dataclass
class FastProgram:
    run: Callable[[torch.Tensor], torch.Tensor]
    steps: list[str] = field(default_factory=list)  # the steps kept, e.g. ["lowered", "compiled"]
    notes: list[str] = field(default_factory=list)  # what each step did or why it was dropped
    checks: dict[str, Check | FidelityVerdict] = field(default_factory=dict)
    compile_seconds: float = 0.0

    def describe(self) -> str:
        return "; ".join(self.notes) or "as exported"


def probe_crop(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)


def reference_probe(mesh_check: MeshCheck | None, shape: tuple[int, ...], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """The crop a step is judged on: the mesh check's (a calibration crop), else a fixed random one."""
    if mesh_check is not None:
        return mesh_check.crop().to(device=device, dtype=dtype)
    return probe_crop(shape, dtype, device)


class StepVerdicts:
    """The mesh verdicts of a program's steps, kept on disk (one JSON file per program, device and
    CPU: plan.py names it): a later start applies a step that passed without running the program
    as it is again (11.7 s for the full-size INT8 program on 2 cores) and skips one that missed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get(self, step: str) -> FidelityVerdict | None:
        try:
            data = json.loads(self.path.read_text()).get(step)
            return None if data is None else FidelityVerdict(float(data["mean_mm"]), float(data["max_mm"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, step: str, verdict: FidelityVerdict) -> None:
        try:
            data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            data = {}
        data[step] = asdict(verdict)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.path, json.dumps(data).encode())
        except (OSError, UserError):
            pass  # a cache: the next start checks again


def speed_up(module: torch.nn.Module, speed: str, device: torch.device, input_shape: tuple[int, ...],
             input_dtype: torch.dtype, half_attention: bool = False,
             progress: Progress = lambda m: None, mesh_check: MeshCheck | None = None,
             verdicts: StepVerdicts | None = None) -> FastProgram:
    """`module` (the program's, on `device`) as fast as `speed` allows, checked; see the docstring.
    `mesh_check`: judge each step by the body mesh the decoder makes of its features on the
    check's crop, against the program's mesh, in the fidelity limits of every fast path
    (cpu_check.py), instead of by the features themselves. The full-size synthetic INT8 program
    needs it: there torch.compile alone, with no rewrite, moved the features by 7.5 % RMS (fp32
    roundings cross quantisation levels and the flips grow through 32 random-weight blocks),
    while the lowered program's mesh stayed within 0.29 / 0.59 mm of the program's.
    `verdicts`: with a mesh check, the eager steps' verdicts kept for later starts."""
    if speed not in PT2_SPEEDS:
        raise ValueError(f"unknown .pt2 speed {speed!r}: choose from {', '.join(PT2_SPEEDS)}")

    def plain(m):
        return lambda crop: first_output(m(crop))

    fast = FastProgram(plain(module))
    if speed == "as-is":
        return fast
    verdicts = verdicts if mesh_check is not None else None
    reference: dict = {}

    def reference_judge():
        """(probe crop, judge): the program's own output on the probe, run once, when a step needs it."""
        if not reference:
            probe = reference_probe(mesh_check, input_shape, input_dtype, device)
            with torch.inference_mode():
                want = first_output(module(probe)).clone()
            reference.update(probe=probe, judge=_judge(want, mesh_check))
        return reference["probe"], reference["judge"]

    current = module

    def try_step(name: str, make: Callable[[], tuple[torch.nn.Module, str]]) -> None:
        nonlocal current
        known = verdicts.get(name) if verdicts is not None else None  # judged at an earlier start
        if known is not None and not known.ok:
            fast.checks[name] = known
            fast.notes.append(f"{name} left out: it missed its check at an earlier start ({_describe(known)})")
            progress(f".pt2 backbone: {fast.notes[-1]}")
            return
        try:
            candidate, what = make()
            check = known
            if check is None:
                probe, judge = reference_judge()
                with torch.inference_mode():
                    check = judge(first_output(candidate(probe)))
        except Exception as exc:  # noqa: BLE001 - an unsupported kernel or pattern: keep the last good step
            fast.notes.append(f"{name} failed ({_why(exc)}); kept the step before")
            progress(f".pt2 backbone: {fast.notes[-1]}")
            return
        fast.checks[name] = check
        if verdicts is not None and known is None:
            verdicts.put(name, check)
        if not check.ok:
            fast.notes.append(f"{name} dropped: differs from the program ({_describe(check)})")
            progress(f".pt2 backbone: {fast.notes[-1]}")
            return
        current = candidate
        fast.steps.append(name)
        fast.notes.append(f"{what} ({'checked at an earlier start: ' if known else ''}{_describe(check)})")

    def lower():
        lowered, report = lower_qdq_linears(module, device)
        if not report.lowered:
            raise LookupError(f"no int8 QDQ linears in the program ({report.describe()})")
        return lowered, report.describe()

    try_step("lowered", lower)
    if half_attention:
        def half():
            changed, count = attention_in_bf16(current)
            return changed, f"{count} attention calls in bf16"

        try_step("bf16 attention", half)
    fast.run = plain(current)
    if speed == "compiled":
        probe, judge = reference_judge()
        fast.run = _compiled(current, fast, probe, judge, device, progress)
    return fast


def _judge(want: torch.Tensor, mesh_check: MeshCheck | None) -> Callable[[torch.Tensor], Check | FidelityVerdict]:
    """features → the step's check against the program's `want` (features or, with a mesh check, meshes)."""
    if mesh_check is None:
        return lambda got: compare(got, want)
    want_mesh = mesh_check.mesh(want)

    def by_mesh(got: torch.Tensor) -> FidelityVerdict:
        if got.shape != want.shape:
            return FidelityVerdict(float("inf"), float("inf"))
        return mesh_deviation(mesh_check.mesh(got), want_mesh)

    return by_mesh


def _describe(check) -> str:
    return check.describe(against="the program") if isinstance(check, FidelityVerdict) else check.describe()


def _compiled(module: torch.nn.Module, fast: FastProgram, probe: torch.Tensor,
              judge: Callable[[torch.Tensor], Check | FidelityVerdict], device: torch.device,
              progress: Progress) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module compiled (static shapes) and, on CUDA, captured as one CUDA graph; checked."""
    eager = fast.run
    progress("compiling the .pt2 backbone (one time per start, about a minute on a GPU)")
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(module, dynamic=False)
        static_input = probe.clone()
        with torch.inference_mode():
            first_output(compiled(static_input))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            graph, static_output = capture(lambda: first_output(compiled(static_input)), device)

            def run(crop: torch.Tensor) -> torch.Tensor:
                static_input.copy_(crop)
                graph.replay()
                return static_output
        else:
            def run(crop: torch.Tensor) -> torch.Tensor:
                static_input.copy_(crop)
                return first_output(compiled(static_input))
        with torch.inference_mode():
            check = judge(run(probe))
    except Exception as exc:  # noqa: BLE001 - compile errors come in many types
        fast.notes.append(f"compile failed ({_why(exc)}); running uncompiled")
        progress(f".pt2 backbone: {fast.notes[-1]}")
        return eager
    fast.compile_seconds = time.perf_counter() - t0
    fast.checks["compiled"] = check
    if not check.ok:
        fast.notes.append(f"compiled dropped: differs from the program ({_describe(check)})")
        progress(f".pt2 backbone: {fast.notes[-1]}")
        return eager
    fast.steps.append("compiled")
    graph_note = " + CUDA graph" if device.type == "cuda" else ""
    fast.notes.append(f"compiled{graph_note} in {fast.compile_seconds:.0f} s ({_describe(check)})")
    return run
