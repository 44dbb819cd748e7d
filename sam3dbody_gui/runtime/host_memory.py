"""Keeping freed host memory for the next run instead of handing it back to the system (glibc).

A CPU pass of the full-size model allocates a few GB of activations (5–21 MB each) and frees them
again. glibc's malloc returns such blocks to the system: those over its mmap threshold at once,
the rest when the free space at the top of the heap passes its trim threshold (both adapt, but
stay in the tens of MB). The next pass then faults every page in again: 550,000 minor faults
(2.2 GB) a backbone pass, measured on a 2-core VM, where each costs far more than on bare metal.
The int8 backbone's eager pass took 3.5 s that way and 2.6 s with the thresholds raised (the
first pass 6.8 s and 2.6 s; quantising the weights 3.2 s and 1.8 s), and page faults per pass
went from 550,000 to none.

So the command line (at its start) and `build_pipeline` raise them once per process: blocks up
to 32 MB (glibc's largest mmap threshold) come from the heap, and up to 1 GiB of free heap is
kept. The peak is unchanged (the pass needs it anyway); the process only gives the memory back
later. Threads started after it share the main heap (one arena): the window's and `infer`'s
runs happen on a worker thread, and a thread's own arena (64 MB heaps) still faulted 80,000–
300,000 pages a pass with the thresholds raised (3.1–4.6 s), none with one arena (2.6–2.9 s).
Other C libraries and systems are left as they are. SAM3DBODY_GUI_KEEP_FREED_MEMORY=0 turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading

KEEP_ENV = "SAM3DBODY_GUI_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # <malloc.h>
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the largest it takes
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_lock = threading.Lock()
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); whether they are raised."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _apply()
        return _applied


@functools.lru_cache(maxsize=None)
def _glibc():
    """The process's glibc (its own symbols: no library search), or None elsewhere (musl, macOS,
    Windows: no mallopt thresholds to raise)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def _apply() -> bool:
    if os.environ.get(KEEP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success; the mmap threshold first (setting either fixes both: no adapting).
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and \
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return ok and libc.mallopt(M_ARENA_MAX, 1) == 1


def release_freed_memory() -> None:
    """Hand what the heap holds free back to the system now (glibc's malloc_trim): after a
    one-off free of a large amount (the fp32 weights an int8 backbone replaced) that the kept
    thresholds would otherwise hold on to. The next pass faults its pages in once more."""
    if keep_freed_memory():
        _glibc().malloc_trim(0)
