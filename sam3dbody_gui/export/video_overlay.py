"""The clip with everyone's mesh, box and keypoints drawn over each frame, as an MP4 (PyAV, H.264).

Each frame is decoded again from the clip (a clip does not fit in memory) and drawn by the
photo overlay (overlay.py: `render_overlay`), in each person's colour. A frame that did not
decode has no picture: the video keeps its timing (timestamps are the clip's frame indices), so
players hold the frame before. Written atomically (to a temporary, then renamed).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic_file import atomic_path
from ..errors import UserError
from ..video.motion import ClipMotion
from ..video.reader import VideoReader
from .overlay import render_overlay

SUFFIXES = (".mp4",)


def check_overlay_video_suffix(path: Path) -> None:
    if Path(path).suffix.lower() not in SUFFIXES:
        raise UserError(f"the overlay video is an MP4: name it .mp4, not {Path(path).suffix or 'no extension'}")


def _even(n: int) -> int:
    return n - (n % 2)  # yuv420p halves the chroma planes: H.264 needs even sides


def write_overlay_video(path: Path, clip: Path, motion: ClipMotion, stop: Optional[int] = None,
                        progress: Callable[[int, int], None] = lambda done, total: None) -> None:
    """Write to `path` as it is (a temporary of `output_set.publish`, or see save_overlay_video)."""
    import av

    wanted = set(motion.frames)
    total = len(wanted)
    done = 0
    with VideoReader(clip) as reader:
        rate = Fraction(reader.info.fps).limit_denominator(100000)
        w, h = _even(reader.info.width), _even(reader.info.height)
        if w < 2 or h < 2:
            raise UserError(f"the clip is {reader.info.width}x{reader.info.height}: too small for an MP4")
        with av.open(str(path), mode="w", format="mp4") as container:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            if codec == "libx264":
                # x264's macroblock-tree rate control came out different from one encode to the
                # next in a process that has torch loaded (measured: the same frames, other
                # bytes); without it the same clip gives the same file, so a resumed run's video
                # is the uninterrupted run's. It costs a few per cent of bitrate.
                stream.options = {"x264-params": "mbtree=0"}
            time_base = 1 / rate
            for frame in reader.frames(0, stop):
                if frame.index not in wanted:
                    continue
                people = [r for _, r in motion.at(frame.index)]
                picture = np.asarray(render_overlay(frame.rgb, people)) if people else frame.rgb
                out = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[:h, :w]), format="rgb24")
                out.pts, out.time_base = frame.index, time_base
                for packet in stream.encode(out):
                    container.mux(packet)
                done += 1
                progress(done, total)
            for packet in stream.encode():
                container.mux(packet)


def save_overlay_video(path: Path, clip: Path, motion: ClipMotion, stop: Optional[int] = None,
                       progress: Callable[[int, int], None] = lambda done, total: None) -> Path:
    check_overlay_video_suffix(path)
    with atomic_path(Path(path)) as tmp:
        write_overlay_video(tmp, clip, motion, stop, progress)
    return Path(path)
