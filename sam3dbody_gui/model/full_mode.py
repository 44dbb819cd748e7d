"""Full mode: the body pass refined by the hand decoder (upstream's default inference).

    1. body pass (`SAM3DBody.decode_body`): besides the body, two hand-box tokens give a square
       box per hand in the body crop (`hand_boxes_xyxy`);
    2. hand crops: the right hand as it is, the left hand in the mirrored photo (the hand
       decoder only knows right hands), each padded 0.9 and squared like a person box
       (pipeline/hand_crops.py), through the same backbone (the caller's: any runtime backend);
    3. hand pass: both crops in one hand-decoder pass (`decode_hands`: the `*_hand` twins, whose
       MHR head poses a wrist-centred right hand); the left result is mirrored back;
    4. checks per hand (`HandChecks`): the hand's wrist rotation agrees with the body's, the crop
       is big enough, all hand keypoints stay in the crop, the hand's wrist lands near the body's;
    5. body re-run (`refine_body`): the body decoder again, from the body estimate, prompted with
       the accepted hands' wrists and the body's elbows; then the accepted hands' pose, scale and
       shape replace the body's, the wrist angles are solved so the arm meets the hand's
       orientation (kept inside the wrist's joint limits), and the rig runs once more.

Our own implementation of upstream's `run_inference(inference_type="full")`; its numbers are
matched in fp32 (tools/parity/full_mode_parity.py). Everything is batched over persons and
static in shape except where upstream itself branches on data: the hand boxes go to the host
(crop geometry is host arithmetic, as for the body box) and, for one person, the prompts of
rejected hands are dropped rather than masked (upstream runs the decoder on the kept ones only).

Two deliberate differences, both invisible with upstream's default camera: the final 2-D
keypoints are projected with the given intrinsics (upstream uses the image centre as the
principal point there), and `joint_global_rots` are the final rig's (upstream leaves the
prompted decoder pass's rotations, which no longer match the mesh).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .camera_head import project_points
from .crop_camera import CropCamera
from .prompt_encoder import LABEL_INVALID
from .rotations import intrinsic_xzy_from_rotmat, rotation_angle_between, rotmat_from_intrinsic_xzy
from .sam3d_body import SAM3DBody

LEFT, RIGHT = 0, 1  # hand order everywhere here (upstream's `hand_box` order)

# MHR70 keypoints.
RIGHT_WRIST_KP, LEFT_WRIST_KP = 41, 62
RIGHT_ELBOW_KP, LEFT_ELBOW_KP = 8, 7
# MHR skeleton joints, (left, right): lower arm, wrist twist, wrist.
LOWER_ARM_JOINTS = (76, 40)
WRIST_TWIST_JOINTS = (77, 41)
WRIST_JOINTS = (78, 42)
# Body pose parameters of each wrist, in the order of its intrinsic XZY Euler angles (left, right).
WRIST_POSE_PARAMS = ((41, 43, 42), (31, 33, 32))
# Wrist joint limits (radians) for the X, Z, Y angles.
WRIST_LIMITS = ((-2.2, 1.0), (-2.2, 1.5), (-1.2, 1.5))
# Scale components of the hands (left, right); from 18 on they shape the fingers of both hands.
HAND_SCALE = (9, 8)
FINGER_SCALES_START = 18
HAND_SHAPE_START = 40  # shape components 40+ only shape the hands
NUM_HAND_PCA = 54
PROMPT_LABELS = (RIGHT_WRIST_KP, LEFT_WRIST_KP, RIGHT_ELBOW_KP, LEFT_ELBOW_KP)
PROMPT_HAND = (RIGHT, LEFT, RIGHT, LEFT)  # whose check each prompt depends on


@dataclass(frozen=True)
class HandChecks:
    """When a hand-decoder result replaces the body's hand (upstream's fixed values)."""

    wrist_angle: float = 1.4  # rad: hand's and body's local wrist rotations differ by less
    min_crop_side: float = 64.0  # px: the hand crop is larger than this
    keypoint_extent: float = 0.5  # all hand keypoints inside the crop (|crop coord| < 0.5)
    wrist_distance: float = 0.25  # hand wrist to body wrist, in hand-crop sides


def _columns(t: torch.Tensor, index) -> torch.Tensor:
    """`t[:, index]` for a fixed list of indices, without an index tensor made on the host (a
    host→device copy is not allowed inside a CUDA-graph capture)."""
    return torch.stack([t[:, i] for i in index], dim=1)


# ----------------------------------------------------------------------------------- boxes --
def hand_boxes_xyxy(hand_box: torch.Tensor, cam: CropCamera) -> torch.Tensor:
    """The body pass's hand boxes (B, 2, 4) (centre x, centre y, w, h in [0, 1] of the crop)
    → square boxes (B, 2, 4) x1, y1, x2, y2 in photo pixels (side = the longer of w, h)."""
    box = hand_box.float() * cam.crop_size
    scale = cam.affine[:, 0, 0].float()[:, None]  # crop px per photo px (the crop is unrotated)
    centre = (box[..., :2] - cam.affine[:, None, :, 2].float()) / scale[..., None]
    half = (box[..., 2:].amax(dim=-1) / scale / 2)[..., None]
    return torch.cat([centre - half, centre + half], dim=-1)


# ------------------------------------------------------------------------------- hand pass --
def decode_hands(model: SAM3DBody, features: torch.Tensor, cams: CropCamera) -> dict[str, torch.Tensor]:
    """Hand decoder on (2B, C, h, w) features of the hand crops: rows [0, B) the mirrored left
    hands, [B, 2B) the right hands. Returns the hand pass with the left rows mirrored back where
    the body needs them (hand PCA, wrist rotation, hand scale); 2-D keypoints stay in each crop's
    own photo (the left ones in the mirrored photo). Static shapes, no host syncs and no
    host-made tensors, so it can be captured as a CUDA graph (runtime/decoders/hand_graph.py)."""
    feats = model.prompt_encoder.add_no_mask(features.to(model.decoder_dtype))
    out = model.run_decoder(model.hand_branch(), feats, cams, model.box_prompt(feats.shape[0], feats.device))
    n = feats.shape[0] // 2
    is_left = (torch.arange(2 * n, device=feats.device) < n)[:, None]

    # A mirrored right hand is the left hand: its PCA coefficients go to the left slot.
    hand = out["hand"]
    out["hand"] = torch.where(is_left, torch.cat([hand[:, NUM_HAND_PCA:], hand[:, NUM_HAND_PCA:]], 1), hand)
    # Its size: the right-hand scale component re-expressed in the left one's units (body head's PCA).
    mean, comps = model.head_pose.scale_mean.float(), model.head_pose.scale_comps.float()
    r, l = HAND_SCALE[RIGHT], HAND_SCALE[LEFT]
    left_size = ((mean[r] + comps[r, r] * out["scale"][:, r]) - mean[l]) / comps[l, l]
    out["scale"] = torch.where(is_left & (torch.arange(out["scale"].shape[1], device=feats.device) == l),
                               left_size[:, None], out["scale"])
    # Its wrist rotation, mirrored (x → -x): rows 1 and 2 change sign.
    wrist = out["joint_global_rots"][:, WRIST_JOINTS[RIGHT]]
    mirrored = torch.cat([wrist[:, :1], -wrist[:, 1:]], dim=1)  # no constant tensor: CUDA-graph capturable
    out["wrist_rotation"] = torch.where(is_left[..., None], mirrored, wrist)
    return out


# -------------------------------------------------------------------------------- refine ---
def _local_wrist(model: SAM3DBody, joint_rots: torch.Tensor, wrist_global: torch.Tensor) -> torch.Tensor:
    """The wrists' local rotations (B, 2, 3, 3) that give them `wrist_global` on the arms of
    `joint_rots` (B, 127, 3, 3)."""
    rest = _columns(model.head_pose.joint_rotation.float()[None], WRIST_TWIST_JOINTS)[0]
    zero_wrist = _columns(joint_rots, LOWER_ARM_JOINTS) @ rest
    return zero_wrist.transpose(-1, -2) @ wrist_global


def _fix_wrist_euler(xzy: torch.Tensor) -> torch.Tensor:
    """Of the two Euler triples of each wrist rotation, (x, z, y) and (x+π, π-z, y+π) wrapped,
    keep the one nearer the joint limits (squared excess, summed over the axes)."""
    x, z, y = xzy.unbind(-1)
    alt = torch.stack([torch.atan2(torch.sin(x + torch.pi), torch.cos(x + torch.pi)),
                       torch.atan2(torch.sin(-(z + torch.pi)), torch.cos(-(z + torch.pi))),
                       torch.atan2(torch.sin(y + torch.pi), torch.cos(y + torch.pi))], dim=-1)

    def excess(angles: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(angles[..., 0])
        for i, (low, high) in enumerate(WRIST_LIMITS):
            a = angles[..., i]
            total = total + (low - a).clamp(min=0.0) ** 2 + (a - high).clamp(min=0.0) ** 2
        return total

    return torch.where((excess(alt) < excess(xzy))[..., None], alt, xzy)


def hand_check_masks(
    model: SAM3DBody, body: dict, hands: dict, hand_cams: CropCamera, image_width: int, checks: HandChecks,
) -> dict[str, torch.Tensor]:
    """The four per-hand checks, each (B, 2) bool in (left, right) order, their AND
    (`accepted`), and the measured values (`wrist_angle_rad`, `wrist_distance_rel`,
    `keypoint_extent`)."""
    n = body["pred_keypoints_2d"].shape[0]
    two = lambda t: torch.stack([t[:n], t[n:]], dim=1)  # noqa: E731  (2B, ...) → (B, 2, ...)
    body_wrist_local = rotmat_from_intrinsic_xzy(_wrist_angles(body["body_pose"]))
    hand_wrist_local = _local_wrist(model, body["joint_global_rots"], two(hands["wrist_rotation"]))
    angle = rotation_angle_between(body_wrist_local, hand_wrist_local)
    side = two(hand_cams.box_size.float())
    extent = two(hands["pred_keypoints_2d_cropped"].abs().amax(dim=(1, 2)))
    hand_wrist = _hand_wrists_in_photo(hands, image_width)  # (B, 2, 2)
    body_wrist = _columns(body["pred_keypoints_2d"], (LEFT_WRIST_KP, RIGHT_WRIST_KP))
    # Upstream divides each hand's distance by the *other* hand's crop side; kept for parity.
    distance = (hand_wrist - body_wrist).norm(dim=-1) / side.flip(1)
    masks = {
        "wrist_angle": angle < checks.wrist_angle,
        "crop_size": side > checks.min_crop_side,
        "keypoints_in_crop": extent < checks.keypoint_extent,
        "wrist_distance": distance < checks.wrist_distance,
    }
    masks["accepted"] = masks["wrist_angle"] & masks["crop_size"] & masks["keypoints_in_crop"] & masks["wrist_distance"]
    masks.update(wrist_angle_rad=angle, wrist_distance_rel=distance, keypoint_extent=extent)
    return masks


def _wrist_angles(body_pose: torch.Tensor) -> torch.Tensor:
    """(B, 133) body pose → (B, 2, 3) intrinsic XZY angles of the (left, right) wrists."""
    return _columns(body_pose, [p for side in WRIST_POSE_PARAMS for p in side]).unflatten(1, (2, 3))


def _hand_wrists_in_photo(hands: dict, image_width: int) -> torch.Tensor:
    """(B, 2, 2) hand-pass wrist keypoints in photo pixels (the left one un-mirrored)."""
    n = hands["pred_keypoints_2d"].shape[0] // 2
    wrist = hands["pred_keypoints_2d"][:, RIGHT_WRIST_KP]
    left = torch.stack([image_width - wrist[:n, 0] - 1, wrist[:n, 1]], dim=-1)
    return torch.stack([left, wrist[n:]], dim=1)


def wrist_elbow_prompts(body: dict, hands: dict, cam: CropCamera, image_width: int) -> torch.Tensor:
    """Keypoint prompts (B, 4, 3): the hands' wrists and the body's elbows as (x, y, MHR70 index),
    x, y in the body crop's [-0.5, 0.5] frame (inside the crop when within it)."""
    hand_wrist = _hand_wrists_in_photo(hands, image_width)
    points = torch.stack([hand_wrist[:, RIGHT], hand_wrist[:, LEFT],
                          body["pred_keypoints_2d"][:, RIGHT_ELBOW_KP], body["pred_keypoints_2d"][:, LEFT_ELBOW_KP]], 1)
    crop = cam.full_to_crop_normalized(points)
    labels = torch.stack([torch.full_like(crop[:, 0, 0], label) for label in PROMPT_LABELS], dim=1)
    return torch.cat([crop, labels[..., None]], dim=-1)


