"""The fast CPU backbones (int8, bf16) checked against fp32 when `auto` opens one, with fp32 as
the fallback — the CPU side of "fast paths check themselves against eager and fall back".

The check is the fidelity limit `compare` reports against: the body mesh from one calibration
crop through the fast backbone and through the fp32 one, both decoded by the same (fp32)
decoder, may differ by mean ≤ 5 mm and max ≤ 30 mm over the vertices. Unlike the GPU checks the
reference costs a full fp32 backbone pass (~9 s for the full-size model on 2 cores), so the
verdict is kept on disk under a key of everything that changes it (checkpoint, precision,
backend, CPU, torch); a later start reads it instead.

The encoder is changed in place (its fp32 weights would otherwise be held twice) but reversibly:
the fp32 tensors stay alive until the check passes, and a failed check puts them back.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ...atomic_file import write_bytes_atomic
from .base import BackboneBackend
from .int8_cpu import quantize_backbone_int8, restore_linears
from .pytorch_backend import PyTorchBackbone

FIDELITY_MEAN_MM, FIDELITY_MAX_MM = 5.0, 30.0  # issue 15's limit for every fast path vs fp32
CPU_FAST_PRECISIONS = ("int8", "bf16")
PATHS_VERSION = 1  # part of a verdict's key: bump when a fast path's numerics change


@dataclass(frozen=True)
class MeshCheck:
    """What the check runs on, made by the pipeline (this layer knows no photos or decoders):
    `crop()` a normalised (1, 3, S, S) crop; `mesh(features)` the (V, 3) camera-frame vertices
    in metres that the decoder makes of a backbone's features."""

    crop: Callable[[], torch.Tensor]
    mesh: Callable[[torch.Tensor], torch.Tensor]
    # The decoder's part of a path: switch it for `precision`, returning how to undo it (None:
    # nothing to switch). The check then measures backbone and decoder together.
    fast_decoder: Callable[[str], Callable[[], None] | None] | None = None
    # For a check run later (PendingCheck): made before the fast path changes the model, a
    # function crop → the fp32 mesh (backbone and decoder as they were), on the same weights.
    fp32_reference: Callable[[], Callable[[torch.Tensor], torch.Tensor]] | None = None


@dataclass(frozen=True)
class FidelityVerdict:
    mean_mm: float
    max_mm: float

    @property
    def ok(self) -> bool:
        return self.mean_mm <= FIDELITY_MEAN_MM and self.max_mm <= FIDELITY_MAX_MM

    def describe(self, against: str = "fp32") -> str:
        return (f"mesh vs {against} mean {self.mean_mm:.2f} mm, max {self.max_mm:.2f} mm "
                f"(limit {FIDELITY_MEAN_MM:g} / {FIDELITY_MAX_MM:g})")


def mesh_deviation(got: torch.Tensor, want: torch.Tensor) -> FidelityVerdict:
    mm = torch.linalg.vector_norm(got.float() - want.float(), dim=-1) * 1000.0
    return FidelityVerdict(float(mm.mean()), float(mm.max()))


class FastEncoder:
    """`encoder` switched to `precision` in place; `undo()` brings the fp32 one back until `commit()`."""

    def __init__(self, encoder: nn.Module, precision: str) -> None:
        if precision not in CPU_FAST_PRECISIONS:
            raise ValueError(f"no CPU fast path for {precision!r}")
        self.encoder, self.precision = encoder, precision
        self._swaps: list | None = None
        self._fp32: dict[str, torch.Tensor] | None = None
        if precision == "int8":
            self._swaps = quantize_backbone_int8(encoder)
        else:
            self._fp32 = dict(encoder.state_dict())  # the fp32 tensors themselves, not copies
            encoder.to(torch.bfloat16)

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def undo(self) -> nn.Module:
        if self._swaps is not None:
            restore_linears(self._swaps)
        if self._fp32 is not None:
            self.encoder.load_state_dict(self._fp32, assign=True)
        self.commit()
        return self.encoder

    def commit(self) -> None:
        self._swaps = self._fp32 = None


def weight_sharing_copy(module: nn.Module, share: Iterable[object] = ()) -> nn.Module:
    """A copy of `module` with module objects of its own over the very same tensor storage (no
    weight is copied, the copy costs only its Python objects): changing the original in place
    afterwards (its Linears swapped for int8 ones, a cast to bf16) leaves the copy as it was.
    `share`: objects the copy uses as they are (a TorchScript rig: it holds no state)."""
    memo: dict[int, object] = {id(o): o for o in share}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if id(tensor) not in memo:
            # A Parameter object of its own: a cast of the original sets `param.data` in place.
            memo[id(tensor)] = (nn.Parameter(tensor.data, requires_grad=False)
                                if isinstance(tensor, nn.Parameter) else tensor)
    return copy.deepcopy(module, memo)


def chained(first: FidelityVerdict, then: FidelityVerdict) -> FidelityVerdict:
    """A bound on path C vs A from B vs A (`first`) and C vs B (`then`), measured on the same
    crop: per vertex |C − A| ≤ |C − B| + |B − A|, so the means and the maxima add up at most."""
    return FidelityVerdict(first.mean_mm + then.mean_mm, first.max_mm + then.max_mm)


