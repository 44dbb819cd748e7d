"""Backbone backend: our PyTorch backbone through `torch.compile`, with its caches kept on disk.

Compiling takes ~40 s (minutes with max-autotune), so it happens once: afterwards torch's compile
caches (FX graph, autotuning choices, Triton kernels) are saved with
`torch.compiler.save_cache_artifacts()` into one file under a key of everything that changes
the result — architecture, precision, device, torch version, compile options. A later start
loads that file before compiling, so tracing reuses the stored kernels instead of autotuning
again. (AOTInductor packages were tried first: loading one crashed torch 2.11 on the H100.)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .base import BackboneBackend, BackendInfo, describe_device
from ..compile_cache import cache_path, load_compile_cache, save_compile_cache
from ..cuda_graph import capture
from .pytorch_backend import PRECISION_NAMES

Progress = Callable[[str], None]
# Several people on a GPU: a second compile with a dynamic batch size, replayed as one CUDA graph
# per bucket (a batch is padded up to the next bucket), all made when the backbone opens, so a
# photo with more people never waits for a compile.
BATCH_BUCKETS = (2, 4, 8, 16)


@dataclass(frozen=True)
class CompileOptions:
    max_autotune: bool = False

    def mode(self) -> str | None:
        # CUDA graphs are ours (below), not torch.compile's: its graph manager costs ~1 ms of
        # host time per call, a fifth of the backbone on an H100.
        return "max-autotune-no-cudagraphs" if self.max_autotune else None

    def describe(self) -> str:
        return "max-autotune" if self.max_autotune else "default kernels"


def compile_cache_path(cache_dir: Path, arch: str, precision: str, device: torch.device, crop_size: int,
                       options: CompileOptions) -> Path:
    return cache_path(cache_dir, f"backbone-{arch}-{precision}-{device.type}", device, arch=arch, precision=precision,
                      crop=crop_size, options=asdict(options), graph="own CUDA graph")


class CompiledBackbone(BackboneBackend):
    def __init__(self, encoder: torch.nn.Module, dtype: torch.dtype, device: torch.device, crop_size: int,
                 cache_file: Path, options: CompileOptions = CompileOptions(),
                 progress: Progress = lambda m: None, precision: str | None = None,
                 batch_buckets: tuple[int, ...] | None = None) -> None:
        """`encoder` already prepared (cast, or FP8-quantised); `dtype` is its input dtype.
        `batch_buckets`: batch sizes captured for several people (default: BATCH_BUCKETS on
        CUDA, none elsewhere — there batches run one crop at a time)."""
        self.device = torch.device(device)
        self.dtype = dtype
        precision = precision or PRECISION_NAMES.get(dtype, str(dtype))
        self.cache_file = Path(cache_file)
        self.encoder = encoder.to(device=self.device).eval()
        self.from_cache = load_compile_cache(self.cache_file)
        if self.from_cache:
            progress(f"loaded compiled kernels from the cache ({self.cache_file.name})")
        else:
            progress(f"compiling the backbone ({precision}, {options.describe()}; one time, takes minutes)")
        self.compiled = torch.compile(self.encoder, mode=options.mode(), fullgraph=True, dynamic=False)
        t0 = time.perf_counter()
        # The one input tensor the compiled code ever sees (dynamo guards on dtype and layout;
        # a miss would recompile, minutes with max-autotune, in the middle of a user's run).
        self.static_input = torch.zeros(1, 3, crop_size, crop_size, device=self.device, dtype=dtype)
        with torch.inference_mode():
            self.compiled(self.static_input)  # compile now, not on the first photo
        self.graph = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.graph, self.static_output = capture(lambda: self.compiled(self.static_input), self.device)
        self.compile_seconds = time.perf_counter() - t0
        if not self.from_cache:
            save_compile_cache(self.cache_file)
        progress(f"backbone ready in {self.compile_seconds:.0f} s ({'from cache' if self.from_cache else 'compiled'})")
        self.info = BackendInfo("pytorch-compiled", precision, describe_device(self.device))
        if batch_buckets is None:
            batch_buckets = BATCH_BUCKETS if self.graph is not None else ()
        self.buckets = tuple(sorted(batch_buckets))
        self._bucket_graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        if self.buckets:
            self._prepare_batches(crop_size, options, progress)

    @property
    def batched(self) -> bool:
        return bool(self.buckets)

    def _prepare_batches(self, crop_size: int, options: CompileOptions, progress: Progress) -> None:
        """One more compile, with the batch size dynamic (the batch-1 one stays as it is: one
        person must not get slower), then a CUDA graph per bucket."""
        batch_cache = self.cache_file.with_name(self.cache_file.stem + "-batched" + self.cache_file.suffix)
        cached = load_compile_cache(batch_cache)
        progress(f"{'loading' if cached else 'compiling'} the backbone for several people at once "
                 f"(batches of {', '.join(map(str, self.buckets))})")
        t0 = time.perf_counter()
        self.batch_compiled = torch.compile(self.encoder, mode=options.mode(), fullgraph=True, dynamic=None)
        for size in self.buckets:
            static = torch.zeros(size, *self.static_input.shape[1:], device=self.device, dtype=self.dtype)
            torch._dynamo.mark_dynamic(static, 0, min=2, max=max(self.buckets))
            with torch.inference_mode():
                self.batch_compiled(static)
            torch.cuda.synchronize(self.device)
            graph, output = capture(lambda static=static: self.batch_compiled(static), self.device)
            self._bucket_graphs[size] = (graph, static, output)
        if not cached:
            save_compile_cache(batch_cache)
        progress(f"backbone batches ready in {time.perf_counter() - t0:.0f} s")

    def _run_batch(self, crops: torch.Tensor) -> torch.Tensor:
        n = crops.shape[0]
        size = next((b for b in self.buckets if b >= n), None)
        if size is None:  # more than the largest bucket: in chunks of it
            largest = self.buckets[-1]
            return torch.cat([self._run_batch(crops[i:i + largest]).clone() for i in range(0, n, largest)])
        graph, static, output = self._bucket_graphs[size]
        static[:n].copy_(crops)
        if n < size:  # rows are independent: the padding only has to be finite
            static[n:].zero_()
        graph.replay()
        return output[:n]

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        """Features of `crop` (1 or, with buckets, several crops); on CUDA they live in a graph's
        output buffer, which the next call overwrites (clone to keep them)."""
        if crop.shape[0] > 1:
            if not self.buckets:
                raise ValueError("this compiled backbone takes one crop at a time")
            with torch.inference_mode():
                return self._run_batch(crop)
        with torch.inference_mode():
            self.static_input.copy_(crop)
            if self.graph is None:
                return self.compiled(self.static_input)
            self.graph.replay()
            return self.static_output
