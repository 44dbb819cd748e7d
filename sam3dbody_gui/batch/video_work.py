"""A video source as jobs: one per frame, decoded in order, then the video's own line.

Each frame goes through the same steps as a photo (photo_work.py: people, infer, write) and
gets the same lines, with its frame index. A frame that does not decode is an "error" line of
its own (video/reader.py skips it; the frames after it keep their numbers). When every frame
has been read, one "video" line says so (frames read, frames lost): that line is what makes the
whole video done for a rerun. A run stopped half way through a long video resumes inside it:
the frames already in the manifest are decoded (decoding is sequential) but not computed again.

Frames are people's photos here, one at a time: no tracking and no smoothing over time, which
is what the `video` command is for (one clip, its people followed and their motion filtered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import UserError, first_line
from .photo_work import Job, _line, read
from .resume import content_sha256


def video_jobs(job: Job, fingerprint: str, done: set) -> Iterator[Job]:
    from ..video.reader import VideoReader

    try:
        job.sha = content_sha256(Path(job.path))
    except OSError:
        pass  # the reader says why in one line
    if job.sha is not None and (job.sha, fingerprint) in done:
        job.skipped = True
        yield job
        return
    try:
        reader = VideoReader(Path(job.path))
    except UserError as exc:
        job.outcome = _line(job, fingerprint, "error", error=first_line(exc))
        yield job
        return
    lost: list[tuple[int, str]] = []  # reported by the reader, not yet handed on
    lost_total = 0
    read_frames, stopped = 0, None

    def on_bad_frame(index: int, why: str) -> None:
        nonlocal lost_total
        lost_total += 1
        lost.append((index, why))

    def frame_job(index: int) -> Job:
        frame = Job(job.index, job.path, "frame", frame=index, sha=job.sha)
        frame.skipped = job.sha is not None and (job.sha, fingerprint, index) in done
        return frame

    def lost_jobs() -> Iterator[Job]:
        while lost:
            index, why = lost.pop(0)
            bad = frame_job(index)
            if not bad.skipped:
                bad.outcome = _line(bad, fingerprint, "error", error=f"frame {index}: {why}")
            yield bad

    with reader:
        try:
            for frame in reader.frames(on_bad_frame=on_bad_frame):
                yield from lost_jobs()
                read_frames += 1
                one = frame_job(frame.index)
                if not one.skipped:
                    one.image = frame.rgb
                yield one
        except Exception as exc:  # noqa: BLE001 - a damaged container: the frames so far stand
            stopped = f"{type(exc).__name__}: {first_line(exc)}"
        yield from lost_jobs()
    extra = {"frames": read_frames, "frames_lost": lost_total}
    if stopped:
        extra["note"] = f"reading stopped after {read_frames} frames ({stopped})"
    job.outcome = _line(job, fingerprint, "video", **extra)
    yield job


def source_jobs(job: Job, fingerprint: str, done: set) -> Iterator[Job]:
    """Every job of one source, in order: a photo's one, or a video's frames and its line."""
    if job.kind == "video":
        yield from video_jobs(job, fingerprint, done)
    else:
        yield read(job, fingerprint, done)
