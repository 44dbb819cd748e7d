"""`bench --video`: frames per second of a clip's pass and the motion's jitter, per people count.

The clip is the user's (`--video CLIP`, people from `--bbox`-like boxes found on its first frame
are not guessed: give a synthetic clip instead) or, by default, one made here: 1080p, figures
walking across noise, one per person, so the figures' boxes on the first frame are known. Each
pass is the command line's own (video/clip_processor.py: decoding, box carrying, the pipeline in
one batch per frame, the work file), timed from the first frame decoded to the last record
written; the jitter is the mean joint acceleration (mm/frame²) of the pipeline's per-frame
joints before and after smoothing (video/motion.py), averaged over the people.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

CLIP_HW = (1080, 1920)
CLIP_FPS = 30
FIGURE_HW = (720, 260)  # a standing figure's box in the synthetic clip


@dataclass
class VideoRow:
    people: int
    frames: int
    fps: float
    ms_per_frame: float
    jitter_before_mm: float
    jitter_after_mm: float
    size_hw: tuple = CLIP_HW


def figure_boxes(people: int, frame: int, size_hw=CLIP_HW) -> list[tuple[float, float, float, float]]:
    """Where each figure is on `frame`: spread across the width, walking 4 px a frame (wrapping)."""
    h, w = size_hw
    fh, fw = FIGURE_HW
    gap = w / max(people, 1)
    top = (h - fh) / 2
    boxes = []
    for k in range(people):
        x = (gap * k + (gap - fw) / 2 + 4 * frame) % max(w - fw, 1)
        boxes.append((float(x), float(top), float(x + fw), float(top + fh)))
    return boxes


def make_bench_clip(path: Path, people: int, frames: int, size_hw=CLIP_HW, fps: int = CLIP_FPS) -> Path:
    """A clip of `people` bright figures (head, body, legs) walking across noise (PyAV, H.264)."""
    import av

    h, w = size_hw
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            picture = rng.integers(40, 120, (h, w, 3), dtype=np.uint8)
            for k, (x1, y1, x2, y2) in enumerate(figure_boxes(people, i, size_hw)):
                x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
                colour = np.array([(230, 200, 60), (60, 200, 230), (200, 80, 200), (90, 220, 90)][k % 4], np.uint8)
                cx, head = (x1 + x2) // 2, (y2 - y1) // 7
                picture[y1:y1 + head, cx - head // 2:cx + head // 2] = colour
                picture[y1 + head:y1 + 4 * head, x1 + (x2 - x1) // 5:x2 - (x2 - x1) // 5] = colour
                picture[y1 + 4 * head:y2, cx - (x2 - x1) // 4:cx - 8] = colour
                picture[y1 + 4 * head:y2, cx + 8:cx + (x2 - x1) // 4] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_row(pipeline, clip: Path, boxes, work_dir: Path, smooth: float = 0.5) -> VideoRow:
    """One pass over `clip` with `boxes` on its first frame; its speed and jitter."""
    from .video.clip_processor import ClipOptions, ClipProcessor, pass_settings
    from .video.motion import clip_motion
    from .video.reader import VideoReader
    from .video.work_file import WorkFile

    options = ClipOptions(boxes=tuple(tuple(b) for b in boxes))
    with VideoReader(clip) as reader:
        info = reader.info
        work = WorkFile.open(work_dir, clip, pass_settings(options, {"bench": True}, None), fresh=True)
        try:
            done = ClipProcessor(pipeline, reader, options, work, None).run()
        finally:
            work.close()
    motion = clip_motion(done.records, pipeline.model, info.size_hw, info.fps, strength=smooth)
    before = [p.jitter_before_mm for p in motion.people.values() if math.isfinite(p.jitter_before_mm)]
    after = [p.jitter_after_mm for p in motion.people.values() if math.isfinite(p.jitter_after_mm)]
    fps = done.fps
    return VideoRow(len(boxes), done.computed, fps, 1e3 / fps if fps > 0 else float("nan"),
                    float(np.mean(before)) if before else float("nan"), float(np.mean(after)) if after else float("nan"),
                    tuple(info.size_hw))


def video_rows(pipeline, counts: list[int], frames: int = 90, clip: Optional[Path] = None,
               progress: Callable[[str], None] = print) -> list[VideoRow]:
    """A row per people count on synthetic clips (or `clip`, whose first frame gets the figures' boxes)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sam3dbody-bench-video-") as tmp:
        for people in counts:
            path = clip
            if path is None:
                progress(f"making a {CLIP_HW[1]}×{CLIP_HW[0]} clip of {frames} frames with {people} "
                         f"{'person' if people == 1 else 'people'}")
                path = make_bench_clip(Path(tmp) / f"clip{people}.mp4", people, frames)
            progress(f"video: {people} {'person' if people == 1 else 'people'}")
            rows.append(video_row(pipeline, path, figure_boxes(people, 0), Path(tmp) / f"work{people}"))
    return rows


def format_video_table(rows: list[VideoRow], label: str) -> str:
    lines = [f"\nvideo, {rows[0].size_hw[1]}×{rows[0].size_hw[0]} clip, decoding, box carrying, pipeline and work "
             f"file included ({label}); jitter = mean joint acceleration, mm/frame², before → after smoothing 0.5",
             f"{'people':>7s} {'frames':>7s} {'frames/s':>9s} {'ms/frame':>9s} {'jitter before':>14s} "
             f"{'jitter after':>13s}"]
    for r in rows:
        lines.append(f"{r.people:7d} {r.frames:7d} {r.fps:9.2f} {r.ms_per_frame:9.1f} {r.jitter_before_mm:14.2f} "
                     f"{r.jitter_after_mm:13.2f}")
    return "\n".join(lines)
