"""The video panel's exports: the clip's motion as an animated GLB, a BVH, JSON Lines or an
overlay MP4, through the plan `sam3dbody-gui video` uses (export/clip_outputs.py), on a worker
(ExportJobs: one job at a time, progress as sentences, one closing line), written atomically
(output_set.publish: a temporary, then a rename; the clip itself is protected)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import UserError

Say = Callable[[str], None]
SAY_EVERY_S = 0.25


@dataclass(frozen=True)
class ExportKind:
    field: str  # ClipOutputs' field
    label: str  # the button
    what: str  # the closing line
    suffix: str
    filters: str  # the save dialog's


KINDS = {
    "glb": ExportKind("animation", "Animated GLB", "Animation", ".glb", "Animated glTF (*.glb)"),
    "bvh": ExportKind("bvh", "BVH", "BVH motion", ".bvh", "BVH motion (*.bvh)"),
    "jsonl": ExportKind("jsonl", "JSON Lines", "Per-frame parameters", ".jsonl", "JSON Lines (*.jsonl)"),
    "mp4": ExportKind("overlay_video", "Overlay MP4", "Overlay video", ".mp4", "MP4 video (*.mp4)"),
}


@dataclass
class ClipExport:
    """What a job needs, captured on the UI thread."""

    motion: object  # ClipMotion
    model: object  # the pipeline's SAM3DBody (its MHR rig)
    clip: Path
    fps: float
    image_hw: tuple[int, int]
    smooth: float
    stop: Optional[int] = None  # the pass's max_frames


def default_name(clip: Path, kind: str) -> str:
    suffix = {"mp4": "_overlay.mp4", "jsonl": "_frames.jsonl"}.get(kind, KINDS[kind].suffix)
    return Path(clip).stem + suffix


def _throttled(say: Say) -> Callable[[str, int, int], None]:
    last = [0.0]

    def progress(what: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= SAY_EVERY_S:
            last[0] = now
            say(f"{what}: {done} of {total}")

    return progress


def write_clip_export(kind: str, path: Path, inp: ClipExport, say: Say) -> str:
    """One of the clip's files at `path` (the job ExportJobs runs)."""
    from ..export.clip_outputs import ClipOutputs, clip_header, clip_writers
    from ..export.output_set import Output, check_outputs, publish

    if kind not in KINDS:
        raise UserError(f"unknown export {kind!r}")
    spec = KINDS[kind]
    request = ClipOutputs(**{spec.field: Path(path)})
    request.check_suffixes()
    clip = Output(Path(inp.clip), "input clip")
    check_outputs(request.outputs(), inputs=[clip])
    header = clip_header(inp.clip, inp.fps, inp.image_hw, inp.smooth, "clip")
    writers = clip_writers(request, inp.motion, inp.model, inp.clip, inp.fps, header, inp.stop,
                           progress=_throttled(say))
    say("writing the file")
    publish(writers, inputs=[clip])
    people = inp.motion.people
    whom = f"id {min(people)}" if kind == "bvh" else f"{len(people)} {'person' if len(people) == 1 else 'people'}"
    return f"{spec.what} saved: {path} ({len(inp.motion.frames)} frames, {whom})"
