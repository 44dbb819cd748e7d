"""What the GPU scripts share: a log line to stdout and to $OUT/<name>.log (seconds since the
script started), and timing a call (CUDA events on a GPU, the wall clock on a CPU dry run)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch


class ScriptLog:
    def __init__(self, name: str, decimals: int = 0) -> None:
        self.out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
        self.file = open(self.out / f"{name}.log", "a", buffering=1) if self.out else None
        self.t0 = time.perf_counter()
        self.decimals = decimals

    def say(self, *parts) -> None:
        line = f"[{time.perf_counter() - self.t0:6.{self.decimals}f}s] " + " ".join(str(p) for p in parts)
        print(line, flush=True)
        if self.file:
            self.file.write(line + "\n")


def timed_ms(fn, device: torch.device, iters: int = 30, warmup: int = 5) -> float:
    """Median ms of `fn`, CUDA events on a GPU (warm), wall clock on the CPU."""
    for _ in range(warmup if device.type == "cuda" else min(warmup, 1)):  # a CPU pass can take seconds
        fn()
    if device.type != "cuda":
        t = time.perf_counter()
        for _ in range(max(2, iters // 10)):
            fn()
        return (time.perf_counter() - t) * 1000 / max(2, iters // 10)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def attempt(log: ScriptLog, name: str, fn) -> str | None:
    """Run one step of a script; None if it went through, else a short note of why not (the
    traceback goes to the log): one failing step must not stop the others."""
    import traceback

    try:
        fn()
        return None
    except Exception as exc:  # noqa: BLE001 - the other steps still run
        log.say(f"step {name} failed: {type(exc).__name__}: {str(exc)[:300]}")
        if log.file:
            log.file.write(traceback.format_exc())
        return f"failed: {type(exc).__name__}: {str(exc)[:80]}"


def time_queue_waits(clock: "BusyClock"):
    """The local batch engine's queue waits counted on `clock` ("main waits for photos", "people
    thread waits for reads"); returns the original `_Run._get`, to put back."""
    import sam3dbody_gui.batch.local_engine as local_engine

    original = local_engine._Run._get

    def get(self, q):
        name = "main waits for photos" if q is self.people_q else "people thread waits for reads"
        return clock.timed(name, original)(self, q)

    local_engine._Run._get = get
    return original


class BusyClock:
    """Seconds spent in wrapped functions, by name, summed over threads (where a batch run's
    threads spend their time)."""

    def __init__(self) -> None:
        import threading

        self.busy: dict[str, float] = {}
        self._lock = threading.Lock()

    def timed(self, name: str, fn, generator: bool = False):
        """`fn` counting its time under `name`; `generator`: it yields, so its whole run is timed."""
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return list(fn(*a, **k)) if generator else fn(*a, **k)
            finally:
                with self._lock:
                    self.busy[name] = self.busy.get(name, 0.0) + time.perf_counter() - t0
        return wrapper
