"""The on-disk cache of built TensorRT engines: key, ONNX digest memo, lock, and blob I/O.

- Key: the ONNX content, the GPU (name, compute capability), the TensorRT version, the build
  settings and recipe, and ENGINE_SCHEMA — bump it when the build logic changes, so engines
  built by older code are not reused.
- The ONNX digest (3.4 GB for the published INT8 export) is memoised on disk by path, size and
  mtime of each file, so a start re-hashes only when a file changed.
- Concurrent starts (two windows, the CLI beside the window) serialise on a lock file, as
  Polygraphy guards its timing cache (polygraphy/util/util.py:360-403 `LockFile`, used at
  backend/trt/loader.py:615; v11.1): fcntl on POSIX, msvcrt on Windows.
- The engine is written straight from TensorRT's IHostMemory through the buffer protocol (as
  Polygraphy's util.save_file does, util.py:617-618) and read back through mmap: no
  `bytes(...)` copy of a GB blob. Its precision label sits in a small JSON beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from ...errors import UserError
from ...atomic_file import atomic_path, write_bytes_atomic

log = logging.getLogger(__name__)

ENGINE_SCHEMA = 2  # 1: the seed's cache (no schema in the key); 2: per-version recipe, profile, label sidecar
DIGEST_MEMO = "onnx-digests.json"
_MEMO_ENTRIES = 64


def onnx_parts(path: Path) -> list[Path]:
    """The ONNX and its external-data files (a changed weight file means a new engine)."""
    return [path] + sorted(path.parent.glob(path.name + ".data*"))


def _stat_key(parts: list[Path]) -> str:
    stats = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in parts]
    return json.dumps(stats)


def onnx_digest(path: Path, cache_dir: Path) -> str:
    """SHA-256 over the ONNX parts, remembered in cache_dir by each part's path, size and mtime."""
    parts = onnx_parts(Path(path))
    key = _stat_key(parts)
    memo_path = Path(cache_dir) / DIGEST_MEMO
    try:
        memo = json.loads(memo_path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}  # absent or damaged: hash again and rewrite
    if isinstance(memo.get(key), str):
        return memo[key]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.name.encode())
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    memo.pop(key, None)
    memo[key] = digest.hexdigest()
    memo = dict(list(memo.items())[-_MEMO_ENTRIES:])
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(memo_path, json.dumps(memo, indent=1).encode())
    except (OSError, UserError) as exc:  # a read-only cache only costs a re-hash next start
        log.warning("could not save the ONNX digest memo %s: %s", memo_path, exc)
    return memo[key]


def engine_cache_key(onnx_sha256: str, gpu: tuple[str, tuple[int, int]], trt_version: str,
                     settings, recipe) -> str:
    name, capability = gpu
    blob = json.dumps({
        "schema": ENGINE_SCHEMA, "onnx": onnx_sha256, "gpu": name, "cc": list(capability),
        "tensorrt": trt_version, "settings": asdict(settings), "recipe": asdict(recipe),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) against other processes and threads.

    POSIX record locks belong to the process, so threads of one process also take a
    threading.Lock per path. `on_wait` is called once if someone else holds the lock."""
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(str(Path(path).resolve()), threading.Lock())
    waited = not thread_lock.acquire(blocking=False)
    if waited:
        on_wait()
        thread_lock.acquire()
    try:
        with open(path, "a+b") as f:
            if not _try_lock(f, blocking=False):
                if not waited:
                    on_wait()
                _try_lock(f, blocking=True)
            try:
                yield
            finally:
                _unlock(f)
    finally:
        thread_lock.release()


def _try_lock(f, blocking: bool) -> bool:
    if sys.platform.startswith("win"):
        import msvcrt

        f.seek(0)
        while True:  # LK_LOCK gives up after 10 one-second tries (as Polygraphy notes); keep trying
            try:
                msvcrt.locking(f.fileno(), msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
    import fcntl

    try:
        fcntl.lockf(f.fileno(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        if blocking:
            raise
        return False


def _unlock(f) -> None:
    if sys.platform.startswith("win"):
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.lockf(f.fileno(), fcntl.LOCK_UN)


def meta_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def write_engine(engine_path: Path, serialized, meta: dict) -> None:
    """Write the IHostMemory blob and its metadata, each atomically; the metadata last, so an
    engine without it reads as incomplete."""
    meta_path(engine_path).unlink(missing_ok=True)
    with atomic_path(engine_path) as tmp:
        with open(tmp, "wb") as f:
            written = f.write(serialized)  # the buffer protocol: no copy of the blob
        if written != serialized.nbytes:
            raise UserError(f"cannot write {engine_path}: {written} of {serialized.nbytes} bytes written")
    write_bytes_atomic(meta_path(engine_path), json.dumps({"schema": ENGINE_SCHEMA, **meta}, indent=1).encode())


def read_meta(engine_path: Path) -> dict | None:
    """The engine's metadata, or None when the engine or its metadata is missing or unreadable."""
    try:
        if not engine_path.is_file():
            return None
        meta = json.loads(meta_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("schema") != ENGINE_SCHEMA or not isinstance(meta.get("precision"), str):
        return None
    return meta


@contextmanager
def mapped(engine_path: Path) -> Iterator[mmap.mmap]:
    """The engine file as a read-only buffer (an empty file raises ValueError: treat as corrupt)."""
    with open(engine_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        yield blob


def discard(engine_path: Path) -> None:
    for path in (meta_path(engine_path), engine_path):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s: %s", path, exc)

