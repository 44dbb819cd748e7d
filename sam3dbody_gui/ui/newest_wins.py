"""Newest frame wins: a live source gives frames faster than a slow machine processes them, so at
most one frame is processed and at most one waits; a newer frame replaces the waiting one, which
is dropped (and counted). Never a growing queue: the picture is at most one frame behind the
one being processed. Qt-free: `start(item)` begins the work (on a worker), and whoever runs it
calls `done()` when it ends.
"""

from __future__ import annotations

from typing import Any, Callable, Optional


class NewestWins:
    def __init__(self, start: Callable[[Any], None]) -> None:
        self._start = start
        self.busy = False
        self.pending: Optional[Any] = None
        self.offered = 0
        self.started = 0
        self.dropped = 0  # frames replaced while waiting, never processed
        self.most_waiting = 0  # the longest the queue ever was (0 or 1, by construction)

    @property
    def waiting(self) -> int:
        return 0 if self.pending is None else 1

    def offer(self, item: Any) -> None:
        self.offered += 1
        if not self.busy:
            self._begin(item)
            return
        if self.pending is not None:
            self.dropped += 1
        self.pending = item
        self.most_waiting = max(self.most_waiting, self.waiting)

    def done(self) -> None:
        self.busy = False
        if self.pending is not None:
            item, self.pending = self.pending, None
            self._begin(item)

    def clear(self) -> None:
        """Forget the waiting frame (the source stopped)."""
        if self.pending is not None:
            self.dropped += 1
            self.pending = None

    def _begin(self, item: Any) -> None:
        self.busy = True
        self.started += 1
        self._start(item)