def rerun_prompts(prompts: torch.Tensor, accepted: torch.Tensor,
                  user_prompts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The re-run's hand/elbow prompts (B, 4, 3) as the prompt encoder takes them ([0, 1] crop
    coordinates + MHR70 index) and which are usable (B, 4): their hand was accepted and they lie
    in the crop. Static shapes, no host syncs (CUDA-graph capturable).

    One person (upstream's rule): only points strictly inside the crop are usable, and the caller
    drops the others (`kept_prompts`, a host decision, as upstream's). Several persons: points on
    the crop's edge count too, and the others become 'invalid' points, so the shape stays fixed.
    A keypoint the user placed (`user_prompts`, see `refine_body`) is not also prompted from the
    hand or the elbow estimate: the user's place wins."""
    crop, hand_ok = prompts[..., :2], _columns(accepted, PROMPT_HAND)
    if user_prompts is not None:
        user_prompts = user_prompts.to(prompts)
        hand_ok = hand_ok & ~(prompts[..., 2:3] == user_prompts[:, None, :, 2]).any(dim=-1)
    coords = (crop + 0.5).clamp(0.0, 1.0)  # [0, 1] crop coordinates, as the prompt encoder takes
    prompt = torch.cat([coords, prompts[..., 2:]], dim=-1)
    if prompt.shape[0] == 1:
        usable = ((crop > -0.5) & (crop < 0.5)).all(dim=-1) & hand_ok
    else:
        usable = ((crop >= -0.5) & (crop <= 0.5)).all(dim=-1) & hand_ok
        invalid = torch.zeros_like(prompt)
        invalid[..., 2] = LABEL_INVALID
        prompt = torch.where(usable[..., None], prompt, invalid)
    return prompt, usable


def kept_prompts(usable: torch.Tensor) -> list[int]:
    """One person: the indices of its usable prompts (the one host sync of the re-run)."""
    return torch.nonzero(usable[0]).flatten().tolist()


def rerun_decoder(model: SAM3DBody, body: dict, body_features: torch.Tensor, cam: CropCamera,
                  prompt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The body decoder from the body estimate, prompted with `prompt` (B, P, 3)."""
    prev = torch.cat([body["pred_pose_raw"], body["shape"], body["scale"], body["hand"], body["face"],
                      body["pred_cam"]], dim=1)
    feats = model.prompt_encoder.add_no_mask(body_features.to(model.decoder_dtype))
    return model.run_decoder(model.body_branch(), feats, cam, prompt, prev.to(model.decoder_dtype))


def _rerun_body(model: SAM3DBody, body: dict, body_features: torch.Tensor, cam: CropCamera,
                prompts: torch.Tensor, accepted: torch.Tensor,
                user_prompts: torch.Tensor | None = None) -> tuple[dict | None, torch.Tensor]:
    """The body decoder from the body estimate, prompted with the prompts whose hand was accepted
    and which lie in the crop (`rerun_prompts`). Returns (the pass or None when no prompt is left,
    prompts used (B,)). `user_prompts` (B, P, 3), [0, 1] crop coordinates + MHR70 index
    (LABEL_INVALID pads): the user's keypoints, sent in the same pass (upstream has no user
    prompts in full mode; this is its re-run with the user's points added)."""
    prompt, usable = rerun_prompts(prompts, accepted, user_prompts)
    if prompt.shape[0] == 1:
        keep = kept_prompts(usable)
        if not keep and user_prompts is None:
            return None, usable.sum(dim=1)
        prompt = prompt[:, keep]
    if user_prompts is not None:
        prompt = torch.cat([prompt, user_prompts.to(prompt)], dim=1)
    return rerun_decoder(model, body, body_features, cam, prompt), usable.sum(dim=1)


def refine_body(
    model: SAM3DBody, body: dict, body_features: torch.Tensor, cam: CropCamera, hands: dict,
    hand_cams: CropCamera, image_width: int, checks: HandChecks = HandChecks(),
    user_prompts: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Steps 4-5: `body` (the body pass), `body_features` (its backbone features), `hands` from
    `decode_hands` on crops described by `hand_cams`. Returns the refined body, in the body
    pass's keys, plus per hand (B, 2): `hand_checks_*` (each check), `hand_passed_checks`, `hand_used`
    (replaced the body's hand), the measured `hand_wrist_angle`, `hand_wrist_distance`,
    `hand_keypoint_extent`; and per person (B,): `hand_prompts_used`, `body_rerun`.
    `user_prompts`: the user's keypoint prompts, added to the re-run (see `_rerun_body`).

    In three steps a captured version can replay (runtime/decoders/compiled_hand_refine.py):
    the checks and prompts, the re-run, `fuse_hands`."""
    masks = hand_check_masks(model, body, hands, hand_cams, image_width, checks)
    prompts = wrist_elbow_prompts(body, hands, cam, image_width)
    rerun, prompts_used = _rerun_body(model, body, body_features, cam, prompts, masks["accepted"], user_prompts)
    return fuse_hands(model, body, rerun, hands, masks, cam, checks, prompts_used)


def fuse_hands(model: SAM3DBody, body: dict, rerun: dict | None, hands: dict, masks: dict[str, torch.Tensor],
               cam: CropCamera, checks: HandChecks, prompts_used: torch.Tensor) -> dict[str, torch.Tensor]:
    """The accepted hands' pose, scale and shape put on the (re-run, or else the first) body, the
    wrist angles solved so the arm meets each hand's orientation, and the rig run once more.
    Static shapes, no host syncs (CUDA-graph capturable)."""
    accepted = masks["accepted"]
    cur = dict(body) if rerun is None else rerun
    n = accepted.shape[0]
    left = {k: v[:n] for k, v in hands.items()}
    right = {k: v[n:] for k, v in hands.items()}

    # The hands' estimates, as the body would take them.
    hand_pose = torch.cat([left["hand"][:, :NUM_HAND_PCA], right["hand"][:, NUM_HAND_PCA:]], dim=1)
    columns = torch.arange(cur["scale"].shape[1], device=accepted.device)
    hand_scale = torch.where(columns == HAND_SCALE[LEFT], left["scale"], cur["scale"])
    hand_scale = torch.where(columns == HAND_SCALE[RIGHT], right["scale"], hand_scale)
    finger_scale = (left["scale"] + right["scale"]) / 2
    hand_scale = torch.where(columns >= FINGER_SCALES_START, finger_scale, hand_scale)
    shape_columns = torch.arange(cur["shape"].shape[1], device=accepted.device)
    hand_shape = torch.where(shape_columns >= HAND_SHAPE_START, (left["shape"] + right["shape"]) / 2, cur["shape"])

    # Wrist angles that put each hand's orientation on the (re-run) body's arm.
    head = model.head_pose
    rig = head.rig(model.mhr, cur["global_rot"], cur["body_pose"], hand_pose, hand_scale, hand_shape, cur["face"])
    wrist_global = torch.stack([left["wrist_rotation"], right["wrist_rotation"]], dim=1)
    fused = _local_wrist(model, rig["joint_global_rots"], wrist_global)
    body_wrist_local = rotmat_from_intrinsic_xzy(_wrist_angles(body["body_pose"]))
    take = (rotation_angle_between(body_wrist_local, fused) < checks.wrist_angle) & accepted  # B, 2
    wrist_xzy = _fix_wrist_euler(intrinsic_xzy_from_rotmat(fused))

    wrists = torch.where(take[..., None], wrist_xzy, _wrist_angles(cur["body_pose"])).flatten(1)
    body_pose = cur["body_pose"].clone()
    for column, param in enumerate(p for side in WRIST_POSE_PARAMS for p in side):
        body_pose[:, param] = wrists[:, column]
    hand = torch.where(take[..., None], hand_pose.unflatten(1, (2, NUM_HAND_PCA)),
                       cur["hand"].unflatten(1, (2, NUM_HAND_PCA))).flatten(1)
    scale = cur["scale"]
    for side in (LEFT, RIGHT):
        column = columns == HAND_SCALE[side]
        scale = torch.where(column & take[:, side:side + 1], hand_scale, scale)
    weight = take.float()
    count = weight.sum(dim=1, keepdim=True)
    any_hand = count > 0

    def blend(key: str) -> torch.Tensor:
        return (left[key] * weight[:, :1] + right[key] * weight[:, 1:]) / (count + 1e-8)

    scale = torch.where((columns >= FINGER_SCALES_START) & any_hand, blend("scale"), scale)
    shape = torch.where((shape_columns >= HAND_SHAPE_START) & any_hand, blend("shape"), cur["shape"])

    final = head.rig(model.mhr, cur["global_rot"], body_pose, hand, scale, shape, cur["face"])
    kp3d_cam = final["pred_keypoints_3d"] + cur["pred_cam_t"][:, None]
    kp2d = project_points(kp3d_cam, cam.intrinsics)
    out = {k: v for k, v in cur.items()}
    out.update(final)
    out.update(
        body_pose=body_pose, hand=hand, scale=scale, shape=shape,
        pred_pose_raw=torch.zeros_like(cur["pred_pose_raw"]),  # no longer describes the pose
        pred_keypoints_2d=kp2d, pred_keypoints_2d_depth=kp3d_cam[..., 2],
        pred_keypoints_2d_cropped=cam.full_to_crop_normalized(kp2d),
        hand_box=body["hand_box"], hand_logits=body["hand_logits"],
        hand_checks_wrist_angle=masks["wrist_angle"], hand_checks_crop_size=masks["crop_size"],
        hand_checks_keypoints_in_crop=masks["keypoints_in_crop"], hand_checks_wrist_distance=masks["wrist_distance"],
        hand_passed_checks=accepted, hand_used=take, hand_wrist_angle=masks["wrist_angle_rad"],
        hand_wrist_distance=masks["wrist_distance_rel"], hand_keypoint_extent=masks["keypoint_extent"],
        hand_prompts_used=prompts_used, body_rerun=torch.full_like(prompts_used, int(rerun is not None)),
    )
    return out
