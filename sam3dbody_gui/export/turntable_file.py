"""A turntable of the mesh, one full turn, as an animated GIF (Pillow) or an MP4 (PyAV, H.264),
written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import UserError
from ..atomic_file import atomic_path
from .turnaround import turntable_frames

TURNTABLE_SUFFIXES = (".gif", ".mp4")
FRAMES_PER_TURN = 36
FRAMES_PER_SECOND = 12


def check_turntable_suffix(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in TURNTABLE_SUFFIXES:
        raise UserError(f"cannot save a turntable as {suffix or 'a file without extension'}: use .gif or .mp4")
    return suffix


def save_turntable(path: Path, vertices_camera: np.ndarray, faces: np.ndarray, frames: int = FRAMES_PER_TURN,
                   size: int = 384, fps: int = FRAMES_PER_SECOND,
                   progress: Callable[[int, int], None] = lambda done, total: None) -> Path:
    path = Path(path)
    suffix = check_turntable_suffix(path)
    pictures = []
    for i, picture in enumerate(turntable_frames(vertices_camera, faces, frames, size)):
        pictures.append(picture)
        progress(i + 1, frames)
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            first, *rest = [Image.fromarray(p) for p in pictures]
            first.save(tmp, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)
        else:
            _write_mp4(tmp, pictures, fps)
    return path


def _write_mp4(path: Path, pictures: list[np.ndarray], fps: int) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height = pictures[0].shape[1], pictures[0].shape[0]
        stream.pix_fmt = "yuv420p"  # what players expect of an MP4
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
