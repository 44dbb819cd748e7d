"""Capturing a static-shape computation as one CUDA graph (replayed with a single launch)."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

WARMUP_RUNS = 3  # TorchScript profiles its first runs; capture only once it has settled
Outputs = TypeVar("Outputs")


def capture(run: Callable[[], Outputs], device: torch.device) -> tuple[torch.cuda.CUDAGraph, Outputs]:
    """Warm `run` up on a side stream (as CUDA graphs require), then capture one call of it.
    Returns the graph and the outputs of the captured call (static buffers a replay refills)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(WARMUP_RUNS):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        outputs = run()
    return graph, outputs
