"""Keypoint prompts: "this keypoint of this person is here, in the photo" → the decoder's prompt.

Names and indices are upstream's MHR70 keypoints, spelled as upstream's
`sam_3d_body/metadata/mhr70.py` lists them in `pose_info["original_keypoint_info"]`
("left_wrist" is 62). The same file's `mhr_names` spells them with hyphens ("left-wrist"),
which is accepted too, as is the bare index.

Photo pixels → prompt, as upstream turns its own prompts (full mode's wrists and elbows,
`SAM3DBody._full_to_crop` then `+ 0.5`): the person crop's affine (float32), divided by the crop
side, so [0, 1] spans the crop. Upstream's prompt encoder asserts 0 ≤ x, y ≤ 1, and upstream never
clamps a point from outside the crop into a prompt: full mode drops such points (one person) or
sends them as "invalid" (a batch), and training turned a keypoint outside the crop into a
*negative* prompt. Clamping the user's point onto the crop's edge would prompt the keypoint
somewhere the user did not say, so a point outside the crop is refused, naming the crop's extent.

The model's limit: `PROMPT_ENCODER.MAX_NUM_CLICKS` of model_config.yaml (2 in the released
model), the most clicks upstream's training sampled per person. The decoder itself would take
more tokens (full mode's re-run sends 4), but a pass was never trained on more user clicks.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from ..errors import UserError
from .preprocess import CropGeometry

MHR70_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_big_toe_tip", "left_small_toe_tip", "left_heel", "right_big_toe_tip", "right_small_toe_tip", "right_heel",
    "right_thumb_tip", "right_thumb_first_joint", "right_thumb_second_joint", "right_thumb_third_joint",
    "right_index_tip", "right_index_first_joint", "right_index_second_joint", "right_index_third_joint",
    "right_middle_tip", "right_middle_first_joint", "right_middle_second_joint", "right_middle_third_joint",
    "right_ring_tip", "right_ring_first_joint", "right_ring_second_joint", "right_ring_third_joint",
    "right_pinky_tip", "right_pinky_first_joint", "right_pinky_second_joint", "right_pinky_third_joint",
    "right_wrist", "left_thumb_tip", "left_thumb_first_joint", "left_thumb_second_joint", "left_thumb_third_joint",
    "left_index_tip", "left_index_first_joint", "left_index_second_joint", "left_index_third_joint",
    "left_middle_tip", "left_middle_first_joint", "left_middle_second_joint", "left_middle_third_joint",
    "left_ring_tip", "left_ring_first_joint", "left_ring_second_joint", "left_ring_third_joint", "left_pinky_tip",
    "left_pinky_first_joint", "left_pinky_second_joint", "left_pinky_third_joint", "left_wrist", "left_olecranon",
    "right_olecranon", "left_cubital_fossa", "right_cubital_fossa", "left_acromion", "right_acromion", "neck",
)
LIMIT_KEY = "PROMPT_ENCODER.MAX_NUM_CLICKS"
JSON_NOTE = "keypoint prompts the decoder was given: MHR70 name and index, (x, y) in photo pixels"


@dataclass(frozen=True)
class KeypointPrompt:
    """One keypoint of one person placed by the user: MHR70 `name` / `index`, photo pixels x, y."""

    name: str
    index: int
    x: float
    y: float

    @classmethod
    def at(cls, keypoint: str | int, x: float, y: float) -> "KeypointPrompt":
        """A prompt from a name (or index) and photo pixels; an unknown name is a UserError."""
        index = keypoint_index(keypoint)
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise UserError(f"keypoint {MHR70_NAMES[index]} at ({x:g}, {y:g}): give finite pixel coordinates")
        return cls(MHR70_NAMES[index], index, x, y)

    def to_json_dict(self) -> dict:
        return {"name": self.name, "index": self.index, "x": self.x, "y": self.y}

    @classmethod
    def from_json_dict(cls, entry: dict) -> "KeypointPrompt":
        prompt = cls.at(entry["name"], entry["x"], entry["y"])
        if "index" in entry and int(entry["index"]) != prompt.index:
            raise UserError(f"keypoint prompt {entry['name']!r} has index {entry['index']}, but MHR70 "
                            f"numbers it {prompt.index}")
        return prompt


def keypoint_index(keypoint: str | int) -> int:
    """The MHR70 index of a name ("left_wrist", "left-wrist", any case) or of an index ("62")."""
    text = str(keypoint).strip()
    if text.isdigit():
        index = int(text)
        if index < len(MHR70_NAMES):
            return index
        raise UserError(f"keypoint index {index} does not exist: MHR70 numbers its keypoints 0 to "
                        f"{len(MHR70_NAMES) - 1}")
    key = text.lower().replace("-", "_").replace(" ", "_")
    if key in MHR70_NAMES:
        return MHR70_NAMES.index(key)
    close = difflib.get_close_matches(key, MHR70_NAMES, n=3, cutoff=0.6)
    close += [n for n in MHR70_NAMES if key and key in n and n not in close][: max(0, 3 - len(close))]
    hint = f"did you mean {', '.join(close)}?" if close else f"the names are: {', '.join(MHR70_NAMES)}"
    raise UserError(f"no keypoint named {text!r} (MHR70 names, as upstream lists them): {hint}")


def check_prompt_count(count: int, limit: int, who: str = "the person") -> None:
    """More prompts than the model takes in one pass → a UserError that says the limit and its source."""
    if count > limit:
        raise UserError(f"{count} keypoint prompts for {who}, but the model takes at most {limit} per person "
                        f"({LIMIT_KEY} in the model folder's model_config.yaml): remove "
                        f"{count - limit} of them")


def crop_extent_px(geom: CropGeometry) -> tuple[float, float, float, float]:
    """The person crop's square in photo pixels (x1, y1, x2, y2): where prompts can go."""
    half = float(geom.scale[0]) / 2
    cx, cy = float(geom.center[0]), float(geom.center[1])
    return cx - half, cy - half, cx + half, cy + half


