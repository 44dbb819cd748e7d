"""A video clip (mp4, mov, mkv, webm, anything FFmpeg reads) as frames: index, time, RGB.

PyAV decodes it (FFmpeg ships in its wheels). A frame's index comes from its timestamp, not from
counting decoded frames, so a frame that fails to decode leaves a gap instead of renumbering
every frame after it: the work file (resume), the overlay video and the window's timeline all
agree on what "frame 57" is. A packet that does not decode is reported (`on_bad_frame`) and
skipped: one damaged frame in a phone clip must not end the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from ..errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
BadFrame = Callable[[int, str], None]  # (frame index, why) for a frame that could not be decoded


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    rgb: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    fps: float
    frame_count: int  # from the container's header or duration: an estimate for some files
    duration_s: float
    codec: str

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.height, self.width


def _open(path: Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise UserError(f"cannot read the video {path}: " + ("it is a folder" if path.is_dir() else "no such file"))
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise UserError(f"cannot read the video {path}: {exc.strerror or exc} (not a video FFmpeg can open?)") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path} has no video stream")
    return container


class VideoReader:
    """One open clip. `frames()` decodes in order from any frame; `frame_at(i)` seeks. Not
    thread-safe: the window gives its decoding thread a reader of its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._container = _open(self.path)
        self._stream = self._container.streams.video[0]
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or float(rate) <= 0:
            self.close()
            raise UserError(f"{self.path}: the video stream has no frame rate")
        self._rate = Fraction(rate)
        self._time_base = Fraction(stream.time_base) if stream.time_base else 1 / self._rate
        self._start_pts = stream.start_time if stream.start_time is not None else 0
        duration = (float(stream.duration * self._time_base) if stream.duration
                    else (self._container.duration or 0) / 1e6)
        count = stream.frames or int(round(duration * float(self._rate)))
        ctx = stream.codec_context
        self.info = ClipInfo(self.path, int(ctx.width), int(ctx.height), float(self._rate), int(count), duration,
                             ctx.name)
        if self.info.width <= 0 or self.info.height <= 0:
            self.close()
            raise UserError(f"{self.path}: the video stream has no picture size")

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def index_of(self, pts: Optional[int], previous: int) -> int:
        """The frame index of a timestamp (the next index when the file gives none or repeats one)."""
        if pts is None:
            return previous + 1
        index = int(round(float((pts - self._start_pts) * self._time_base * self._rate)))
        return max(index, previous + 1)

    def time_of(self, index: int) -> float:
        return float(index / self._rate)

    def _seek_to(self, index: int) -> None:
        """Put the demuxer on the keyframe at or before frame `index`."""
        if index <= 0:
            self._container.seek(0)
            return
        pts = self._start_pts + int(index / self._rate / self._time_base)
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)

    def frames(self, start: int = 0, stop: Optional[int] = None, on_bad_frame: BadFrame = lambda i, why: None
               ) -> Iterator[Frame]:
        """Frames start ≤ index < stop, in order. A packet that does not decode is reported with
        the index its timestamp gives and skipped."""
        if self._container is None:
            raise UserError(f"{self.path} is closed")
        self._seek_to(start)
        last = -1
        for packet in self._container.demux(self._stream):
            decoded, why = _decode(packet)
            for frame in decoded:
                index = last = self.index_of(frame.pts, last)
                if index < start:
                    continue
                if stop is not None and index >= stop:
                    return
                yield Frame(index, self.time_of(index), frame.to_ndarray(format="rgb24"))
            if why is not None:
                # The lost frame is named by its packet's timestamp; `last` stays, since with
                # B-frames packets come in decoding order, not in the order frames are shown.
                lost = self.index_of(packet.pts, -1) if packet.pts is not None else last + 1
                if stop is not None and lost >= stop:
                    return
                if lost >= start:
                    on_bad_frame(lost, why)

    def frame_at(self, index: int) -> Optional[Frame]:
        """Frame `index` (None past the end or where it does not decode): seeks, then decodes from
        the keyframe before it."""
        for frame in self.frames(index, index + 1):
            return frame
        return None


def _decode(packet) -> tuple[list, Optional[str]]:
    """A packet's frames, and why it failed to decode (None when it did)."""
    import av

    try:
        return packet.decode(), None
    except av.error.FFmpegError as exc:
        return [], f"it does not decode ({exc.strerror or type(exc).__name__})"


def clip_info(path: Path) -> ClipInfo:
    with VideoReader(path) as reader:
        return reader.info
