"""What one inference returns: mesh, keypoints, camera, parameters, features and timings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .keypoint_prompts import JSON_NOTE as PROMPTS_NOTE
from .keypoint_prompts import KeypointPrompt
from .preprocess import CropGeometry

# The one list of stages (timings_ms keys, latency cards, bench columns) and of modes.
STAGES = ("preprocess", "backbone", "decoder+MHR", "total")
FULL_MODE_STAGES = ("hand crops", "hand backbone", "hand decoder", "body re-run")  # full mode only
# Pipeline.redecode's one stage: the decoder (+ MHR) again on the person's kept backbone features.
CACHED_DECODER_STAGE = "decoder+MHR (cached features)"
from ..runtime.choices import MODES  # noqa: E402,F401 - the one list of modes
HAND_CHECK_NAMES = ("wrist_angle", "crop_size", "keypoints_in_crop", "wrist_distance")


# What frame each array of params.json is in (issue 18: the mesh files already include cam_t).
CAMERA_FRAME = "OpenCV camera frame of the photo (x right, y down, z forward), metres"
JSON_FRAMES = {
    "cam_t": f"the body's translation in the {CAMERA_FRAME}",
    "keypoints_3d": f"{CAMERA_FRAME}, relative to the body: add cam_t to place them in the camera frame",
    "joints": f"{CAMERA_FRAME}, relative to the body: add cam_t to place them in the camera frame",
    "keypoints_2d": "photo pixels (x right, y down), the 3-D keypoints + cam_t projected with `intrinsics`",
    "box_xyxy": "photo pixels",
    "prompts": PROMPTS_NOTE,
    "hand_boxes_crop_xywh": "(centre x, centre y, width, height) as fractions of the body crop's side",
    "mesh_files": ("a mesh exported in the camera frame already includes cam_t (its vertices are in the "
                   "camera frame); the upright frame is that mesh turned Y-up, centred in x and z, feet on y = 0"),
}


@dataclass
class HandChecksPassed:
    """Per hand (left, right), whether each of full mode's acceptance checks passed (bool (2,))."""

    wrist_angle: np.ndarray
    crop_size: np.ndarray
    keypoints_in_crop: np.ndarray
    wrist_distance: np.ndarray


@dataclass
class HandMeasurements:
    """Per hand (left, right), what the checks compared (float (2,))."""

    wrist_angle_rad: np.ndarray  # angle between the hand's and the body's wrist rotation
    wrist_distance: np.ndarray  # hand wrist to body wrist, in hand-crop sides
    keypoint_extent: np.ndarray  # largest |keypoint| in the hand crop, crop-normalised


@dataclass
class HandRefinement:
    """What full mode did with each hand (left, right)."""

    boxes_xyxy: np.ndarray  # (2, 4) the predicted hand boxes, photo px
    crop_boxes_xyxy: np.ndarray  # (2, 4) the hand crops, photo px (the left one un-mirrored)
    accepted: np.ndarray  # (2,) bool: the hand replaced the body's
    passed_checks: np.ndarray  # (2,) bool
    checks: HandChecksPassed
    measured: HandMeasurements
    prompts_used: int  # wrist/elbow prompts of the body re-run
    body_rerun: bool  # whether the body decoder ran again

    def to_json_dict(self) -> dict:
        return _jsonable(asdict(self))


@dataclass
class MeshResult:
    """All arrays are numpy on the CPU. Geometry is in the OpenCV camera frame of the photo
    (x right, y down, z forward), metres, relative to the body: a point of the camera frame is
    `vertices[i] + cam_t` (`vertices_camera`); JSON_FRAMES says the same for params.json."""

    vertices: np.ndarray  # (V, 3) float32, relative to the camera translation
    faces: np.ndarray  # (F, 3) int64
    keypoints_2d: np.ndarray  # (70, 2) full-image pixels
    keypoints_3d: np.ndarray  # (70, 3) like vertices
    joints: np.ndarray  # (127, 3) skeleton joint positions, like vertices
    cam_t: np.ndarray  # (3,) camera translation of the body, metres
    focal_length: float
    intrinsics: np.ndarray  # (3, 3)
    image_hw: tuple[int, int]
    crop: CropGeometry
    params: dict[str, np.ndarray]  # MHR / shape / pose parameters, by upstream's output names
    features: np.ndarray  # (C, h, w) float32 backbone feature map of the crop
    hand_boxes: np.ndarray  # (2, 4) left/right hand boxes, crop-normalised (x, y, w, h)
    timings_ms: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    mode: str = "body"  # "full": refined by the hand decoder (see model/full_mode.py)
    hands: HandRefinement | None = None  # full mode only
    camera_source: str = "default"  # where `intrinsics` came from: "default", "user" or "exif (...)"
    metric: dict | None = None  # a known height applied (metric_scale.py): height, scale, how measured
    warnings: list[str] = field(default_factory=list)  # what looks wrong with this person (warnings.py)
    prompts: list[KeypointPrompt] = field(default_factory=list)  # keypoint prompts the decoder was given
    # What a decoder re-run needs besides `features` (pipeline/prompted_decode.py): the box query's
    # estimate, and in full mode the hand pass's outputs. Not written to params.json.
    decode_state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def vertices_camera(self) -> np.ndarray:
        """Vertices placed in the camera frame (what projects onto the photo)."""
        return self.vertices + self.cam_t[None, :]

    def project(self, points_camera: np.ndarray) -> np.ndarray:
        """Camera-frame points (N, 3) → image pixels (N, 2)."""
        k = self.intrinsics
        z = np.maximum(points_camera[:, 2:3], 1e-6)
        return points_camera[:, :2] / z * k[[0, 1], [0, 1]] + k[:2, 2]

    def to_json_dict(self) -> dict:
        """Parameters and camera for `params.json` (no mesh, no feature map)."""
        return {
            "image_size_hw": list(self.image_hw),
            "box_xyxy": self.crop.bbox_xyxy.tolist(),
            "crop": {"center": self.crop.center.tolist(), "side": float(self.crop.scale[0]),
                     "affine": self.crop.affine.tolist(), "size": self.crop.crop_size},
            "focal_length": float(self.focal_length),
            "camera_source": self.camera_source,
            "intrinsics": self.intrinsics.tolist(),
            "cam_t": self.cam_t.tolist(),
            "keypoints_2d": self.keypoints_2d.tolist(),
            "keypoints_3d": self.keypoints_3d.tolist(),
            "joints": self.joints.tolist(),
            "hand_boxes_crop_xywh": self.hand_boxes.tolist(),
            "params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
            "num_vertices": int(self.vertices.shape[0]),
            "num_faces": int(self.faces.shape[0]),
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "backend": self.backend,
            "mode": self.mode,
            **({"hands": self.hands.to_json_dict()} if self.hands is not None else {}),
            **({"metric": self.metric} if self.metric is not None else {}),
            "warnings": list(self.warnings),
            "prompts": [p.to_json_dict() for p in self.prompts],
            "frames": JSON_FRAMES,
        }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
