"""Freed host memory is kept for the next pass (runtime/host_memory.py): with glibc's defaults a
CPU pass faulted its activations' pages in again every time (2.2 GB a full-size backbone pass)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A transformer pass's allocations on a worker thread (where the window runs): per layer a few
# 5 and 21 MB activations, the older ones freed; the minor page faults of each of four passes.
PROBE = """
import resource, threading
import torch
from sam3dbody_gui.runtime.host_memory import keep_freed_memory
kept = keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
out = []
def one_pass():
    live = []
    for layer in range(32):
        for mb in (5, 21, 21, 5, 5):
            live.append(torch.ones(mb * 1024 * 1024 // 4))
            if len(live) > 4:
                live.pop(0)
def work():
    for _ in range(4):
        before = faults(); one_pass(); out.append(faults() - before)
t = threading.Thread(target=work); t.start(); t.join()
print(kept, *out)
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                                reason="the thresholds are glibc's")


def _probe(keep: str) -> tuple[bool, list[int]]:
    env = {**os.environ, "SAM3DBODY_GUI_KEEP_FREED_MEMORY": keep}
    words = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                           timeout=120).stdout.split()
    return words[0] == "True", [int(w) for w in words[1:]]


@glibc_only
def test_later_passes_fault_no_pages_once_freed_memory_is_kept():
    kept, faults = _probe("1")
    assert kept
    first, later = faults[0], faults[1:]
    assert first > 10_000  # the probe sees the first pass's pages come in (~40,000)
    assert max(later) < first / 100, faults


@glibc_only
def test_the_switch_leaves_glibc_as_it_is():
    kept, faults = _probe("0")
    assert not kept
    assert len(faults) == 4
