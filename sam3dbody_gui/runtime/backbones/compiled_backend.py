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


# A tuned compile must give the default compile's numbers up to kernel rounding: max |Δ| over
# max |feature| (bf16/fp8 outputs; a different GEMM tiling or fusion moves the last bf16 bits).
TUNED_TOLERANCE = 2e-2


@dataclass(frozen=True)
class CompileOptions:
    """How Inductor compiles the backbone. The defaults are what was measured fastest so far;
    the rest are candidates `tools/gpu/backbone_variants.py` measures (see `TUNINGS`):
      gemm_backends       Inductor's GEMM choices under max-autotune, e.g. "TRITON" or "ATEN,TRITON":
                          a Triton template (fp8 `_scaled_mm` included) can take the epilogue — the
                          weight scales, bias, residual and the next layer's quantise — so the GEMM
                          output is not written and read back; cuBLAS cannot;
      coordinate_descent  Inductor's coordinate-descent tuning of the element-wise kernels' blocks;
      static_batches      the batch buckets compiled with static shapes, one graph per size,
                          instead of one dynamic-batch compile (reductions tiled for the real size).
    Anything but the defaults is checked against the encoder run eagerly when it opens."""

    max_autotune: bool = False
    gemm_backends: str = ""
    coordinate_descent: bool = False
    static_batches: bool = False

    @property
    def tuned(self) -> bool:
        """Any of the candidates beyond plain max-autotune (those open with a check against eager)."""
        return self != CompileOptions(max_autotune=self.max_autotune)

    def cache_key(self) -> dict:
        """The fields that key the compile cache: the defaults of later fields are left out, so
        caches made before those fields existed still match."""
        default = CompileOptions()
        return {k: v for k, v in asdict(self).items() if k == "max_autotune" or v != getattr(default, k)}

    def mode(self) -> str | None:
        # CUDA graphs are ours (below), not torch.compile's: its graph manager costs ~1 ms of
        # host time per call, a fifth of the backbone on an H100.
        return "max-autotune-no-cudagraphs" if self.max_autotune else None

    def compile_kwargs(self) -> dict:
        """torch.compile's `mode` or `options` (it takes one or the other)."""
        if not (self.gemm_backends or self.coordinate_descent):
            return {"mode": self.mode()}
        options: dict[str, object] = {"triton.cudagraphs": False, "epilogue_fusion": True}
        if self.max_autotune or self.gemm_backends:
            options.update(max_autotune=True, max_autotune_gemm=True)
        if self.gemm_backends:
            options["max_autotune_gemm_backends"] = self.gemm_backends
        if self.coordinate_descent:
            options["coordinate_descent_tuning"] = True
        return {"options": options}

    def describe(self) -> str:
        parts = ["max-autotune" if self.max_autotune or self.gemm_backends else "default kernels"]
        if self.gemm_backends:
            parts.append(f"GEMMs from {self.gemm_backends}")
        if self.coordinate_descent:
            parts.append("coordinate descent")
        if self.static_batches:
            parts.append("static batch shapes")
        return ", ".join(parts)


# Named candidates (the GPU script measures each; `plan.py` can pass one as the compile options).
TUNINGS: dict[str, CompileOptions] = {
    "default": CompileOptions(),
    "static-batches": CompileOptions(static_batches=True),
    "autotune": CompileOptions(max_autotune=True),
    "triton-epilogue": CompileOptions(gemm_backends="TRITON", static_batches=True),
    "aten-triton-epilogue": CompileOptions(gemm_backends="ATEN,TRITON", static_batches=True),
    "tuned": CompileOptions(gemm_backends="ATEN,TRITON", coordinate_descent=True, static_batches=True),
}


def compile_cache_path(cache_dir: Path, arch: str, precision: str, device: torch.device, crop_size: int,
                       options: CompileOptions) -> Path:
    return cache_path(cache_dir, f"backbone-{arch}-{precision}-{device.type}", device, arch=arch, precision=precision,
                      crop=crop_size, options=options.cache_key(), graph="own CUDA graph")


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
        t0 = time.perf_counter()
        # The one input tensor the compiled code ever sees (dynamo guards on dtype and layout;
        # a miss would recompile, minutes with max-autotune, in the middle of a user's run).
        self.static_input = torch.zeros(1, 3, crop_size, crop_size, device=self.device, dtype=dtype)
        self._compile_single(options)
        self.check = None
        if options.tuned:
            self._check_tuned(crop_size, progress)
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
            self._prepare_batches(crop_size, self.options, progress)

    def _compile_single(self, options: CompileOptions) -> None:
        """The batch-1 compile with `options`, compiled now (not on the first photo)."""
        self.options = options
        self.compiled = torch.compile(self.encoder, fullgraph=True, dynamic=False, **options.compile_kwargs())
        with torch.inference_mode():
            self.compiled(self.static_input)

    def _check_tuned(self, crop_size: int, progress: Progress) -> None:
        """A tuned compile against the encoder run eagerly on a probe crop; on a miss (or an error)
        back to the default compile, said in `progress` and kept in `self.check`."""
        probe = torch.randn(1, 3, crop_size, crop_size, generator=torch.Generator().manual_seed(0))
        probe = probe.to(device=self.device, dtype=self.dtype)
        try:
            with torch.inference_mode():
                want = self.encoder(probe).float()
                self.static_input.copy_(probe)
                got = self.compiled(self.static_input).float()
            relative = float((got - want).abs().max() / want.abs().max().clamp(min=1e-12))
        except Exception as exc:  # noqa: BLE001 - a template that fails to run
            relative, why = float("nan"), f"{type(exc).__name__}: {str(exc)[:120]}"
        else:
            why = f"{relative:.2%} of the largest feature off eager"
        self.check = relative
        if relative <= TUNED_TOLERANCE:
            progress(f"tuned compile ({self.options.describe()}) matches eager: {why}")
            return
        progress(f"tuned compile ({self.options.describe()}) missed its check ({why}); using the default kernels")
        self._compile_single(CompileOptions())

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
        # Static batches: one compiled object, recompiled per bucket size (dynamo's recompile limit
        # is 8, above the 4 buckets); else one dynamic-batch compile for all.
        self.batch_compiled = torch.compile(self.encoder, fullgraph=True,
                                            dynamic=False if options.static_batches else None,
                                            **options.compile_kwargs())
        # One memory pool for every bucket, the largest captured first (the others' intermediates
        # fit in its blocks): else each bucket keeps its own, and the four together held more than
        # the largest alone. Safe because a bucket's output is read before the next backbone call
        # (the pipeline clones the features before full mode's hand crops, and the chunks of a
        # batch past the largest bucket are cloned): a replay may overwrite another bucket's
        # output, never one still in use.
        pool = None
        for size in sorted(self.buckets, reverse=True):
            static = torch.zeros(size, *self.static_input.shape[1:], device=self.device, dtype=self.dtype)
            if not options.static_batches:
                torch._dynamo.mark_dynamic(static, 0, min=2, max=max(self.buckets))
            with torch.inference_mode():
                self.batch_compiled(static)
            torch.cuda.synchronize(self.device)
            graph, output = capture(lambda static=static: self.batch_compiled(static), self.device, pool=pool)
            pool = graph.pool() if pool is None else pool
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
