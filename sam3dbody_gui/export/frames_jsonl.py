"""A clip's per-frame parameters as JSON Lines: a header line, then one line per frame.

    {"type": "clip", "clip": …, "fps": …, "image_size_hw": …, "people": [ids], "frames": N, …}
    {"type": "frame", "frame": 0, "time": 0.0, "people": [{"id": 1, "cam_t": …, "params": …}, …]}
    {"type": "frame", "frame": 5, "time": 0.2, "skipped": "it does not decode (…)", "people": []}

Each person carries what params.json carries for a photo, less the mesh and the timings (the
same clip and settings give the same file, byte for byte): box, source (detector, carried, user),
score, camera, 2-D and 3-D keypoints, joints and the MHR parameters after identity and
smoothing. Numbers have float32's precision (7 significant digits). Written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..atomic_file import atomic_path
from ..errors import UserError
from ..pipeline.result import JSON_FRAMES
from ..video.motion import ClipMotion

SUFFIXES = (".jsonl", ".ndjson", ".json")
PARAM_KEYS = ("global_rot", "body_pose", "shape", "scale", "hand", "face", "mhr_model_params")


def check_jsonl_suffix(path: Path) -> None:
    if Path(path).suffix.lower() not in SUFFIXES:
        raise UserError(f"per-frame parameters are JSON Lines: name the file .jsonl, not "
                        f"{Path(path).suffix or 'a file without extension'}")


def _num(values) -> list:
    array = np.asarray(values, np.float64)
    flat = [float(f"{v:.7g}") for v in array.reshape(-1)]
    return np.array(flat).reshape(array.shape).tolist() if array.ndim > 1 else flat


def _person(person_id: int, result, source: str, score) -> dict:
    return {"id": person_id, "source": source, "score": None if score is None else float(f"{score:.7g}"),
            "box_xyxy": _num(result.crop.bbox_xyxy), "cam_t": _num(result.cam_t),
            "focal_length": float(f"{result.focal_length:.7g}"),
            "keypoints_2d": _num(result.keypoints_2d), "keypoints_3d": _num(result.keypoints_3d),
            "joints": _num(result.joints), "params": {k: _num(result.params[k]) for k in PARAM_KEYS}}


def frames_jsonl_lines(motion: ClipMotion, header: dict,
                       progress: Callable[[int, int], None] = lambda done, total: None) -> Iterator[str]:
    """The file's lines (without newlines). `header`: what to say about the clip and settings."""
    frames = sorted(set(motion.frames) | {f for f, _ in motion.skipped})
    skipped = dict(motion.skipped)
    yield json.dumps({"type": "clip", **header, "people": sorted(motion.people), "frames": len(frames),
                      "coordinates": JSON_FRAMES}, separators=(",", ":"))
    where = {pid: {int(f): i for i, f in enumerate(p.frames)} for pid, p in motion.people.items()}
    for n, frame in enumerate(frames):
        line = {"type": "frame", "frame": frame, "time": round(float(motion.times[frame]), 6)}
        if frame in skipped:
            line["skipped"] = skipped[frame]
        people = []
        for pid, person in motion.people.items():
            i = where[pid].get(frame)
            if i is not None:
                people.append(_person(pid, person.results[i], person.sources[i], person.scores[i]))
        line["people"] = people
        yield json.dumps(line, separators=(",", ":"))
        progress(n + 1, len(frames))


def write_frames_jsonl(path: Path, motion: ClipMotion, header: dict,
                       progress: Callable[[int, int], None] = lambda done, total: None) -> None:
    """Write to `path` as it is (a temporary of `output_set.publish`, or see save_frames_jsonl)."""
    with open(path, "w", encoding="utf-8") as f:
        for line in frames_jsonl_lines(motion, header, progress):
            f.write(line + "\n")


def save_frames_jsonl(path: Path, motion: ClipMotion, header: dict,
                      progress: Callable[[int, int], None] = lambda done, total: None) -> Path:
    check_jsonl_suffix(path)
    with atomic_path(Path(path)) as tmp:
        write_frames_jsonl(tmp, motion, header, progress)
    return Path(path)
