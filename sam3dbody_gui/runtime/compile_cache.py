"""torch.compile's caches (FX graphs, autotuning choices, Triton kernels) kept in one file per
compiled piece — backbone, decoder pass, crop — so a later start reuses the kernels instead of
compiling again. The file name is a hash of everything that changes the compiled code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..atomic_file import write_bytes_atomic


def cache_path(cache_dir: Path, stem: str, device: torch.device, **key: object) -> Path:
    """`cache_dir/stem-<hash>.compile-cache`; the hash covers `key`, the GPU and torch's version."""
    blob = json.dumps({
        **{k: str(v) for k, v in key.items()},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__),
    }, sort_keys=True)
    return Path(cache_dir) / f"{stem}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}.compile-cache"


def file_identity(path: Path) -> str:
    """A file as a cache key sees it: resolved path, size and modification time (a replaced or
    edited file gets a new key; the path alone if it cannot be read)."""
    try:
        stat = Path(path).stat()
        return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        return str(path)


def load_compile_cache(path: Path) -> bool:
    """Preload the kernels saved at `path`, if there are any; True if there were."""
    if not Path(path).is_file():
        return False
    torch.compiler.load_cache_artifacts(Path(path).read_bytes())
    return True


def save_compile_cache(path: Path) -> None:
    """Save what this process has compiled so far (atomically: a crash never leaves half a file)."""
    artifacts = torch.compiler.save_cache_artifacts()
    if artifacts is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(Path(path), artifacts[0])
