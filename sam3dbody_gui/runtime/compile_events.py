"""What compiled or was captured during a stretch of work: to tell why a first run took longer.

`bench --targets` times the first full-mode run after the passes were prepared; where it costs
more than a steady run, the stage breakdown says where and this says what happened there:
frames TorchDynamo compiled (a pass made at first use, or a recompile: then the guard that
failed) and CUDA graphs captured. Reading torch's own counters and its "recompiles" log, so a
torch that changes them only loses this detail (`describe` then says less), never a run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterator

from . import cuda_graph

RECOMPILES_LOGGER = "torch._dynamo.guards.__recompiles"  # torch's artifact logger for `recompiles`


@dataclass
class CompileEvents:
    frames_compiled: int = 0  # TorchDynamo frames compiled (first compiles and recompiles)
    graphs_captured: int = 0  # CUDA graphs captured through runtime/cuda_graph.capture
    recompiles: list[str] = field(default_factory=list)  # "function: the first guard that failed"

    def describe(self) -> str:
        """'' when nothing compiled or captured; else e.g. '2 frames compiled (recompiled
        forward: tensor 'x' size mismatch ...), 1 CUDA graph captured'."""
        said = []
        # Each recompile is a frame compiled, counted or not: on the H200 (torch 2.11) the log
        # named a recompile during the first full-mode run while the frame counter stayed put.
        frames = max(self.frames_compiled, len(self.recompiles))
        if frames:
            why = f" (recompiled {'; '.join(self.recompiles[:3])})" if self.recompiles else ""
            said.append(f"{frames} frame{'s' * (frames != 1)} compiled{why}")
        if self.graphs_captured:
            said.append(f"{self.graphs_captured} CUDA graph{'s' * (self.graphs_captured != 1)} captured")
        return ", ".join(said)


def _frames_compiled() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["frames"]["total"])
    except Exception:  # noqa: BLE001 - private counters: without them, no count
        return 0


def recompile_summary(message: str) -> str:
    """torch's recompile message → 'name: first guard failure' (one line)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    head = lines[0].removeprefix("Recompiling function ").split(" in ", 1)[0]
    failures = [line.removeprefix("- ") for line in lines[1:] if line.startswith("- ")]
    return f"{head}: {failures[0]}" if failures else head


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.into.append(recompile_summary(record.getMessage()))
        except Exception:  # noqa: BLE001 - a diagnostic must not break the run it watches
            pass


@contextlib.contextmanager
def _recompile_log(into: list[str]) -> Iterator[None]:
    """torch's `recompiles` log switched on inside the block (it is off unless asked for), its
    messages collected; torch's log settings are reset after, as `set_logs()` leaves them."""
    try:
        import torch._logging

        torch._logging.set_logs(recompiles=True)
    except Exception:  # noqa: BLE001
        yield
        return
    logger = logging.getLogger(RECOMPILES_LOGGER)
    handler = _Collect(into)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        torch._logging.set_logs()


@contextlib.contextmanager
def watch_compiles() -> Iterator[CompileEvents]:
    """The compiles and captures made inside the block, filled in when it ends."""
    events = CompileEvents()
    frames, captures = _frames_compiled(), cuda_graph.captures_made()
    try:
        with _recompile_log(events.recompiles):
            yield events
    finally:
        events.frames_compiled = max(0, _frames_compiled() - frames)
        events.graphs_captured = cuda_graph.captures_made() - captures
        events.recompiles[:] = [r for r in events.recompiles if r]
