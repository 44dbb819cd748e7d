"""MHR head: pose token → MHR parameters → mesh, joints and keypoints (camera frame).

The token is decoded (a residual on top of the learned initial estimate) into a 519-vector:
6-D global rotation | 260 continuous body pose | 45 shape | 28 scale | 2×54 hand PCA | 72 face.
These become MHR's 204 model parameters, the rig (a TorchScript asset) produces the mesh in
centimetres, Y up, and the result is converted to metres in the OpenCV camera frame.

The hand decoder's head (`hand_model=True`, upstream's `enable_hand_model`) predicts a right
hand in its own crop: its global rotation is the wrist's, so the rig is turned (and moved) so
that the right wrist takes that orientation at the origin, every parameter but the right
hand's is zeroed, and only the right-hand keypoints (MHR70 21-41) are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FeedForward
from .mhr_params import NUM_BODY_CONT, PoseParamConverter
from .rotations import (euler_xyz_from_rotmat, intrinsic_zyx_from_rotmat, rotmat_from_6d_columns,
                        rotmat_from_euler_xyz, rotmat_from_quat_xyzw)

NUM_SHAPE = 45
NUM_SCALE = 28
NUM_HAND_CONT_PER_HAND = 54
NUM_FACE = 72
NUM_POSE_OUTPUTS = 6 + NUM_BODY_CONT + NUM_SHAPE + NUM_SCALE + 2 * NUM_HAND_CONT_PER_HAND + NUM_FACE  # 519
NUM_MODEL_SCALES = 68
NUM_JOINTS = 127
NUM_KEYPOINT_ROWS = 308
NUM_KEYPOINTS = 70  # the MHR70 keypoints the model predicts
RIGHT_HAND_KEYPOINTS = (21, 42)  # MHR70 rows [21, 42): the right hand (wrist = 41)
CM_PER_M = 100.0


def to_camera_frame(points: torch.Tensor) -> torch.Tensor:
    """MHR is Y-up; the camera frame (OpenCV) is Y-down, Z-forward: negate y and z.
    (No constant tensor is built, so this also runs inside CUDA-graph capture.)"""
    return torch.cat([points[..., :1], -points[..., 1:]], dim=-1)


class MHRHead(nn.Module):
    def __init__(self, in_dim: int, mlp_depth: int, channel_div: int, num_vertices: int, num_faces: int,
                 hand_model: bool = False) -> None:
        super().__init__()
        self.hand_model = hand_model
        self.proj = FeedForward(in_dim, in_dim // channel_div, NUM_POSE_OUTPUTS, num_layers=mlp_depth)
        # Rig data that ships in the checkpoint (fixed, not learned).
        self.register_buffer("joint_rotation", torch.zeros(NUM_JOINTS, 3, 3))
        self.register_buffer("scale_mean", torch.zeros(NUM_MODEL_SCALES))
        self.register_buffer("scale_comps", torch.zeros(NUM_SCALE, NUM_MODEL_SCALES))
        self.register_buffer("faces", torch.zeros(num_faces, 3, dtype=torch.long))
        self.register_buffer("hand_pose_mean", torch.zeros(NUM_HAND_CONT_PER_HAND))
        self.register_buffer("hand_pose_comps", _identity(NUM_HAND_CONT_PER_HAND))
        self.register_buffer("hand_joint_idxs_left", torch.zeros(27, dtype=torch.long))
        self.register_buffer("hand_joint_idxs_right", torch.zeros(27, dtype=torch.long))
        self.register_buffer("keypoint_mapping", torch.zeros(NUM_KEYPOINT_ROWS, num_vertices + NUM_JOINTS))
        self.register_buffer("right_wrist_coords", torch.zeros(3))
        self.register_buffer("root_coords", torch.zeros(3))
        self.register_buffer("local_to_world_wrist", torch.zeros(3, 3))
        self.register_buffer("nonhand_param_idxs", torch.zeros(145, dtype=torch.long))
        self.register_buffer("hand_pose_comps_ori", _identity(NUM_HAND_CONT_PER_HAND))
        self.params = PoseParamConverter()

    @property
    def num_vertices(self) -> int:
        return self.keypoint_mapping.shape[1] - NUM_JOINTS

    def _hand_params(self, hand_cont: torch.Tensor) -> torch.Tensor:
        """PCA coefficients of one hand (B, 54) → its 27 joint angles."""
        return self.params.hand(self.hand_pose_mean.float() + hand_cont @ self.hand_pose_comps.float())

    def forward(self, token: torch.Tensor, init_estimate: torch.Tensor, mhr: nn.Module) -> dict[str, torch.Tensor]:
        pred = self.proj(token) + init_estimate
        pred = pred.float()  # the rig and everything after it run in fp32 (cm-scale geometry)
        rot6d, body_cont, shape, scale, hand, face = torch.split(
            pred, [6, NUM_BODY_CONT, NUM_SHAPE, NUM_SCALE, 2 * NUM_HAND_CONT_PER_HAND, NUM_FACE], dim=1
        )
        face = face * 0  # the released model does not drive the face
        global_rot = intrinsic_zyx_from_rotmat(rotmat_from_6d_columns(rot6d))
        body = self.params.body(body_cont)
        return {
            "pred_pose_raw": torch.cat([rot6d, body_cont], dim=1),
            "global_rot": global_rot,
            "body_pose": body,
            "shape": shape,
            "scale": scale,
            "hand": hand,
            "face": face,
            **self.rig(mhr, global_rot, body, hand, scale, shape, face),
        }

    def _wrist_frame(self, global_rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hand head: the predicted rotation is the right wrist's. Returns the rig's global
        rotation (XYZ Euler) and translation (m) that put the wrist there, at the origin."""
        rot = euler_xyz_from_rotmat(rotmat_from_euler_xyz(global_rot) @ self.local_to_world_wrist.float())
        root = self.root_coords.float()
        arm = self.right_wrist_coords.float() - root
        translation = -(torch.einsum("bij,j->bi", rotmat_from_euler_xyz(rot), arm) + root)
        return rot, translation

    def rig(
        self, mhr: nn.Module, global_rot: torch.Tensor, body_pose: torch.Tensor, hand: torch.Tensor,
        scale: torch.Tensor, shape: torch.Tensor, face: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Decoded parameters → MHR model parameters → mesh, joints, keypoints (camera frame).

        global_rot (B, 3) intrinsic ZYX; body_pose (B, 133); hand (B, 108) PCA coefficients of
        both hands; scale (B, 28); shape (B, 45); face (B, 72). Upstream's `mhr_forward`.
        """
        translation = torch.zeros_like(global_rot)  # the camera head carries translation
        if self.hand_model:
            global_rot, translation = self._wrist_frame(global_rot)
        scales = self.scale_mean.float() + scale @ self.scale_comps.float()
        pose = torch.cat([translation * 10, global_rot, body_pose[:, :130]], dim=1)  # 136 params
        left, right = hand.split(NUM_HAND_CONT_PER_HAND, dim=1)
        pose = pose.index_copy(1, self.hand_joint_idxs_left, self._hand_params(left))
        pose = pose.index_copy(1, self.hand_joint_idxs_right, self._hand_params(right))
        model_params = torch.cat([pose, scales], dim=1)  # 204
        if self.hand_model:
            model_params = model_params.index_fill(1, self.nonhand_param_idxs, 0.0)

        verts_cm, skeleton = mhr(shape, model_params, face)
        verts = verts_cm / CM_PER_M
        joints = skeleton[..., 0:3] / CM_PER_M
        joint_rots = rotmat_from_quat_xyzw(skeleton[..., 3:7])
        # Keypoints are fixed linear combinations of vertices and joints.
        keypoints = torch.einsum(
            "kn,bnc->bkc", self.keypoint_mapping[:NUM_KEYPOINTS].float(), torch.cat([verts, joints], 1)
        )
        if self.hand_model:
            row = torch.arange(NUM_KEYPOINTS, device=keypoints.device)[:, None]
            right_hand = (row >= RIGHT_HAND_KEYPOINTS[0]) & (row < RIGHT_HAND_KEYPOINTS[1])
            keypoints = torch.where(right_hand, keypoints, torch.zeros_like(keypoints))
        return {
            "pred_keypoints_3d": to_camera_frame(keypoints),
            "pred_vertices": to_camera_frame(verts),
            "pred_joint_coords": to_camera_frame(joints),
            "joint_global_rots": joint_rots,
            "mhr_model_params": model_params,
        }


def _identity(n: int) -> torch.Tensor:
    """torch.eye(n), made without torch.eye: on the meta device (a model is built there before its
    weights are loaded) eye runs through torch's Python reference, which imports torch._dynamo:
    0.9 s of every start."""
    out = torch.zeros(n, n)
    out.diagonal().fill_(1.0)
    return out
