"""The promptable transformer decoder: pose/keypoint tokens cross-attend to image features.

Each layer: self-attention over the tokens, cross-attention from tokens to the image, FFN
(pre-norm, residual). With `repeat_pe`, positional encodings are re-normalised and added to
queries/keys in every layer (layer 0 skips them in self-attention). The image side is never
updated (no two-way attention in the released model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig
from .layers import FeedForward, LayerNorm32

DECODER_LN_EPS = 1e-6


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections to an inner width."""

    def __init__(self, query_dim: int, context_dim: int, inner_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(query_dim, inner_dim)
        self.k_proj = nn.Linear(context_dim, inner_dim)
        self.v_proj = nn.Linear(context_dim, inner_dim)
        self.proj = nn.Linear(inner_dim, query_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        )
        b, _, n, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig, context_dim: int, first: bool) -> None:
        super().__init__()
        dim, inner = cfg.dim, cfg.heads * cfg.dim_head
        self.add_pe_to_self_attention = cfg.repeat_pe and not first
        self.repeat_pe = cfg.repeat_pe
        if cfg.repeat_pe:
            self.ln_pe_1 = LayerNorm32(dim, eps=DECODER_LN_EPS)
            self.ln_pe_2 = LayerNorm32(context_dim, eps=DECODER_LN_EPS)
        self.ln1 = LayerNorm32(dim, eps=DECODER_LN_EPS)
        self.self_attn = Attention(dim, dim, inner, cfg.heads)
        self.ln2_1 = LayerNorm32(dim, eps=DECODER_LN_EPS)
        self.ln2_2 = LayerNorm32(context_dim, eps=DECODER_LN_EPS)
        self.cross_attn = Attention(dim, context_dim, inner, cfg.heads)
        self.ln3 = LayerNorm32(dim, eps=DECODER_LN_EPS)
        self.ffn = FeedForward(dim, cfg.mlp_dim, dim, num_layers=2, activation=nn.GELU)

    def forward(
        self, tokens: torch.Tensor, context: torch.Tensor, token_pe: torch.Tensor, context_pe: torch.Tensor
    ) -> torch.Tensor:
        if self.repeat_pe:
            token_pe = self.ln_pe_1(token_pe)
            context_pe = self.ln_pe_2(context_pe)
        x = self.ln1(tokens)
        qk = x + token_pe if self.add_pe_to_self_attention else x
        tokens = tokens + self.self_attn(qk, qk, x)
        ctx = self.ln2_2(context)
        q = self.ln2_1(tokens)
        if self.repeat_pe:
            tokens = tokens + self.cross_attn(q + token_pe, ctx + context_pe, ctx)
        else:
            tokens = tokens + self.cross_attn(q, ctx, ctx)
        return tokens + self.ffn(self.ln3(tokens))


class PromptableDecoder(nn.Module):
    """The layer stack. The caller drives it layer by layer (`layers`, `norm_final`) because
    intermediate predictions after each layer update the keypoint tokens of the next."""

    def __init__(self, cfg: DecoderConfig, context_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg, context_dim, first=(i == 0)) for i in range(cfg.depth))
        self.norm_final = LayerNorm32(cfg.dim, eps=DECODER_LN_EPS)
