"""A clip's outputs from its motion: the animated glTF, the BVH, the JSON Lines and the overlay
video, planned as (Output, writer) pairs for `output_set.publish` (all or none, atomically).

One plan for `sam3dbody-gui video` and the window's video panel, so both write the same files:

    request = ClipOutputs(animation=Path("anim.glb"), bvh=Path("anim.bvh"))
    request.check_suffixes()
    writers = clip_writers(request, motion, pipe.model, clip, fps, header, progress=...)
    publish(writers, inputs=[clip])

The rigging (every person-frame through the MHR rig for the glTF and the BVH) is done when the
plan is made, the files when `publish` calls the writers. `progress(what, done, total)` says
which step runs: "rigging person-frames", "overlay frames".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import UserError
from ..video.motion import ClipMotion
from .output_set import Output, Writer

Progress = Callable[[str, int, int], None]  # (what, done, total)
CORRECTIVES = ("baked", "none")


@dataclass(frozen=True)
class ClipOutputs:
    """The files to write (None: not this one). `correctives`: the glTF's (animated_gltf.py)."""

    animation: Optional[Path] = None  # .glb: one skin per person, a keyframe a frame
    bvh: Optional[Path] = None  # the lowest id's motion
    jsonl: Optional[Path] = None  # per-frame parameters
    overlay_video: Optional[Path] = None  # .mp4: the clip with the meshes over it
    correctives: str = "baked"

    def outputs(self) -> list[Output]:
        named = ((self.animation, "animation"), (self.bvh, "BVH"), (self.jsonl, "per-frame parameters"),
                 (self.overlay_video, "overlay video"))
        return [Output(Path(path), what) for path, what in named if path]

    def check_suffixes(self) -> None:
        """Each file's name fits what it is (before any work)."""
        from .animated_gltf import check_animated_suffix
        from .frames_jsonl import check_jsonl_suffix
        from .video_overlay import check_overlay_video_suffix

        if self.correctives not in CORRECTIVES:
            raise UserError(f"correctives must be one of {', '.join(CORRECTIVES)}, got {self.correctives!r}")
        if self.animation:
            check_animated_suffix(self.animation)
        if self.bvh and Path(self.bvh).suffix.lower() != ".bvh":
            raise UserError(f"a BVH file is named .bvh, not {Path(self.bvh).suffix or 'no extension'}")
        if self.jsonl:
            check_jsonl_suffix(self.jsonl)
        if self.overlay_video:
            check_overlay_video_suffix(self.overlay_video)


def clip_header(clip: Path, fps: float, image_hw: tuple[int, int], smooth: float, identity: str) -> dict:
    """What the JSON Lines file says about the clip and the settings (its first line)."""
    return {"clip": Path(clip).name, "fps": fps, "image_size_hw": list(image_hw), "smooth": smooth,
            "identity": identity}


def clip_writers(request: ClipOutputs, motion: ClipMotion, model, clip: Path, fps: float, header: dict,
                 stop: Optional[int] = None, progress: Progress = lambda what, done, total: None
                 ) -> list[tuple[Output, Writer]]:
    """The request's files as writers for `publish`. `model`: the pipeline's SAM3DBody (its MHR
    rig). `stop`: the overlay video ends before this frame (the pass's max_frames)."""
    from .animated_gltf import animated_glb_bytes, animated_people
    from .bvh import bvh_text
    from .frames_jsonl import write_frames_jsonl
    from .video_overlay import write_overlay_video

    if not motion.people:
        raise UserError("nobody was recovered in the clip (every person was lost or not kept); nothing written")
    writers: list[tuple[Output, Writer]] = []
    named = {out.what: out for out in request.outputs()}
    if request.animation or request.bvh:
        from ..model.rig_fit import rig_skeleton

        skeleton = rig_skeleton(model.mhr)
        tracks = [(f"person_{pid}", p.frames, p.results) for pid, p in motion.people.items()]
        # The BVH needs only the joints: no morph targets when there is no glTF to hold them.
        animated = animated_people(motion.frames, tracks, skeleton, model.mhr,
                                   correctives=request.correctives if request.animation else "none",
                                   progress=lambda done, total: progress("rigging person-frames", done, total))
        times = [motion.times[f] for f in motion.frames]
        if request.animation:
            writers.append((named["animation"], lambda tmp: tmp.write_bytes(animated_glb_bytes(animated, times))))
        if request.bvh:
            text = bvh_text(skeleton, animated[0].world, fps=fps)
            writers.append((named["BVH"], lambda tmp: tmp.write_text(text, encoding="utf-8")))
    if request.jsonl:
        writers.append((named["per-frame parameters"], lambda tmp: write_frames_jsonl(tmp, motion, header)))
    if request.overlay_video:
        writers.append((named["overlay video"], lambda tmp: write_overlay_video(
            tmp, clip, motion, stop, progress=lambda done, total: progress("overlay frames", done, total))))
    return writers