def write_verdict(path: Path, verdict: FidelityVerdict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(Path(path), json.dumps(asdict(verdict)).encode())


def read_verdict(path: Path | None) -> FidelityVerdict | None:
    try:
        data = json.loads(Path(path).read_text()) if path is not None else None
        return None if data is None else FidelityVerdict(float(data["mean_mm"]), float(data["max_mm"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verdict_path(cache_dir: Path, checkpoint: Path, kind: str, precision: str, arch: str, crop_size: int,
                 cpu: str) -> Path:
    """Where the verdict for this checkpoint file (path, size, time), backend, precision and CPU lives."""
    from ..compile_cache import cache_path, file_identity

    return cache_path(cache_dir, f"cpu-check-{kind}-{precision}", torch.device("cpu"),
                      checkpoint=file_identity(checkpoint),
                      arch=arch, crop=crop_size, cpu=cpu, paths=PATHS_VERSION).with_suffix(".json")


def open_checked(encoder: nn.Module, precision: str, open_fast: Callable[[nn.Module, torch.dtype], BackboneBackend],
                 check: MeshCheck, verdict_file: Path | None,
                 progress: Callable[[str], None] = lambda m: None) -> tuple[BackboneBackend, FidelityVerdict]:
    """The fast backbone `open_fast(encoder, input dtype)` makes of `encoder` (fp32, changed in
    place), with the decoder's part of the path (`check.fast_decoder`), if the mesh stays within
    the limit; else the fp32 eager backbone and decoder. And the verdict."""
    verdict = read_verdict(verdict_file)
    want = crop = None
    if verdict is None:
        progress(f"checking the {precision} CPU backbone against fp32 (once: one fp32 pass; the verdict is cached)")
        crop = check.crop()
        with torch.inference_mode():
            want = check.mesh(encoder(crop))
    fast = FastEncoder(encoder, precision)
    backend = undo_decoder = None

    def undo() -> nn.Module:
        if undo_decoder is not None:
            undo_decoder()
        return fast.undo()

    try:
        if verdict is None or verdict.ok:
            backend = open_fast(encoder, fast.input_dtype)
            undo_decoder = check.fast_decoder(precision) if check.fast_decoder is not None else None
        if verdict is None:
            with torch.inference_mode():
                verdict = mesh_deviation(check.mesh(backend(crop)), want)
            if verdict_file is not None:
                write_verdict(verdict_file, verdict)
    except Exception as exc:  # noqa: BLE001 - fp32 eager is always there to fall back on
        progress(f"the {precision} CPU backbone is unavailable ({type(exc).__name__}: {exc}); using fp32")
        return PyTorchBackbone(undo(), precision="fp32"), FidelityVerdict(float("nan"), float("nan"))
    if verdict.ok:
        fast.commit()
        return backend, verdict
    progress(f"the {precision} CPU path missed the fidelity check ({verdict.describe()}); using fp32")
    return PyTorchBackbone(undo(), precision="fp32"), verdict


class PendingCheck:
    """A fast path that answers before its check against fp32 has run: the window's first start
    ever, where the fp32 reference pass (~20 s for the full-size model on 2 cores) would
    otherwise stand between the user and the first mesh. The check then runs in the background
    (pipeline/warm_start.py) on a copy of the fp32 model made before the fast path changed it
    (`MeshCheck.fp32_reference`, the same tensors). A pass keeps the fast path; a miss or a
    failure undoes it back to the very fp32 weights, as a check at open does."""

    def __init__(self, fast: FastEncoder, undo_decoder: Callable[[], None] | None,
                 reference: Callable[[torch.Tensor], torch.Tensor], check: MeshCheck,
                 verdict_file: Path | None) -> None:
        self.precision = fast.precision
        self._fast, self._undo_decoder, self._reference = fast, undo_decoder, reference
        self._check, self._verdict_file = check, verdict_file

    def run(self, backend: BackboneBackend) -> FidelityVerdict:
        """The fast path (`backend` and the decoder as they run now) against the fp32 copy, on
        the check's crop; the verdict is kept on disk. A pass lets the fp32 tensors go."""
        try:
            crop = self._check.crop()
            with torch.inference_mode():
                want = self._reference(crop)
                got = self._check.mesh(backend(crop))
        finally:
            self._reference = None  # the copy's modules go (its tensors live on until commit or undo)
        verdict = mesh_deviation(got, want)
        if self._verdict_file is not None:
            write_verdict(self._verdict_file, verdict)
        if verdict.ok:
            self._fast.commit()
            self._undo_decoder = None
        return verdict

    def undo(self) -> nn.Module:
        """The encoder back to fp32 and the decoder's part undone (hold the runs off meanwhile)."""
        if self._undo_decoder is not None:
            self._undo_decoder()
            self._undo_decoder = None
        return self._fast.undo()


def open_unchecked(encoder: nn.Module, precision: str,
                   open_fast: Callable[[nn.Module, torch.dtype], BackboneBackend], check: MeshCheck,
                   verdict_file: Path | None,
                   progress: Callable[[str], None] = lambda m: None) -> tuple[BackboneBackend, PendingCheck | None]:
    """As `open_checked` where no verdict is kept yet, but the fast path opens at once and the
    check is left to the caller (`PendingCheck.run`, then `undo` on a miss). `check` needs its
    `fp32_reference`. The PendingCheck is None where the fast path could not even open (fp32 then)."""
    reference = check.fp32_reference()  # before anything changes the model
    fast = FastEncoder(encoder, precision)
    undo_decoder = None
    try:
        backend = open_fast(encoder, fast.input_dtype)
        undo_decoder = check.fast_decoder(precision) if check.fast_decoder is not None else None
    except Exception as exc:  # noqa: BLE001 - fp32 eager is always there to fall back on
        if undo_decoder is not None:
            undo_decoder()
        progress(f"the {precision} CPU backbone is unavailable ({type(exc).__name__}: {exc}); using fp32")
        return PyTorchBackbone(fast.undo(), precision="fp32"), None
    return backend, PendingCheck(fast, undo_decoder, reference, check, verdict_file)
