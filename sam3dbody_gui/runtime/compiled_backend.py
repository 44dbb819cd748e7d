"""Backbone backend: our PyTorch backbone compiled ahead of time with AOTInductor, cached on disk.

Compiling (optionally with max-autotune) takes minutes, so it happens once: the compiled
package (`.pt2`, kernels + weights) is stored in the cache under a key of everything that
changes the result — the weights file, the architecture, precision, device, torch version and
compile options — and a later start only loads it (seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from .base import BackboneBackend, BackendInfo, describe_device
from .pytorch_backend import PRECISION_NAMES

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompileOptions:
    max_autotune: bool = True

    def inductor_configs(self) -> dict:
        return {"max_autotune": self.max_autotune}


def weights_fingerprint(path: Path) -> str:
    """Cheap identity of a weights file (path, size, modification time), not its content."""
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


def compiled_cache_path(cache_dir: Path, weights_id: str, arch: str, dtype: torch.dtype, device: torch.device,
                        crop_size: int, options: CompileOptions) -> Path:
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    blob = json.dumps({
        "weights": weights_id, "arch": arch, "dtype": str(dtype), "device": device_name, "crop": crop_size,
        "torch": str(torch.__version__), "options": asdict(options),
    }, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:24]
    return Path(cache_dir) / f"backbone-{arch}-{PRECISION_NAMES.get(dtype, 'x')}-{device.type}-{key}.pt2"


def compile_backbone(encoder: torch.nn.Module, dtype: torch.dtype, device: torch.device, crop_size: int,
                     package: Path, options: CompileOptions) -> None:
    """Export + AOTInductor-compile `encoder` into `package` (written atomically)."""
    from torch._inductor import aoti_compile_and_package

    encoder = encoder.to(device=device, dtype=dtype).eval()
    example = torch.zeros(1, 3, crop_size, crop_size, device=device, dtype=dtype)
    with torch.no_grad():
        program = torch.export.export(encoder, (example,))
    package.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".compiling-", suffix=".pt2", dir=package.parent)
    os.close(fd)
    try:
        aoti_compile_and_package(program, package_path=tmp, inductor_configs=options.inductor_configs())
        os.replace(tmp, package)
    finally:
        Path(tmp).unlink(missing_ok=True)


class CompiledBackbone(BackboneBackend):
    def __init__(self, package: Path, dtype: torch.dtype, device: torch.device) -> None:
        from torch._inductor import aoti_load_package

        self.device = torch.device(device)
        self.dtype = dtype
        index = self.device.index if self.device.index is not None else (
            torch.cuda.current_device() if self.device.type == "cuda" else -1)
        try:
            self.runner = aoti_load_package(str(package), device_index=index)
        except Exception as exc:  # noqa: BLE001 - a stale or corrupt cache entry
            raise UserError(f"cannot load the compiled backbone {package} ({type(exc).__name__}); "
                            "delete it to recompile") from None
        self.package = Path(package)
        self.info = BackendInfo("pytorch-compiled", PRECISION_NAMES.get(dtype, str(dtype)), describe_device(self.device))

    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        out = self.runner(crop.to(self.dtype))
        return out[0] if isinstance(out, (tuple, list)) else out


def load_or_compile(encoder_factory: Callable[[], torch.nn.Module], weights_id: str, arch: str, dtype: torch.dtype,
                    device: torch.device, crop_size: int, cache_dir: Path,
                    options: CompileOptions = CompileOptions(), progress: Progress = lambda m: None) -> CompiledBackbone:
    """The cached compiled backbone, compiling first if the cache has none for this key.

    `encoder_factory` is only called on a cache miss, so a cached start never loads the
    backbone weights into PyTorch at all.
    """
    package = compiled_cache_path(cache_dir, weights_id, arch, dtype, torch.device(device), crop_size, options)
    if not package.is_file():
        progress(f"compiling the backbone ({PRECISION_NAMES.get(dtype)}, "
                 f"{'max-autotune, ' if options.max_autotune else ''}one time, takes minutes)")
        t0 = time.perf_counter()
        compile_backbone(encoder_factory(), dtype, torch.device(device), crop_size, package, options)
        progress(f"compiled in {time.perf_counter() - t0:.0f} s; cached as {package.name}")
    else:
        progress(f"loading the compiled backbone from the cache ({package.name})")
    return CompiledBackbone(package, dtype, device)
