"""Random weights for a synthetic SAM 3D Body, deterministic from a seed.

The goal is not a trained model but one that exercises every tensor and still draws a person:
the pose/camera heads' residuals are scaled down and their learned starting points set to a
neutral standing pose seen from the front, at a distance that fills the box. So the demo mesh
sits on the box, while every weight still influences the output (parity tests need that).
Every value is drawn from a `RandomSource` (NumPy's PCG64), so a seed gives the same model on
every CPU and torch version.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.backbone import DinoV3Backbone, LayerScale, LinearKeyMaskedBias, RopePositionEmbedding
from ..model.layers import LayerNorm2d
from ..model.mhr_params import BODY_1DOF_PARAMS, BODY_3DOF_PARAMS, NUM_BODY_CONT
from ..model.prompt_encoder import RandomFourierEncoding
from ..model.sam3d_body import SAM3DBody
from .random_source import RandomSource

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
# The padded crop box is 1.25× the person box: a body should span 1/1.25 of it.
BODY_FRACTION_OF_CROP = 0.8
HEAD_RESIDUAL_GAIN = 0.05
CAMERA_RESIDUAL_GAIN = 0.01


def neutral_pose_estimate(noise: torch.Tensor) -> torch.Tensor:
    """519-vector: identity global rotation, zero body pose (6-D identity / (sin 0, cos 0)),
    zero shape, scale, hands and face, plus `noise` (519) for a little variety."""
    body = []
    for _ in BODY_3DOF_PARAMS:
        body += IDENTITY_6D
    for _ in BODY_1DOF_PARAMS:
        body += (0.0, 1.0)
    body += [0.0] * (NUM_BODY_CONT - len(body))
    base = torch.zeros(noise.shape[-1])
    base[:6] = torch.tensor(IDENTITY_6D)
    base[6 : 6 + NUM_BODY_CONT] = torch.tensor(body)
    return base + noise


def demo_camera_start(body_height_m: float, body_centre_y_m: float) -> torch.Tensor:
    """Weak-perspective (s, tx, ty) that puts a neutral body, centred, over the crop box.

    Depth is tz = 2f / (box · s'), so the body spans height · s' / 2 of the box: s' follows.
    tx, ty are metres; ty moves the rig's origin so the body's centre lands on the box centre.
    The head flips the signs of s and ty (upstream's convention), hence the minus signs.
    """
    s = 2.0 * BODY_FRACTION_OF_CROP / body_height_m
    return torch.tensor([[-s, 0.0, -body_centre_y_m]])


@torch.no_grad()
def init_backbone_random_(backbone: DinoV3Backbone, source: RandomSource) -> DinoV3Backbone:
    """Fill `backbone` with random weights that give finite, non-degenerate features.

    Values are drawn on the CPU in module order, then copied to the backbone's device and dtype.
    Unlike DINOv3's training init (std 0.02, LayerScale 1e-5, which make attention near-uniform and
    blocks near-identity), weights here have unit gain, LayerScale in [0.1, 1] and non-zero biases,
    so tests exercise every term: RoPE, the key-bias mask, both residual branches. `periods` and
    `bias_mask` get DINOv3's values.
    """

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(source.normal(t.shape, std, mean))

    normal_(backbone.cls_token, 0.5)
    normal_(backbone.storage_tokens, 0.5)
    backbone.mask_token.zero_()
    for module in backbone.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            normal_(module.weight, fan_in**-0.5)
            normal_(module.bias, 0.1)
        elif isinstance(module, nn.LayerNorm):
            normal_(module.weight, 0.1, mean=1.0)
            normal_(module.bias, 0.1)
        elif isinstance(module, LayerScale):
            module.gamma.copy_(source.uniform(module.gamma.shape, 0.1, 1.0))
        if isinstance(module, LinearKeyMaskedBias):
            module.reset_bias_mask_()
        elif isinstance(module, RopePositionEmbedding):
            module.reset_periods_()
    return backbone


@torch.no_grad()
def init_decoder_random_(model: SAM3DBody, source: RandomSource, camera_start: torch.Tensor) -> None:
    """Everything but the backbone and the rig buffers (which come from the MHR stand-in)."""
    normal = source.normal

    for name, module in model.named_modules():
        if name.startswith("backbone"):
            continue
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.copy_(normal(module.weight.shape, module.weight[0].numel() ** -0.5))
            if module.bias is not None:
                module.bias.copy_(normal(module.bias.shape, 0.02))
        elif isinstance(module, (nn.LayerNorm, LayerNorm2d)):
            module.weight.copy_(normal(module.weight.shape, 0.1, mean=1.0))
            module.bias.copy_(normal(module.bias.shape, 0.1))
        elif isinstance(module, nn.Embedding):
            module.weight.copy_(normal(module.weight.shape, 1.0))
        elif isinstance(module, RandomFourierEncoding):
            module.positional_encoding_gaussian_matrix.copy_(normal((2, module.positional_encoding_gaussian_matrix.shape[1]), 1.0))

    for head, init in ((model.head_pose, model.init_pose), (model.head_pose_hand, model.init_pose_hand)):
        head.proj.layers[-1].weight.mul_(HEAD_RESIDUAL_GAIN)
        head.proj.layers[-1].bias.zero_()
        init.weight.copy_(neutral_pose_estimate(normal(init.weight.shape[1], 0.05))[None])
    for head, init in ((model.head_camera, model.init_camera), (model.head_camera_hand, model.init_camera_hand)):
        head.proj.layers[-1].weight.mul_(CAMERA_RESIDUAL_GAIN)
        head.proj.layers[-1].bias.zero_()
        init.weight.copy_(camera_start)


@torch.no_grad()
def init_model_random_(model: SAM3DBody, seed: int, camera_start: torch.Tensor) -> None:
    source = RandomSource(seed)
    if hasattr(model, "backbone"):
        init_backbone_random_(model.backbone.encoder, source)
    init_decoder_random_(model, source, camera_start)