def crop_coordinates(prompts: Sequence[KeypointPrompt], geom: CropGeometry) -> torch.Tensor:
    """(P, 2) prompts in the crop's [-0.5, 0.5] frame, computed as the model does its own keypoints
    (CropCamera.full_to_crop_normalized: float32 affine, divided by the crop side)."""
    points = torch.tensor([[p.x, p.y] for p in prompts], dtype=torch.float32).reshape(-1, 2)
    affine = torch.from_numpy(np.asarray(geom.affine)).to(torch.float32)
    crop = points @ affine[:, :2].T + affine[:, 2]
    return crop / geom.crop_size - 0.5


def prompt_tensor(prompts: Sequence[KeypointPrompt], geom: CropGeometry, limit: int,
                  who: str = "the person") -> torch.Tensor:
    """(1, P, 3) prompt rows (x, y in [0, 1] of the crop, MHR70 index) for the prompt encoder;
    refuses more than `limit` prompts, two prompts of one keypoint, and points outside the crop."""
    prompts = list(prompts)
    check_prompt_count(len(prompts), limit, who)
    seen = [p.name for p in prompts]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise UserError(f"keypoint {', '.join(twice)} is prompted twice for {who}: give each keypoint one place")
    crop = crop_coordinates(prompts, geom)
    outside = ~((crop >= -0.5) & (crop <= 0.5)).all(dim=-1)
    for p, off in zip(prompts, outside.tolist()):
        if off:
            x1, y1, x2, y2 = crop_extent_px(geom)
            raise UserError(
                f"keypoint {p.name} at ({p.x:g}, {p.y:g}) is outside {who}'s crop (x {x1:.1f} to "
                f"{x2:.1f}, y {y1:.1f} to {y2:.1f} px); the model takes prompts inside the crop only "
                "(upstream drops its own prompts that fall outside, it does not clamp them); widen the box "
                "or move the point")
    coords = (crop + 0.5).clamp(0.0, 1.0)  # as upstream: [-0.5, 0.5] → [0, 1]
    labels = torch.tensor([float(p.index) for p in prompts], dtype=torch.float32).reshape(-1, 1)
    return torch.cat([coords, labels], dim=-1)[None]


def prompts_from_json(entries: Iterable[dict] | None) -> list[KeypointPrompt]:
    """A person's `prompts` list of params.json back to prompts (checked like new ones)."""
    return [KeypointPrompt.from_json_dict(e) for e in (entries or [])]


def read_prompts(params_json: dict) -> list[list[KeypointPrompt]]:
    """Every person's prompts of a params.json (one person, or {"people": [...]})."""
    people = params_json.get("people", [params_json])
    return [prompts_from_json(person.get("prompts")) for person in people]
