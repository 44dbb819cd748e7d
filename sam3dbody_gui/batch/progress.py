"""Progress of a batch run: inputs done of all, images and persons per second, time left.

On a terminal it is a tqdm bar (tqdm comes with huggingface_hub); in a log (no terminal) it is a
plain line every few seconds, so that a cluster job's log shows the run moving without a
carriage-return mess. Skipped inputs count towards done but not towards the rates: a resumed
run's speed is what it computes, not how fast it skips. An image is a photo or a video frame; a
video counts as one input, done when its last frame is.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Optional, TextIO

LINE_EVERY_S = 5.0


def outcome(lines: list[dict]) -> tuple[str, int]:
    """(status, persons) of one job's manifest lines: all "ok" (a person each), or one line."""
    return (lines[0]["status"] if lines else "ok"), sum(1 for line in lines if line.get("status") == "ok")


@dataclass
class Tally:
    """What a run did, input by input."""

    inputs: int = 0  # all the run was given
    computed: int = 0  # photos run through the model
    videos: int = 0  # videos read to their end
    frames: int = 0  # video frames run through the model
    persons: int = 0  # in photos and frames
    skipped: int = 0  # finished by a previous run
    no_people: int = 0
    errors: int = 0  # the input's fault (done)
    failed: int = 0  # retried by the next run
    started: float = field(default_factory=time.perf_counter)

    @property
    def seen(self) -> int:
        return self.computed + self.videos + self.skipped + self.no_people + self.errors + self.failed

    def add(self, kind: str, status: str, persons: int, skipped: bool) -> None:
        """One job's outcome (kind: "photo", "frame" or "video", see photo_work.Job; status: its
        lines', see `outcome`)."""
        if kind == "frame":  # a frame is not an input: only what it computed counts
            if not skipped and status == "ok":
                self.frames += 1
                self.persons += persons
            return
        if skipped:
            self.skipped += 1
            return
        if status == "video":
            self.videos += 1
        elif status == "ok":
            self.computed += 1
            self.persons += persons
        elif status == "no people":
            self.no_people += 1
        elif status == "error":
            self.errors += 1
        else:
            self.failed += 1

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def rates(self) -> tuple[float, float]:
        """(images/s, persons/s) over the computed photos and frames, from the run's start (the
        model's load included: what a user waits for)."""
        elapsed = max(self.seconds(), 1e-9)
        return (self.computed + self.frames) / elapsed, self.persons / elapsed

    def summary(self) -> str:
        images_s, persons_s = self.rates()
        frames = f" and {self.frames} video frames" if self.videos or self.frames else ""
        parts = [f"{self.computed} photos{frames} computed ({self.persons} persons)"]
        if self.videos:
            parts.append(f"{self.videos} video{'s' if self.videos > 1 else ''} read to the end")
        parts.append(f"{self.skipped} skipped (done before)")
        for n, what in ((self.no_people, "with nobody found"), (self.errors, "unreadable or invalid"),
                        (self.failed, "failed (retried next run)")):
            if n:
                parts.append(f"{n} {what}")
        return (f"batch: {self.inputs} inputs: " + ", ".join(parts) +
                f"; {self.seconds():.1f} s, {images_s:.2f} images/s, {persons_s:.2f} persons/s")


class Progress:
    def __init__(self, tally: Tally, out: TextIO = sys.stderr, bar: Optional[bool] = None) -> None:
        self.tally, self.out = tally, out
        use_bar = out.isatty() if bar is None else bar
        self._bar = None
        if use_bar:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=tally.inputs, unit="input", file=out, dynamic_ncols=True)
            except ImportError:
                pass
        self._last_line = time.perf_counter()

    def update(self, kind: str, status: str, persons: int, skipped: bool) -> None:
        t = self.tally
        seen = t.seen
        t.add(kind, status, persons, skipped)
        images_s, persons_s = t.rates()
        if self._bar is not None:
            self._bar.set_postfix_str(f"{images_s:.2f} images/s, {persons_s:.2f} persons/s, {t.skipped} skipped",
                                      refresh=False)
            self._bar.update(t.seen - seen)  # a frame moves the rates, not the bar
        elif time.perf_counter() - self._last_line >= LINE_EVERY_S:
            self._last_line = time.perf_counter()
            self.out.write(f"batch: {t.seen}/{t.inputs} inputs, {images_s:.2f} images/s, {persons_s:.2f} persons/s, "
                           f"ETA {self._eta()}\n")
            self.out.flush()

    def _eta(self) -> str:
        t = self.tally
        left = t.inputs - t.seen
        if t.seen == 0:
            return "?"
        seconds = t.seconds() / t.seen * left
        return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 3600:.0f} h"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
