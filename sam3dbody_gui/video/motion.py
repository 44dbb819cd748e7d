"""A finished pass → each person's motion: ids fixed, one identity, the pose smoothed, re-rigged.

Per person (a track: the frames an id is in):
  * identity: the body's shape (45) and bone scales (28) are who the person is, not how they
    move, so one value holds for the whole clip: the per-channel median over the track (robust to
    the frames where the crop was poor). `identity="frame"` keeps each frame's own;
  * pose: the decoder's continuous pose, the hands and the camera translation, filtered over time
    (smoothing.py); strength 0 leaves them as the pipeline gave them;
  * the MHR head and rig run again on the result (the model's own code, batched), so every frame
    is a complete MeshResult (mesh, joints, keypoints, parameters) like the pipeline's.
With strength 0 and identity "frame", the re-rig gives back the pipeline's own per-frame results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..pipeline.preprocess import crop_geometry, default_intrinsics
from ..pipeline.result import MeshResult
from .smoothing import canonical_pose, jitter_mm, one_euro
from .tracking import IdFixes, apply_id_fixes

IDENTITIES = ("clip", "frame")
ARRAYS = ("pose_raw", "hand", "shape", "scale", "face", "cam_t", "pred_cam", "hand_box", "box")
RIG_BATCH = 64


@dataclass
class Track:
    """One person's frames, arrays (F, ·) in frame order."""

    id: int
    frames: np.ndarray
    times: np.ndarray
    sources: list
    scores: list
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.frames)


def tracks_from_records(records: Sequence[dict], fixes: IdFixes = IdFixes()) -> dict[int, Track]:
    """The pass's people, by id (after the user's fixes), each in frame order."""
    people = [r for r in records if not r.get("skipped")]
    mapping = apply_id_fixes(((r["frame"], [p["id"] for p in r["people"]]) for r in people), fixes)
    rows: dict[int, list[tuple[dict, dict]]] = {}
    for r in people:
        for p in r["people"]:
            new = mapping.get((r["frame"], p["id"]))
            if new is not None:
                rows.setdefault(new, []).append((r, p))
    tracks = {}
    for person, items in sorted(rows.items()):
        items.sort(key=lambda rp: rp[0]["frame"])
        tracks[person] = Track(
            id=person, frames=np.array([r["frame"] for r, _ in items]), times=np.array([r["time"] for r, _ in items]),
            sources=[p["source"] for _, p in items], scores=[p["score"] for _, p in items],
            arrays={k: np.array([p[k] for _, p in items], np.float32) for k in ARRAYS})
    return tracks


def with_identity(track: Track, identity: str = "clip") -> Track:
    if identity not in IDENTITIES:
        raise UserError(f"identity must be one of {', '.join(IDENTITIES)}, got {identity!r}")
    if identity == "frame":
        return track
    arrays = dict(track.arrays)
    for key in ("shape", "scale"):
        median = np.median(arrays[key].astype(np.float64), axis=0).astype(np.float32)
        arrays[key] = np.broadcast_to(median, arrays[key].shape).copy()
    return replace(track, arrays=arrays)


def smoothed(track: Track, strength: float, fps: float) -> Track:
    """The track's pose, hands and camera translation filtered over time (strength 0..1)."""
    if strength <= 0:
        return track
    a = track.arrays
    pose = one_euro(canonical_pose(a["pose_raw"]), track.frames, fps, strength)
    hand = one_euro(a["hand"], track.frames, fps, strength)
    cam_t = one_euro(a["cam_t"], track.frames, fps, strength)
    arrays = dict(a, pose_raw=pose.astype(np.float32), hand=hand.astype(np.float32), cam_t=cam_t.astype(np.float32))
    return replace(track, arrays=arrays)


