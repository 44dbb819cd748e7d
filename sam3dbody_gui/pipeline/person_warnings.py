"""What looks wrong with a recovered person, said beside them (the window's person list) and saved
in the JSON: duplicate people, hands full mode rejected, keypoints far outside the box, a body
behind the camera or absurdly far away."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..box_overlap import box_iou
from .result import HAND_CHECK_NAMES, MeshResult

DUPLICATE_BOX_IOU = 0.7
DUPLICATE_MESH_DISTANCE_M = 0.15  # mean vertex distance below which two meshes are one person
KEYPOINTS_OUTSIDE_FRACTION = 0.3  # of the keypoints, outside the box grown by half its size
FARTHEST_PLAUSIBLE_M = 60.0
CHECK_WORDS = {"wrist_angle": "its wrist turned too far from the arm's", "crop_size": "its crop was too small",
               "keypoints_in_crop": "its keypoints left the hand crop", "wrist_distance": "its wrist was far from the arm's"}


def person_warnings(results: Sequence[MeshResult], labels: Sequence[str] | None = None) -> list[list[str]]:
    """One list of sentences per person (empty: nothing to say). `labels`: how to name each
    person in them (default: their index)."""
    labels = [str(i) for i in range(len(results))] if labels is None else list(labels)
    said: list[list[str]] = [[] for _ in results]
    for i, r in enumerate(results):
        depth = r.vertices_camera[:, 2]
        if (depth <= 0).any():
            said[i].append("part of the body is behind the camera: the box or the camera is wrong")
        elif float(np.median(depth)) > FARTHEST_PLAUSIBLE_M:
            said[i].append(f"the body is {float(np.median(depth)):.0f} m away: the camera's focal length may be wrong")
        x1, y1, x2, y2 = r.crop.bbox_xyxy
        grow_x, grow_y = (x2 - x1) / 2, (y2 - y1) / 2
        kp = r.keypoints_2d
        outside = ((kp[:, 0] < x1 - grow_x) | (kp[:, 0] > x2 + grow_x) | (kp[:, 1] < y1 - grow_y) | (kp[:, 1] > y2 + grow_y))
        if outside.mean() > KEYPOINTS_OUTSIDE_FRACTION:
            said[i].append(f"{int(outside.sum())} of {len(kp)} keypoints lie far outside the box")
        if r.hands is not None:
            for side, name in enumerate(("left", "right")):
                if not r.hands.passed_checks[side]:
                    failed = [CHECK_WORDS[c] for c in HAND_CHECK_NAMES if not getattr(r.hands.checks, c)[side]]
                    said[i].append(f"full mode kept the body's {name} hand: {'; '.join(failed)}")
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            a, b = results[i], results[j]
            iou = box_iou(a.crop.bbox_xyxy, b.crop.bbox_xyxy)
            same_mesh = (a.vertices.shape == b.vertices.shape and float(np.linalg.norm(
                a.vertices_camera - b.vertices_camera, axis=1).mean()) < DUPLICATE_MESH_DISTANCE_M)
            if iou > DUPLICATE_BOX_IOU or same_mesh:
                why = f"boxes overlap {iou:.0%}" if iou > DUPLICATE_BOX_IOU else "their meshes are in the same place"
                said[i].append(f"may be the same person as person {labels[j]} ({why})")
                said[j].append(f"may be the same person as person {labels[i]} ({why})")
    return said
