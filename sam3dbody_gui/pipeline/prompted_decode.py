"""The decoder again, with the user's keypoint prompts, on a person's cached backbone features.

Upstream's way (sam_3d_body/models/meta_arch/sam3d_body.py): `run_inference` runs the box query
(`forward_step` → `forward_pose_branch`: one invalid point as the prompt, the initial estimate as
the previous-estimate token); `run_keypoint_prompt(batch, output, keypoint_prompt)` then runs
`forward_decoder` once more on the same image embeddings and condition, with the prompts and
with the box query's estimate (pred_pose_raw, shape, scale, hand, face, pred_cam) as the
previous-estimate token, and keeps the last layer's prediction. It returns no hand boxes (only
`forward_pose_branch` makes them), so a prompted result keeps the box query's.

Every prompted pass here starts from the *box query's* estimate, not from the last prompted
one: the result is a function of the prompts alone (a drag's last position gives the same mesh
whatever the path), as one `run_keypoint_prompt` call with all the prompts gives.

Full mode (upstream has no user prompts there): the body pass is the box query, so the hand
boxes, crops and hand-decoder outputs do not depend on the prompts; the user's prompts join the
wrists/elbows in the body re-run (model/full_mode.py `refine_body`). So a full-mode result keeps
the hand pass's outputs (`decode_state`), and a re-decode needs no backbone at all.

On a GPU the one-person prompted pass is a CUDA graph per prompt count
(runtime/decoders/prompted_graph.py); full mode's re-run stays eager (its prompt count is a
host decision, as upstream's).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import UserError
from ..model.crop_camera import CropCamera
from ..model.full_mode import HandChecks, refine_body
from ..model.sam3d_body import SAM3DBody
from ..runtime.decoders.prompted_graph import eager_prompted_pass
from .keypoint_prompts import KeypointPrompt, prompt_tensor
from .preprocess import CropGeometry
from .result import CACHED_DECODER_STAGE, MeshResult

# Upstream's previous estimate (run_keypoint_prompt), in its order: 266 + 45 + 28 + 108 + 72 + 3.
QUERY_KEYS = ("pred_pose_raw", "shape", "scale", "hand", "face", "pred_cam")
QUERY_STATE = "query_estimate"
# The box query's outputs a prompted pass keeps (upstream's prompted pass makes no hand boxes).
FROM_QUERY = ("hand_box", "hand_logits")
# What full mode's re-run reads of the hand pass (rows left, right), and of the hand crops.
HAND_KEYS = ("pred_keypoints_2d", "pred_keypoints_2d_cropped", "wrist_rotation", "hand", "scale", "shape")
HAND_CAMERA_KEYS = ("box_center", "box_size", "affine")
HAND_STATE_PREFIX = "hand_pass."
HAND_CAMERA_PREFIX = "hand_crop."
# (features, camera, prompt rows, previous estimate) → the pass's outputs (eager or a CUDA graph).
PromptedPass = Callable[[torch.Tensor, CropCamera, torch.Tensor, torch.Tensor], dict]


def person_prompts(prompts: Sequence[Sequence[KeypointPrompt]] | None, geoms: Sequence[CropGeometry],
                   limit: int) -> list[torch.Tensor | None]:
    """Each person's (1, P, 3) prompt rows (None: a plain box query), checked against the crop and
    the model's limit; `prompts`: one list per person (None or empty: no prompts)."""
    if prompts is None:
        return [None] * len(geoms)
    if len(prompts) != len(geoms):
        raise UserError(f"prompts for {len(prompts)} people, but there are {len(geoms)} people")
    who = (lambda i: "the person") if len(geoms) == 1 else (lambda i: f"person {i}")
    return [prompt_tensor(p, g, limit, who(i)) if p else None for i, (p, g) in enumerate(zip(prompts, geoms))]


def query_estimate(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, 522) the box query's estimate, the previous-estimate token of a prompted pass."""
    return torch.cat([out[key].float() for key in QUERY_KEYS], dim=1)


def prompted_pass(model: SAM3DBody, features: torch.Tensor, cam: CropCamera, prompt: torch.Tensor,
                  query: torch.Tensor) -> dict[str, torch.Tensor]:
    """One body-decoder pass with keypoint prompts (B, P, 3) from the box query's estimate (eager)."""
    return eager_prompted_pass(model, features, cam, prompt.to(features.device), query.to(features.device))


