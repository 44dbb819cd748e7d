"""MHR head: pose token → MHR parameters → mesh, joints and keypoints (camera frame).

The token is decoded (a residual on top of the learned initial estimate) into a 519-vector:
6-D global rotation | 260 continuous body pose | 45 shape | 28 scale | 2×54 hand PCA | 72 face.
These become MHR's 204 model parameters, the rig (a TorchScript asset) produces the mesh in
centimetres, Y up, and the result is converted to metres in the OpenCV camera frame.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FeedForward
from .mhr_params import NUM_BODY_CONT, PoseParamConverter
from .rotations import intrinsic_zyx_from_rotmat, rotmat_from_6d_columns, rotmat_from_quat_xyzw

NUM_SHAPE = 45
NUM_SCALE = 28
NUM_HAND_CONT_PER_HAND = 54
NUM_FACE = 72
NUM_POSE_OUTPUTS = 6 + NUM_BODY_CONT + NUM_SHAPE + NUM_SCALE + 2 * NUM_HAND_CONT_PER_HAND + NUM_FACE  # 519
NUM_MODEL_SCALES = 68
NUM_JOINTS = 127
NUM_KEYPOINT_ROWS = 308
NUM_KEYPOINTS = 70  # the MHR70 keypoints the model predicts
CM_PER_M = 100.0


def to_camera_frame(points: torch.Tensor) -> torch.Tensor:
    """MHR is Y-up; the camera frame (OpenCV) is Y-down, Z-forward: negate y and z.
    (No constant tensor is built, so this also runs inside CUDA-graph capture.)"""
    return torch.cat([points[..., :1], -points[..., 1:]], dim=-1)


class MHRHead(nn.Module):
    def __init__(self, in_dim: int, mlp_depth: int, channel_div: int, num_vertices: int, num_faces: int) -> None:
        super().__init__()
        self.proj = FeedForward(in_dim, in_dim // channel_div, NUM_POSE_OUTPUTS, num_layers=mlp_depth)
        # Rig data that ships in the checkpoint (fixed, not learned).
        self.register_buffer("joint_rotation", torch.zeros(NUM_JOINTS, 3, 3))
        self.register_buffer("scale_mean", torch.zeros(NUM_MODEL_SCALES))
        self.register_buffer("scale_comps", torch.zeros(NUM_SCALE, NUM_MODEL_SCALES))
        self.register_buffer("faces", torch.zeros(num_faces, 3, dtype=torch.long))
        self.register_buffer("hand_pose_mean", torch.zeros(NUM_HAND_CONT_PER_HAND))
        self.register_buffer("hand_pose_comps", torch.eye(NUM_HAND_CONT_PER_HAND))
        self.register_buffer("hand_joint_idxs_left", torch.zeros(27, dtype=torch.long))
        self.register_buffer("hand_joint_idxs_right", torch.zeros(27, dtype=torch.long))
        self.register_buffer("keypoint_mapping", torch.zeros(NUM_KEYPOINT_ROWS, num_vertices + NUM_JOINTS))
        self.register_buffer("right_wrist_coords", torch.zeros(3))
        self.register_buffer("root_coords", torch.zeros(3))
        self.register_buffer("local_to_world_wrist", torch.zeros(3, 3))
        self.register_buffer("nonhand_param_idxs", torch.zeros(145, dtype=torch.long))
        self.register_buffer("hand_pose_comps_ori", torch.eye(NUM_HAND_CONT_PER_HAND))
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

        scales = self.scale_mean.float() + scale @ self.scale_comps.float()
        translation = torch.zeros_like(global_rot)  # the camera head carries translation
        pose = torch.cat([translation * 10, global_rot, body[:, :130]], dim=1)  # 136 params
        left, right = hand.split(NUM_HAND_CONT_PER_HAND, dim=1)
        pose = pose.index_copy(1, self.hand_joint_idxs_left, self._hand_params(left))
        pose = pose.index_copy(1, self.hand_joint_idxs_right, self._hand_params(right))
        model_params = torch.cat([pose, scales], dim=1)  # 204

        verts_cm, skeleton = mhr(shape, model_params, face)
        verts = verts_cm / CM_PER_M
        joints = skeleton[..., 0:3] / CM_PER_M
        joint_rots = rotmat_from_quat_xyzw(skeleton[..., 3:7])
        # Keypoints are fixed linear combinations of vertices and joints.
        keypoints = torch.einsum(
            "kn,bnc->bkc", self.keypoint_mapping[:NUM_KEYPOINTS].float(), torch.cat([verts, joints], 1)
        )
        return {
            "pred_pose_raw": torch.cat([rot6d, body_cont], dim=1),
            "global_rot": global_rot,
            "body_pose": body,
            "shape": shape,
            "scale": scale,
            "hand": hand,
            "face": face,
            "pred_keypoints_3d": to_camera_frame(keypoints),
            "pred_vertices": to_camera_frame(verts),
            "pred_joint_coords": to_camera_frame(joints),
            "joint_global_rots": joint_rots,
            "mhr_model_params": model_params,
        }