@torch.inference_mode()
def rerig(model, track: Track, image_hw: tuple[int, int], intrinsics: Optional[np.ndarray] = None,
          backend: str = "") -> list[MeshResult]:
    """The track's parameters through the model's MHR head and rig: one MeshResult per frame.
    `model`: the pipeline's SAM3DBody (`pipeline.model`)."""
    from ..model.rotations import intrinsic_zyx_from_rotmat, rotmat_from_6d_columns

    head, rig = model.head_pose, model.mhr
    device = next(head.parameters()).device
    k = default_intrinsics(image_hw) if intrinsics is None else np.asarray(intrinsics, np.float64)
    kt = torch.as_tensor(k, dtype=torch.float32, device=device)
    faces = head.faces.cpu().numpy()
    crop_size = model.cfg.crop_size
    a = track.arrays
    results = []
    for lo in range(0, len(track), RIG_BATCH):
        part = slice(lo, lo + RIG_BATCH)
        t = {key: torch.as_tensor(a[key][part], dtype=torch.float32, device=device)
             for key in ("pose_raw", "hand", "shape", "scale", "face", "cam_t")}
        global_rot = intrinsic_zyx_from_rotmat(rotmat_from_6d_columns(t["pose_raw"][:, :6]))
        body = head.params.body(t["pose_raw"][:, 6:])
        out = head.rig(rig, global_rot, body, t["hand"], t["scale"], t["shape"], t["face"])
        kp_cam = out["pred_keypoints_3d"] + t["cam_t"][:, None]
        xy1 = kp_cam / kp_cam[..., 2:3]
        kp2d = torch.einsum("ij,bnj->bni", kt, xy1)[..., :2]
        host = {name: v.float().cpu().numpy() for name, v in (
            ("vertices", out["pred_vertices"]), ("keypoints_3d", out["pred_keypoints_3d"]),
            ("joints", out["pred_joint_coords"]), ("keypoints_2d", kp2d), ("mhr_model_params", out["mhr_model_params"]),
            ("global_rot", global_rot), ("body_pose", body))}
        for i in range(len(host["vertices"])):
            f = lo + i
            params = {"global_rot": host["global_rot"][i], "body_pose": host["body_pose"][i], "shape": a["shape"][f],
                      "scale": a["scale"][f], "hand": a["hand"][f], "face": a["face"][f],
                      "mhr_model_params": host["mhr_model_params"][i], "pred_pose_raw": a["pose_raw"][f],
                      "pred_cam": a["pred_cam"][f]}
            results.append(MeshResult(
                vertices=host["vertices"][i], faces=faces, keypoints_2d=host["keypoints_2d"][i],
                keypoints_3d=host["keypoints_3d"][i], joints=host["joints"][i], cam_t=a["cam_t"][f].copy(),
                focal_length=float(k[0, 0]), intrinsics=k, image_hw=tuple(image_hw),
                crop=crop_geometry(a["box"][f].astype(np.float64), tuple(image_hw), crop_size=crop_size),
                params=params, features=np.zeros((0, 0, 0), np.float32),
                hand_boxes=a["hand_box"][f].reshape(2, 4).copy(), backend=backend))
    return results


@dataclass
class PersonMotion:
    id: int
    frames: np.ndarray  # (F,) frame indices
    results: list[MeshResult]  # one per frame, after identity and smoothing
    sources: list
    scores: list
    jitter_before_mm: float  # the pipeline's own per-frame joints
    jitter_after_mm: float


@dataclass
class ClipMotion:
    people: dict[int, PersonMotion]
    frames: list[int]  # every frame of the pass that decoded, in order
    times: dict[int, float]
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def jitter_mm(self) -> dict[int, tuple[float, float]]:
        """Per id, (before, after) smoothing: the mean joint acceleration, mm/frame² (for bench)."""
        return {pid: (p.jitter_before_mm, p.jitter_after_mm) for pid, p in self.people.items()}

    def at(self, frame: int) -> list[tuple[int, MeshResult]]:
        """(id, result) of everyone in `frame`, by id."""
        out = []
        for person in self.people.values():
            hit = np.flatnonzero(person.frames == frame)
            if len(hit):
                out.append((person.id, person.results[int(hit[0])]))
        return out


def camera_joints(results: Sequence[MeshResult]) -> np.ndarray:
    return np.stack([r.joints + r.cam_t for r in results])


def clip_motion(records: Sequence[dict], model, image_hw: tuple[int, int], fps: float, strength: float = 0.5,
                identity: str = "clip", fixes: IdFixes = IdFixes(), intrinsics: Optional[np.ndarray] = None,
                backend: str = "", progress=lambda done, total: None) -> ClipMotion:
    """Everything the exports need from a finished pass (see the module notes)."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"the smoothing strength goes from 0 to 1, got {strength}")
    tracks = tracks_from_records(records, fixes)
    people = {}
    for n, (person, track) in enumerate(tracks.items()):
        raw = rerig(model, track, image_hw, intrinsics, backend)
        final_track = smoothed(with_identity(track, identity), strength, fps)
        final = raw if final_track is track else rerig(model, final_track, image_hw, intrinsics, backend)
        people[person] = PersonMotion(person, track.frames, final, track.sources, track.scores,
                                      jitter_mm(camera_joints(raw), track.frames),
                                      jitter_mm(camera_joints(final), track.frames))
        progress(n + 1, len(tracks))
    decoded = [r for r in records if not r.get("skipped")]
    return ClipMotion(people, [r["frame"] for r in decoded], {r["frame"]: r["time"] for r in records},
                      [(r["frame"], r["skipped"]) for r in records if r.get("skipped")])
