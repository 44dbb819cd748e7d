"""The SAM 3D Body image encoder: a DINOv3 ViT (ViT-H+/16 in the real model), in plain PyTorch.

Parameter and buffer names are DINOv3's original ones, so the checkpoint's `backbone.encoder.*`
tensors load as they are (strip the prefix, or mount this module at `backbone.encoder`).

`forward` returns what upstream uses, `get_intermediate_layers(x, n=1, reshape=True, norm=True)`:
the final-normed patch tokens as a (B, C, H/16, W/16) map; the class and storage tokens are dropped.

Numerics follow upstream's inference path (DINOv3 built with `pos_embed_rope_dtype="fp32"`, then
the whole encoder cast to fp16 by SAM 3D Body):
  * RoPE angles, sin/cos and the rotation of q/k run in fp32 whatever the weights' dtype, and the
    `periods` buffer stays fp32 when the module is cast (its checkpoint values are fp16-rounded;
    upstream divides fp32 coordinates by them, which is fp32 math on those values);
  * everything else runs in the weights' dtype.
RoPE layout (DINOv3's, not the interleaved one): per head, the first half of the channels holds
[16 row-angle, 16 column-angle] channels and the second half repeats them; rotation is
"rotate half" (x1, x2) -> (-x2, x1). Prefix tokens (class + storage) get no rotation.
Only static shapes drive the computation, so `torch.export` and ONNX export see plain tensor ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam3dbody_gui.errors import ModelFolderError


@dataclass(frozen=True)
class BackboneArch:
    """Sizes of a DINOv3 ViT; `ffn_hidden` is the SwiGLU hidden width as stored (w1/w2 rows)."""

    embed_dim: int
    depth: int
    num_heads: int
    ffn_hidden: int
    patch_size: int = 16
    n_storage_tokens: int = 4
    rope_base: float = 100.0
    layernorm_eps: float = 1e-5
    in_chans: int = 3

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 4:
            # 2D RoPE splits each head into (row, column) x (sin, cos) quarters.
            raise ValueError(f"head_dim {self.head_dim} must be a multiple of 4 for 2D RoPE")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def n_prefix_tokens(self) -> int:
        """Class token + storage (register) tokens, which come before the patch tokens."""
        return 1 + self.n_storage_tokens


BACKBONE_ARCHS: dict[str, BackboneArch] = {
    # dinov3/hub/backbones.py: embed 1280, depth 32, 20 heads, ffn_ratio 6 with SwiGLU
    # -> int(1280 * 6 * 2 / 3) = 5120 hidden; 4 storage tokens; "layernormbf16" = eps 1e-5.
    "dinov3_vith16plus": BackboneArch(embed_dim=1280, depth=32, num_heads=20, ffn_hidden=5120),
    # Test size: same structure, small enough for CPU unit tests and synthetic checkpoints.
    "sam3dbody_gui_tiny": BackboneArch(embed_dim=64, depth=2, num_heads=2, ffn_hidden=128),
}


def backbone_arch(name: str) -> BackboneArch:
    """The architecture registered under `name` (the config's MODEL.BACKBONE.TYPE)."""
    try:
        return BACKBONE_ARCHS[name]
    except KeyError:
        known = ", ".join(sorted(BACKBONE_ARCHS))
        raise ModelFolderError(
            f"Unknown backbone architecture '{name}' (known: {known}). "
            "The model folder's config names a backbone this app cannot build."
        ) from None


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size patches -> embed_dim tokens (a strided conv)."""

    def __init__(self, arch: BackboneArch) -> None:
        super().__init__()
        self.proj = nn.Conv2d(arch.in_chans, arch.embed_dim, kernel_size=arch.patch_size, stride=arch.patch_size)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H // patch, W // patch); trailing pixels are dropped, as upstream."""
        return self.proj(images)


class RopePositionEmbedding(nn.Module):
    """DINOv3's axial 2D rotary embedding: coordinates in [-1, 1], angle = 2*pi*coord / period."""

    def __init__(self, arch: BackboneArch) -> None:
        super().__init__()
        self.head_dim = arch.head_dim
        self.base = arch.rope_base
        # Persistent: the checkpoint carries it (fp16 there). One period per quarter-head channel.
        self.register_buffer("periods", torch.empty(arch.head_dim // 4, dtype=torch.float32))
        self.reset_periods_()

    @torch.no_grad()
    def reset_periods_(self) -> None:
        """The periods DINOv3 derives from its base: base ** (2i / (head_dim / 2)), i < head_dim / 4."""
        n = self.head_dim // 4
        # Worked out on the CPU whatever the buffer's device: on the meta device (a model is built
        # there before its weights are loaded) arange runs a Python decomposition (~0.25 s a start).
        exponents = 2 * torch.arange(n, dtype=torch.float32, device="cpu") / (self.head_dim // 2)
        self.periods.copy_(self.base**exponents)

    def _apply(self, fn, recurse=True):
        # `.half()` / `.to(torch.bfloat16)` would round the periods; RoPE must stay fp32 (see the
        # module docstring), so restore them in fp32 on whatever device `fn` moved them to.
        periods_before = self.periods
        super()._apply(fn, recurse)
        if self.periods.dtype != torch.float32:
            self.periods = periods_before.to(device=self.periods.device, dtype=torch.float32)
        return self

    def sin_cos(self, grid_h: int, grid_w: int, n_prefix_tokens: int) -> tuple[Tensor, Tensor]:
        """fp32 (sin, cos), each (n_prefix_tokens + grid_h * grid_w, head_dim), for the whole sequence.

        Prefix rows have angle 0 (sin 0, cos 1): rotating them is then exactly the identity, which
        is DINOv3's "no RoPE for class/storage tokens" without slicing and concatenating q and k.
        """
        periods = self.periods.float()
        dd = {"device": periods.device, "dtype": torch.float32}
        # Patch centres, normalised per axis ("separate") to [0, 1], then mapped to [-1, 1].
        coords_h = torch.arange(0.5, grid_h, **dd) / grid_h
        coords_w = torch.arange(0.5, grid_w, **dd) / grid_w
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
        coords = 2.0 * coords - 1.0  # (HW, 2) as (row, column)
        # Same operation order as DINOv3 so the fp32 angles match it bit for bit.
        angles = 2 * math.pi * coords[:, :, None] / periods[None, None, :]  # (HW, 2, head_dim/4)
        angles = angles.flatten(1, 2)  # (HW, head_dim/2): [rows, cols]
        # DINOv3's `.tile(2)`, written as a concat: the legacy ONNX exporter turns tile into `If` nodes.
        angles = torch.cat([angles, angles], dim=-1)  # (HW, head_dim): [rows, cols, rows, cols]
        angles = torch.cat([angles.new_zeros(n_prefix_tokens, self.head_dim), angles], dim=0)
        return torch.sin(angles), torch.cos(angles)


def apply_rope(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate (B, heads, N, head_dim) q or k by fp32 (N, head_dim) tables; computed in fp32 as DINOv3."""
    x32 = x.float()
    first, second = x32.chunk(2, dim=-1)
    rotated_half = torch.cat([-second, first], dim=-1)
    return (x32 * cos + rotated_half * sin).to(x.dtype)


class LinearKeyMaskedBias(nn.Linear):
    """The fused q/k/v projection; its bias is multiplied by the `bias_mask` buffer.

    DINOv3 (`mask_k_bias=True`) trains with the key third of the bias masked out: init_weights fills
    the mask with 1 and the middle (key) third with 0, and the checkpoint stores it. Applying the
    stored mask keeps us equal to upstream whatever it holds.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=True)
        self.register_buffer("bias_mask", torch.empty(out_features))
        self.reset_bias_mask_()

    @torch.no_grad()
    def reset_bias_mask_(self) -> None:
        """DINOv3's mask: 1 for the query and value thirds, 0 for the key third."""
        third = self.out_features // 3
        self.bias_mask.fill_(1.0)
        self.bias_mask[third : 2 * third] = 0.0

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask.to(self.bias.dtype))


class SelfAttention(nn.Module):
    def __init__(self, arch: BackboneArch) -> None:
        super().__init__()
        self.num_heads = arch.num_heads
        self.head_dim = arch.head_dim
        self.qkv = LinearKeyMaskedBias(arch.embed_dim, 3 * arch.embed_dim)
        self.proj = nn.Linear(arch.embed_dim, arch.embed_dim)

    def forward(self, x: Tensor, rope_sin: Tensor, rope_cos: Tensor) -> Tensor:
        batch, tokens, channels = x.shape
        # Channel layout of the fused projection: (q|k|v, head, head_dim).
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        q = apply_rope(q, rope_sin, rope_cos)
        k = apply_rope(k, rope_sin, rope_cos)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as upstream
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, channels))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))  # DINOv3's layerscale_init

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class SwiGLUFFN(nn.Module):
    """w3(silu(w1 x) * w2 x), DINOv3's SwiGLUFFN (w1 is the gate)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(dim, hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, arch: BackboneArch) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(arch.embed_dim, eps=arch.layernorm_eps)
        self.attn = SelfAttention(arch)
        self.ls1 = LayerScale(arch.embed_dim)
        self.norm2 = nn.LayerNorm(arch.embed_dim, eps=arch.layernorm_eps)
        self.mlp = SwiGLUFFN(arch.embed_dim, arch.ffn_hidden)
        self.ls2 = LayerScale(arch.embed_dim)

    def forward(self, x: Tensor, rope_sin: Tensor, rope_cos: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope_sin, rope_cos))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV3Backbone(nn.Module):
    """DINOv3 ViT returning final-normed patch features (B, embed_dim, H/patch, W/patch).

    The output has the weights' dtype; the input is cast to it first (upstream casts the crop to
    the backbone dtype before calling it).
    """

    def __init__(self, arch: BackboneArch) -> None:
        super().__init__()
        self.arch = arch
        self.embed_dim = arch.embed_dim
        self.patch_size = arch.patch_size
        self.n_prefix_tokens = arch.n_prefix_tokens

        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.embed_dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, arch.n_storage_tokens, arch.embed_dim))
        # Only used in DINOv3 pre-training (masked patches); kept so the checkpoint loads cleanly.
        self.mask_token = nn.Parameter(torch.zeros(1, arch.embed_dim))
        self.patch_embed = PatchEmbed(arch)
        self.rope_embed = RopePositionEmbedding(arch)
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(arch.embed_dim, eps=arch.layernorm_eps)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images.to(self.patch_embed.proj.weight.dtype))
        batch, channels, grid_h, grid_w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C), row-major patches
        prefix = torch.cat([self.cls_token, self.storage_tokens], dim=1).to(x.dtype)
        prefix = prefix.expand(batch, self.n_prefix_tokens, channels)  # explicit sizes: no -1 for ONNX
        x = torch.cat([prefix, x], dim=1)

        rope_sin, rope_cos = self.rope_embed.sin_cos(grid_h, grid_w, self.n_prefix_tokens)
        for block in self.blocks:
            x = block(x, rope_sin, rope_cos)

        # LayerNorm is per token, so norming only the patch tokens equals upstream's norm-then-slice.
        patches = self.norm(x[:, self.n_prefix_tokens :])
        return patches.reshape(batch, grid_h, grid_w, channels).permute(0, 3, 1, 2).contiguous()


def block_linears(encoder: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, Linear) for every Linear inside `encoder.blocks`, in module order: what
    the quantised backbones swap (patch embedding, norms and anything outside the blocks stay).
    A generator, one block at a time: a swap that frees the Linear it replaces (fp8 on the GPU)
    never holds more than one block's old ones."""
    for block in encoder.blocks:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    yield parent, name, child
