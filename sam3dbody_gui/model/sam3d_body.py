"""SAM 3D Body: backbone features of a person crop → MHR body mesh in the camera frame.

Attribute names mirror the released checkpoint (`decoder.*`, `head_pose.*`, `*_hand` twins…)
so `model.ckpt` loads as is. The body and hand decoders share one implementation: a
`DecoderBranch` names the modules each one uses.

Data flow of one body pass (see `decode_body`):
  features (+ no-mask embedding) ─┬─ ray conditioning ──────────────┐
  CLIFF condition + init estimate ┴─ tokens (pose, prev, prompt,     │
                                      2 hand boxes, 70 2-D kp, 70 3-D kp)
  6 decoder layers; after each of the first 5, the heads + MHR run and the keypoint tokens are
  refreshed from the current 2-D / 3-D keypoints; the last layer's prediction is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import DinoV3Backbone, backbone_arch
from .camera_head import PerspectiveHead, project_points
from .config import ModelConfig
from .crop_camera import CropCamera
from .decoder import PromptableDecoder
from .layers import FeedForward, PlainMLP
from .mhr_head import NUM_KEYPOINTS, NUM_POSE_OUTPUTS, MHRHead
from .prompt_encoder import LABEL_INVALID, PromptEncoder, RandomFourierEncoding
from .ray_conditioning import RayConditioning, crop_ray_map

# Keypoint indices (MHR70) the decoder uses to centre the 3-D keypoint tokens: left/right hip.
PELVIS_KEYPOINTS = (9, 10)
NUM_HAND_BOX_TOKENS = 2
CONDITION_DIM = 3


class ImageEncoder(nn.Module):
    """Holds the backbone at `backbone.encoder` (the checkpoint's naming)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.encoder(crops)


@dataclass
class DecoderBranch:
    """The modules one decoder pass uses (body or hand twin)."""

    decoder: PromptableDecoder
    init_pose: nn.Embedding
    init_camera: nn.Embedding
    init_to_token: nn.Linear
    prev_to_token: nn.Linear
    pe_layer: RandomFourierEncoding
    ray_cond: RayConditioning
    keypoint_embedding: nn.Embedding
    keypoint3d_embedding: nn.Embedding
    keypoint_posemb: FeedForward
    keypoint_feat: nn.Linear
    keypoint3d_posemb: FeedForward
    head_pose: MHRHead
    head_camera: PerspectiveHead


class SAM3DBody(nn.Module):
    def __init__(self, cfg: ModelConfig, num_vertices: int = 18439, num_faces: int = 36874,
                 with_backbone: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        arch = backbone_arch(cfg.backbone_type)
        width, dim = arch.embed_dim, cfg.decoder.dim
        self.feature_dim = width
        self.patch_size = arch.patch_size
        if with_backbone:
            self.backbone = ImageEncoder(DinoV3Backbone(arch))

        def mhr_head(hand_model: bool = False) -> MHRHead:
            return MHRHead(dim, cfg.mhr_head_mlp_depth, cfg.mhr_head_channel_div, num_vertices, num_faces,
                           hand_model=hand_model)

        def camera_head(scale: float) -> PerspectiveHead:
            return PerspectiveHead(dim, cfg.camera_head_mlp_depth, cfg.camera_head_channel_div, scale)

        def posemb(in_dim: int) -> FeedForward:
            return FeedForward(in_dim, dim, dim, num_layers=2)

        self.head_pose = mhr_head()
        self.init_pose = nn.Embedding(1, NUM_POSE_OUTPUTS)
        self.head_pose_hand = mhr_head(hand_model=True)  # wrist-centred right hand (full mode)
        self.init_pose_hand = nn.Embedding(1, NUM_POSE_OUTPUTS)
        self.head_camera = camera_head(1.0)
        self.init_camera = nn.Embedding(1, 3)
        self.head_camera_hand = camera_head(cfg.default_scale_factor_hand)
        self.init_camera_hand = nn.Embedding(1, 3)
        estimate_dim = NUM_POSE_OUTPUTS + 3
        self.init_to_token_mhr = nn.Linear(estimate_dim + CONDITION_DIM, dim)
        self.prev_to_token_mhr = nn.Linear(estimate_dim, dim)
        self.init_to_token_mhr_hand = nn.Linear(estimate_dim + CONDITION_DIM, dim)
        self.prev_to_token_mhr_hand = nn.Linear(estimate_dim, dim)
        self.prompt_encoder = PromptEncoder(width, NUM_KEYPOINTS, cfg.mask_embed_type)
        self.prompt_to_token = nn.Linear(width, dim)
        self.decoder = PromptableDecoder(cfg.decoder, width)
        self.decoder_hand = PromptableDecoder(cfg.decoder, width)
        self.hand_pe_layer = RandomFourierEncoding(width // 2)
        self.ray_cond_emb = RayConditioning(width, arch.patch_size)
        self.ray_cond_emb_hand = RayConditioning(width, arch.patch_size)
        self.keypoint_embedding = nn.Embedding(NUM_KEYPOINTS, dim)
        self.keypoint_embedding_hand = nn.Embedding(NUM_KEYPOINTS, dim)
        self.hand_box_embedding = nn.Embedding(NUM_HAND_BOX_TOKENS, dim)
        self.hand_cls_embed = nn.Linear(dim, 2)
        self.bbox_embed = PlainMLP(dim, dim, 4, num_layers=3)
        self.keypoint_posemb_linear = posemb(2)
        self.keypoint_posemb_linear_hand = posemb(2)
        self.keypoint_feat_linear = nn.Linear(width, dim)
        self.keypoint_feat_linear_hand = nn.Linear(width, dim)
        self.keypoint3d_embedding = nn.Embedding(NUM_KEYPOINTS, dim)
        self.keypoint3d_embedding_hand = nn.Embedding(NUM_KEYPOINTS, dim)
        self.keypoint3d_posemb_linear = posemb(3)
        self.keypoint3d_posemb_linear_hand = posemb(3)
        # The MHR rig (TorchScript asset): not in the checkpoint, attached by the loader.
        self.mhr: nn.Module | None = None
        self._register_state_dict_hook(_drop_rig_from_state_dict)

    # ----------------------------------------------------------------------------------------
    def body_branch(self) -> DecoderBranch:
        return DecoderBranch(
            self.decoder, self.init_pose, self.init_camera, self.init_to_token_mhr, self.prev_to_token_mhr,
            self.prompt_encoder.pe_layer, self.ray_cond_emb, self.keypoint_embedding, self.keypoint3d_embedding,
            self.keypoint_posemb_linear, self.keypoint_feat_linear, self.keypoint3d_posemb_linear,
            self.head_pose, self.head_camera,
        )

    def hand_branch(self) -> DecoderBranch:
        return DecoderBranch(
            self.decoder_hand, self.init_pose_hand, self.init_camera_hand, self.init_to_token_mhr_hand,
            self.prev_to_token_mhr_hand, self.hand_pe_layer, self.ray_cond_emb_hand, self.keypoint_embedding_hand,
            self.keypoint3d_embedding_hand, self.keypoint_posemb_linear_hand, self.keypoint_feat_linear_hand,
            self.keypoint3d_posemb_linear_hand, self.head_pose_hand, self.head_camera_hand,
        )

    @property
    def decoder_dtype(self) -> torch.dtype:
        return self.init_to_token_mhr.weight.dtype

    @staticmethod
    def cliff_condition(cam: CropCamera) -> torch.Tensor:
        """Where the box sits relative to the principal point, and its size, in focal units."""
        f = cam.intrinsics[:, 0, 0:1]
        offset = (cam.box_center - cam.intrinsics[:, :2, 2]) / f
        return torch.cat([offset, cam.box_size[:, None] / f], dim=1)

    @staticmethod
    def box_prompt(batch: int, device: torch.device) -> torch.Tensor:
        """The keypoint prompt of a plain box query: one invalid point."""
        prompt = torch.zeros(batch, 1, 3, device=device)
        prompt[..., 2] = LABEL_INVALID
        return prompt

    # ----------------------------------------------------------------------------------------
    def decode_body(self, features: torch.Tensor, cam: CropCamera) -> dict[str, torch.Tensor]:
        """Body-mode inference from backbone features (B, C, h, w) of the crops `cam` describes."""
        features = self.prompt_encoder.add_no_mask(features.to(self.decoder_dtype))
        return self.run_decoder(self.body_branch(), features, cam, self.box_prompt(features.shape[0], features.device))

    def run_decoder(
        self,
        branch: DecoderBranch,
        features: torch.Tensor,
        cam: CropCamera,
        prompt: torch.Tensor,
        prev_estimate: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.mhr is None:
            raise RuntimeError("the MHR rig is not attached (load the model with load_model_folder)")
        dtype = features.dtype
        batch, _, h, w = features.shape
        init_pose = branch.init_pose.weight.expand(batch, -1)
        init_camera = branch.init_camera.weight.expand(batch, -1)
        init_estimate = torch.cat([init_pose, init_camera], dim=-1)
        if prev_estimate is None:
            prev_estimate = init_estimate
        condition = self.cliff_condition(cam).to(dtype)

        pose_token = branch.init_to_token(torch.cat([condition, init_estimate], dim=-1))[:, None]
        prev_token = branch.prev_to_token(prev_estimate)[:, None]
        prompt_tokens = self.prompt_to_token(self.prompt_encoder.embed_keypoints(prompt).to(dtype))
        num_prompts = prompt_tokens.shape[1]

        def repeat(weight: torch.Tensor) -> torch.Tensor:
            return weight[None].expand(batch, -1, -1)

        tokens = torch.cat([
            pose_token, prev_token, prompt_tokens, repeat(self.hand_box_embedding.weight),
            repeat(branch.keypoint_embedding.weight), repeat(branch.keypoint3d_embedding.weight),
        ], dim=1)
        hand_start = 2 + num_prompts
        kp2d_start = hand_start + NUM_HAND_BOX_TOKENS
        kp3d_start = kp2d_start + NUM_KEYPOINTS
        zeros = torch.zeros_like(tokens[:, :1])
        token_pe = torch.cat([zeros, prev_token, prompt_tokens, zeros.expand(-1, tokens.shape[1] - hand_start, -1)], 1)

        rays = crop_ray_map(cam.affine, cam.intrinsics, cam.crop_size)
        context_map = branch.ray_cond(features, rays)
        # Contiguous once: every layer normalises it, and a transposed view cost each of them a
        # strided copy (4.8 ms of a 5 MB map on 2 CPU cores; the same values).
        context = context_map.flatten(2).transpose(1, 2).contiguous()
        context_pe = branch.pe_layer.dense(h, w).to(dtype).flatten(2).transpose(1, 2)

        layers = branch.decoder.layers
        for i, layer in enumerate(layers):
            tokens = layer(tokens, context, token_pe, context_pe)
            if i == len(layers) - 1:
                break
            interim = self._predict(branch, branch.decoder.norm_final(tokens), init_pose, init_camera, cam)
            tokens, token_pe = self._refresh_keypoint_tokens(
                branch, tokens, token_pe, interim, context_map, kp2d_start, kp3d_start
            )
        final = branch.decoder.norm_final(tokens)
        out = self._predict(branch, final, init_pose, init_camera, cam)
        hand_tokens = final[:, hand_start:kp2d_start]
        out["hand_box"] = self.bbox_embed(hand_tokens).sigmoid().float()
        out["hand_logits"] = self.hand_cls_embed(hand_tokens).float()
        return out

    def _predict(
        self, branch: DecoderBranch, tokens: torch.Tensor, init_pose: torch.Tensor, init_camera: torch.Tensor,
        cam: CropCamera,
    ) -> dict[str, torch.Tensor]:
        """Heads + MHR + camera on the normalised pose token."""
        pose_token = tokens[:, 0]
        out = branch.head_pose(pose_token, init_pose, self.mhr)
        pred_cam = branch.head_camera(pose_token, init_camera)
        cam_t = branch.head_camera.translation(pred_cam, cam.box_center, cam.box_size, cam.intrinsics)
        kp3d_cam = out["pred_keypoints_3d"] + cam_t[:, None]
        kp2d = project_points(kp3d_cam, cam.intrinsics)
        out.update(
            pred_cam=pred_cam,
            pred_cam_t=cam_t,
            focal_length=cam.intrinsics[:, 0, 0],
            pred_keypoints_2d=kp2d,
            pred_keypoints_2d_depth=kp3d_cam[..., 2],
            pred_keypoints_2d_cropped=cam.full_to_crop_normalized(kp2d),
        )
        return out

    @staticmethod
    def _refresh_keypoint_tokens(
        branch: DecoderBranch,
        tokens: torch.Tensor,
        token_pe: torch.Tensor,
        interim: dict[str, torch.Tensor],
        context_map: torch.Tensor,
        kp2d_start: int,
        kp3d_start: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Point the keypoint tokens at the current estimate (upstream's token update "v2").

        2-D tokens: positional encoding of the crop position + the image feature sampled there,
        both zeroed where the keypoint leaves the crop or falls behind the camera.
        3-D tokens: positional encoding of the pelvis-centred 3-D keypoint.
        """
        dtype = tokens.dtype
        kp2d = interim["pred_keypoints_2d_cropped"][:, :NUM_KEYPOINTS]  # in [-0.5, 0.5] when inside
        depth = interim["pred_keypoints_2d_depth"][:, :NUM_KEYPOINTS]
        inside = ((kp2d >= -0.5) & (kp2d <= 0.5)).all(-1) & (depth >= 1e-5)
        keep = inside[..., None].to(dtype)
        kp2d = kp2d.to(dtype)
        pe2d = branch.keypoint_posemb(kp2d) * keep
        sampled = sample_bilinear(context_map, kp2d) * keep
        kp3d = interim["pred_keypoints_3d"][:, :NUM_KEYPOINTS]
        pelvis = (kp3d[:, PELVIS_KEYPOINTS[0]] + kp3d[:, PELVIS_KEYPOINTS[1]]) / 2
        pe3d = branch.keypoint3d_posemb((kp3d - pelvis[:, None]).to(dtype))

        kp2d_end, kp3d_end = kp2d_start + NUM_KEYPOINTS, kp3d_start + NUM_KEYPOINTS
        tokens = torch.cat([
            tokens[:, :kp2d_start], tokens[:, kp2d_start:kp2d_end] + branch.keypoint_feat(sampled),
            tokens[:, kp2d_end:],
        ], dim=1)
        token_pe = torch.cat([
            token_pe[:, :kp2d_start], pe2d, token_pe[:, kp2d_end:kp3d_start], pe3d, token_pe[:, kp3d_end:],
        ], dim=1)
        return tokens, token_pe


def sample_bilinear(feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Features at crop points (B, N, 2) in [-0.5, 0.5] → (B, N, C); zero outside the map.

    The same values as `F.grid_sample(map, 2·points, bilinear, zeros, align_corners=False)`, but
    as four gathers: grid_sample's CUDA kernel gives each of the 70 points one thread that walks
    all 1,280 channels (~0.5 ms a call, 20 % of a decoder pass); gathers are parallel over channels.
    """
    b, c, h, w = feature_map.shape
    flat = feature_map.flatten(2).transpose(1, 2)  # B, HW, C
    # Positions and indices in fp32 whatever the decoder's dtype: bf16 holds integers exactly only
    # up to 256, so a bf16 row * 32 + column would round to a neighbouring (or past-the-end) cell.
    points = points.float()
    # Pixel coordinates (centres at integers); non-finite or far-away points only meet zeros.
    x = torch.nan_to_num((points[..., 0] + 0.5) * w - 0.5, nan=-2.0).clamp(-2.0, w + 1.0)
    y = torch.nan_to_num((points[..., 1] + 0.5) * h - 0.5, nan=-2.0).clamp(-2.0, h + 1.0)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    out = torch.zeros(b, points.shape[1], c, dtype=feature_map.dtype, device=feature_map.device)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
            values = torch.gather(flat, 1, index[..., None].expand(-1, -1, c))
            out = out + values * (wx * wy * inside)[..., None].to(feature_map.dtype)
    return out


def _drop_rig_from_state_dict(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """The MHR rig is a separate asset (assets/mhr_model.pt), never part of model.ckpt."""
    for key in [k for k in state_dict if k.startswith(prefix + "mhr.")]:
        del state_dict[key]
