"""The compiled CPU backbone as an AOTInductor package: compiled ahead of time into a shared
library kept in the cache, so a later start loads it in about a second.

Why not torch.compile on the CPU: even with every kernel in its cache, torch.compile traces the
model again with Dynamo on each start. For the full-size int8 backbone on 2 cores that took 11 s
before the first compiled run, on the cores the user's runs need. An AOTInductor package is the
same Inductor code compiled once to a library (49 s there, against 58 s for torch.compile) and
loaded with `dlopen`: 1 s.

The package holds kernels only. The weights stay the encoder's own tensors, handed to the
library at load as user-managed constants: no second copy of them, and no weight baked into
the kernels (Inductor's freezing stays off, so nothing is folded from their values). One
package therefore serves every checkpoint of its architecture and precision, as torch.compile's
cache does; a test compiles with one set of weights and runs with another. The key covers what
changes the code: architecture, precision, crop size, torch, and the CPU's vector instructions
(a library built for AVX-512 would crash on an AVX2 machine).

The package runs one crop at a time at a fixed size, like the CPU's torch.compile path.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..compile_cache import cache_path
from .base import BackboneBackend, BackendInfo, describe_device

Progress = Callable[[str], None]
AOTI_ENV = "SAM3DBODY_GUI_AOTI"  # "0": the CPU compiles with torch.compile instead (the test suite's default)
PACKAGE_VERSION = 1  # part of the key: bump when what is exported changes
LAYOUT_KEY = "sam3dbody_gui.tensor_layout"  # in the package's metadata: tensor_layout() it was built for


def aoti_wanted() -> bool:
    return os.environ.get(AOTI_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=None)
def vector_isa() -> str:
    """The CPU's vector units as torch sees them, and its model: a package is built for these.
    (Not Inductor's own pick_vec_isa: with an empty compile cache it compiles test programs,
    6.5 s before the model could even start loading on a cold start here.)"""
    from ..cpu_features import cpu_model_name, detect

    return f"{detect().describe()} / {cpu_model_name()}"


def aoti_package_path(cache_dir: Path, arch: str, precision: str, crop_size: int) -> Path:
    """Where the package of this architecture and precision lives (`….pt2` in the cache folder)."""
    return cache_path(cache_dir, f"backbone-{arch}-{precision}-cpu-aoti", torch.device("cpu"), arch=arch,
                      precision=precision, crop=crop_size, isa=vector_isa(), version=PACKAGE_VERSION
                      ).with_suffix(".pt2")


@contextlib.contextmanager
def _exportable(module: torch.nn.Module) -> Iterator[None]:
    """torch.export refuses inference tensors (made under torch.inference_mode: e.g. weights
    quantised inside a benchmark's inference block): plain copies of those for the trace, the
    originals put back after. The copies live only while the package is built."""
    swapped = []
    for owner in module.modules():
        for store in (owner._parameters, owner._buffers):
            for name, tensor in list(store.items()):
                if tensor is not None and tensor.is_inference():
                    swapped.append((store, name, tensor))
                    copy = tensor.clone()
                    store[name] = torch.nn.Parameter(copy, requires_grad=False) if store is owner._parameters else copy
    try:
        yield
    finally:
        for store, name, tensor in swapped:
            store[name] = tensor


def tensor_layout(encoder: torch.nn.Module, example: torch.Tensor) -> str:
    """A digest of every tensor's name, shape and dtype and of the input's: what the kernels were
    built for. Kept in the package's metadata and compared at load, so weights of another layout
    (a changed quantisation, say) are never handed to kernels that would read them wrongly."""
    parts = [f"input:{tuple(example.shape)}:{example.dtype}"]
    tensors = dict(encoder.named_parameters())
    tensors.update(encoder.named_buffers())
    parts += [f"{name}:{tuple(t.shape)}:{t.dtype}" for name, t in sorted(tensors.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _compile_package(encoder: torch.nn.Module, example: torch.Tensor, package: Path) -> None:
    """Export the encoder and build its package at `package` (written beside it, then renamed:
    a crash never leaves half a library where a later start would load it)."""
    from torch._inductor import aoti_compile_and_package

    from ..cuda_graph import apart_from_runs

    # Held from the pipeline's runs (a background build): the trace patches module calls process-wide.
    with apart_from_runs(), torch.inference_mode(False), torch.no_grad(), _exportable(encoder):
        program = torch.export.export(encoder, (example.clone(),), strict=False)
    package.parent.mkdir(parents=True, exist_ok=True)
    partial = package.with_name(f".{package.stem}.{os.getpid()}.partial.pt2")  # the builder wants .pt2
    try:
        aoti_compile_and_package(program, package_path=str(partial), inductor_configs={
            "aot_inductor.package_constants_in_so": False,
            "aot_inductor.metadata": {LAYOUT_KEY: tensor_layout(encoder, example)}})
        os.replace(partial, package)
    finally:
        partial.unlink(missing_ok=True)


def _encoder_tensors(encoder: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    tensors = dict(encoder.named_parameters())
    tensors.update(encoder.named_buffers())
    missing = [name for name in names if name not in tensors]
    if missing:
        raise RuntimeError(f"the package wants tensors the encoder lacks ({', '.join(missing[:3])})")
    return {name: tensors[name] for name in names}


class _Library:
    """The package's library through torch's C++ loader directly. The public aoti_load_package
    first reads the archive in Python: 1.0 s on its first call in a process on this 2-core CPU,
    against 5 ms this way. The loader's Python face is not public and has changed between
    releases (load_constants gained an argument), so anything unexpected here falls back to the
    public call (open_package)."""

    def __init__(self, package: Path) -> None:
        self.loader = torch._C._aoti.AOTIModelPackageLoader(str(package), "model", False, 1, -1)

    def get_metadata(self) -> dict[str, str]:
        return dict(self.loader.get_metadata())

    def get_constant_fqns(self) -> list[str]:
        return list(self.loader.get_constant_fqns())

    def load_constants(self, constants: dict[str, torch.Tensor], *, check_full_update: bool, user_managed: bool) -> None:
        # (constants, use the inactive buffer, check the update is full, user-managed[, allow a host→device copy])
        self.loader.load_constants(constants, False, check_full_update, user_managed)

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        (features,) = self.loader.boxed_run([crop])
        return features


class StalePackage(ValueError):
    """A package built for another tensor layout than the encoder's."""


def open_package(package: Path, layout: str, tensors_of: Callable[[list[str]], dict[str, torch.Tensor]]):
    """The package loaded, checked to be built for `layout` (tensor_layout), and given the
    tensors `tensors_of(its constants' names)` as user-managed constants: through torch's C++
    loader directly (_Library), else through the public aoti_load_package."""
    def hand_over(runner):
        if runner.get_metadata().get(LAYOUT_KEY) != layout:
            raise StalePackage("it was built for weights of another layout")
        runner.load_constants(tensors_of(list(runner.get_constant_fqns())), check_full_update=True,
                              user_managed=True)
        return runner

    try:
        return hand_over(_Library(package))
    except StalePackage:
        raise
    except Exception:  # noqa: BLE001 - another torch's loader (or its arguments): the public way
        from torch._inductor import aoti_load_package

        return hand_over(aoti_load_package(str(package)))


class AotiBackbone(BackboneBackend):
    def __init__(self, encoder: torch.nn.Module, dtype: torch.dtype, crop_size: int, package: Path,
                 precision: str, progress: Progress = lambda m: None) -> None:
        """`encoder` already prepared (int8-quantised or cast), on the CPU; `dtype` its input dtype.
        Loads the package at `package`, compiling it first if there is none (or a broken one)."""
        self.device = torch.device("cpu")
        self.dtype, self.crop_size, self.package = dtype, crop_size, Path(package)
        self.encoder = encoder.eval()
        self.batched = False  # one crop at a time (Pipeline._backbone)
        self.from_cache = self.package.is_file()
        t0 = time.perf_counter()
        example = torch.zeros(1, 3, crop_size, crop_size, dtype=dtype)
        if not self.from_cache:
            progress(f"compiling the backbone ({precision}, AOTInductor; one time, about a minute)")
            _compile_package(self.encoder, example, self.package)
        layout = tensor_layout(self.encoder, example)

        def tensors_of(names: list[str]) -> dict[str, torch.Tensor]:
            return _encoder_tensors(self.encoder, names)

        try:
            self.runner = open_package(self.package, layout, tensors_of)
        except Exception as exc:  # noqa: BLE001 - a damaged or stale cache file: it is ours, make it again once
            if not self.from_cache:
                raise
            progress(f"the cached backbone package could not be used ({type(exc).__name__}: {exc}); "
                     "compiling it again")
            self.package.unlink(missing_ok=True)
            self.from_cache = False
            _compile_package(self.encoder, example, self.package)
            self.runner = open_package(self.package, layout, tensors_of)
        self.compile_seconds = time.perf_counter() - t0
        progress(f"backbone ready in {self.compile_seconds:.0f} s ({'from cache' if self.from_cache else 'compiled'}, "
                 "AOTInductor)")
        self.info = BackendInfo("pytorch-compiled", precision, describe_device(self.device))

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        if crop.shape[0] != 1:
            raise ValueError("this compiled backbone takes one crop at a time")
        if tuple(crop.shape[1:]) != (3, self.crop_size, self.crop_size):
            raise ValueError(f"crop of shape {tuple(crop.shape)}: this backbone was compiled for "
                             f"(1, 3, {self.crop_size}, {self.crop_size})")
        with torch.inference_mode():
            return self.runner(crop.to(device=self.device, dtype=self.dtype).contiguous())
