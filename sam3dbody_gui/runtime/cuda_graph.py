"""Capturing a static-shape computation as one CUDA graph (replayed with a single launch)."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, ContextManager, Iterator, TypeVar

import torch

WARMUP_RUNS = 3  # TorchScript profiles its first runs; capture only once it has settled
Outputs = TypeVar("Outputs")
_this_thread = threading.local()  # a background build's capture guard (captures_guarded_by)
_captures = [0]  # graphs captured in this process (compile_events.py tells a first run's captures)


def captures_made() -> int:
    return _captures[0]


@contextlib.contextmanager
def captures_guarded_by(lock: ContextManager) -> Iterator[None]:
    """Captures made on this thread inside the block take `lock` (the pipeline's run lock) and
    capture in thread-local error mode. For a background build (pipeline/warm_start.py): its
    compiles overlap runs on another thread, but a capture must not, and with the default
    ("global") mode a CUDA call from any other thread, e.g. the detector's, would break it."""
    previous = getattr(_this_thread, "lock", None)
    _this_thread.lock = lock
    try:
        yield
    finally:
        _this_thread.lock = previous


def apart_from_runs() -> ContextManager:
    """The run lock a background build registered for this thread (captures_guarded_by), else a
    no-op: for the steps of a build that must not overlap a run — a capture, and torch.export's
    trace, which patches module calls for the whole process (a run on another thread during it
    broke both the trace and the run)."""
    return getattr(_this_thread, "lock", None) or contextlib.nullcontext()


def capture(run: Callable[[], Outputs], device: torch.device, pool=None) -> tuple[torch.cuda.CUDAGraph, Outputs]:
    """Warm `run` up on a side stream (as CUDA graphs require), then capture one call of it.
    Returns the graph and the outputs of the captured call (static buffers a replay refills).
    `pool`: another graph's `pool()`, to share its memory (see the backbone's batch buckets)."""
    lock = getattr(_this_thread, "lock", None)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(WARMUP_RUNS):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    mode = "global" if lock is None else "thread_local"
    with apart_from_runs(), torch.inference_mode(), \
            torch.cuda.graph(graph, pool=pool, capture_error_mode=mode):
        outputs = run()
    _captures[0] += 1
    return graph, outputs