def apply_prompts(run_pass: PromptedPass, out: dict[str, torch.Tensor], features: torch.Tensor, cam: CropCamera,
                  prompts: Sequence[torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """The box query's outputs `out` with each prompted person's rows replaced by their prompted
    pass. People with the same number of prompts share a batch; no padding, since an extra
    'invalid' prompt is a token the others attend to and would change their numbers."""
    query = query_estimate(out)
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        if prompt is not None:
            groups.setdefault(prompt.shape[1], []).append(i)
    merged = dict(out)
    for rows in groups.values():
        index = torch.tensor(rows, device=features.device)
        prompt = torch.cat([prompts[i] for i in rows]).to(features.device)
        got = run_pass(features[index], cam.rows(rows), prompt, query[index])
        for key, value in got.items():
            if key in merged and key not in FROM_QUERY:
                merged[key] = merged[key].index_copy(0, index, value.to(merged[key].dtype))
    return merged


def hand_state(hands: dict[str, torch.Tensor], hand_cams: CropCamera) -> dict[str, torch.Tensor]:
    """What a full-mode re-decode needs of the hand pass, per person (n, 2, ...) (left, right)."""
    n = hands["hand"].shape[0] // 2

    def pair(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([t[:n], t[n:]], dim=1)

    state = {HAND_STATE_PREFIX + key: pair(hands[key]) for key in HAND_KEYS}
    state.update({HAND_CAMERA_PREFIX + key: pair(getattr(hand_cams, key)) for key in HAND_CAMERA_KEYS})
    return state


def person_camera(geom: CropGeometry, intrinsics: np.ndarray, device: torch.device) -> CropCamera:
    """The body crop's camera, as `Pipeline.run_people` makes it."""
    return CropCamera(
        box_center=torch.from_numpy(np.asarray(geom.center)[None]),
        box_size=torch.tensor([float(geom.scale[0])]),
        affine=torch.from_numpy(np.asarray(geom.affine)[None]),
        intrinsics=torch.from_numpy(np.asarray(intrinsics, dtype=np.float64)[None]),
        crop_size=geom.crop_size,
    ).to(device)


def _cached_hands(result: MeshResult, device: torch.device) -> tuple[dict, CropCamera]:
    state = result.decode_state
    if result.hands is None or not all(HAND_STATE_PREFIX + key in state for key in HAND_KEYS):
        raise UserError("a full-mode re-decode needs the hand pass of a full-mode run: run the photo in full "
                        "mode first (the hand crops are not put through the backbone again)")

    def rows(name: str) -> torch.Tensor:  # (2, ...) rows left, right, as decode_hands gives them
        return torch.from_numpy(np.asarray(state[name], dtype=np.float32)).to(device)

    hands = {key: rows(HAND_STATE_PREFIX + key) for key in HAND_KEYS}
    k = torch.from_numpy(np.stack([np.asarray(result.intrinsics, dtype=np.float32)] * 2)).to(device)
    cams = CropCamera(crop_size=result.crop.crop_size, intrinsics=k,
                      **{key: rows(HAND_CAMERA_PREFIX + key) for key in HAND_CAMERA_KEYS})
    return hands, cams


def redecode_pass(pipeline, result: MeshResult, prompts: Sequence[KeypointPrompt], mode: str,
                  hand_checks: HandChecks | None) -> dict[str, torch.Tensor]:
    """`Pipeline.redecode`'s decoder work: the decoder (+ MHR) again on `result`'s kept features,
    crop and camera with `prompts` (empty: the plain box query); no preprocessing, no backbone.
    Full mode: the box query again (what the hand checks compare) and the re-run with the kept
    hand pass. Returns the outputs, as the pipeline's passes do."""
    if mode not in ("body", "full"):
        raise ValueError(f"mode must be body or full, got {mode!r}")
    model, device = pipeline.model, pipeline.device
    prompt = prompt_tensor(prompts, result.crop, pipeline.config.max_num_clicks).to(device) if prompts else None
    if QUERY_STATE not in result.decode_state:
        raise UserError("this result keeps no box-query estimate to re-decode from: run the photo again")
    features = torch.from_numpy(np.ascontiguousarray(result.features, dtype=np.float32))[None].to(device)
    cam = person_camera(result.crop, result.intrinsics, device)
    if mode == "full":
        hands, hand_cams = _cached_hands(result, device)
        body = pipeline.decoder(features, cam)
        return refine_body(model, body, features, cam, hands, hand_cams, result.image_hw[1],
                           hand_checks or HandChecks(), user_prompts=prompt)
    if prompt is None:
        return pipeline.decoder(features, cam)
    query = torch.from_numpy(np.asarray(result.decode_state[QUERY_STATE], dtype=np.float32))[None].to(device)
    return pipeline.prompted_decoder(features, cam, prompt, query)


def redecoded_result(result: MeshResult, mine: dict[str, np.ndarray], params: dict[str, np.ndarray],
                     hands, prompts: Sequence[KeypointPrompt], mode: str, t0: float, t1: float) -> MeshResult:
    """`result` with the re-decode's numbers (`mine`: one person's host outputs)."""
    return dataclasses.replace(
        result,
        vertices=mine["pred_vertices"], keypoints_2d=mine["pred_keypoints_2d"], keypoints_3d=mine["pred_keypoints_3d"],
        joints=mine["pred_joint_coords"], cam_t=mine["pred_cam_t"], params=params,
        hand_boxes=result.hand_boxes,  # the box query's, as every prompted pass keeps them
        mode=mode, hands=hands, prompts=list(prompts),
        timings_ms={CACHED_DECODER_STAGE: (t1 - t0) * 1e3, "total": (time.perf_counter() - t0) * 1e3},
        metric=None, warnings=[],  # they described the old numbers: the caller applies them again
    )
