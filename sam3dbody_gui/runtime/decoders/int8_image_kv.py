"""The decoders' image-token projections in int8, for the CPU's int8 path.

Each decoder layer projects all 1,024 image tokens (1,280 channels) to keys and values for its
cross-attention: 12 of the body pass's 116 linear layers but half their time on the CPU (75 of
147 ms, full-size model, 2 cores). The same dynamic quantisation as the backbone's linears
(backbones/int8_cpu.py) takes 60 ms off the body pass and moved the mesh 0.5 mm on its own
(0.65 mm mean with the int8 backbone, 3 images; the limit is 5). Everything else in the decoder,
and the MHR rig, stays fp32: the whole decoder in bf16 moved the mesh 5.7 mm.
"""

from __future__ import annotations

from torch import nn

from ..backbones.int8_cpu import Int8DynamicLinear, Swap, restore_linears, weight_levels


def quantize_image_kv_int8(model: nn.Module) -> list[Swap]:
    """Swap the cross-attention k/v projections of the body and hand decoders for int8 ones (in
    place); returns what was swapped out (`restore_linears` undoes it). Idempotent."""
    swaps: list[Swap] = []
    levels = weight_levels()
    for name in ("decoder", "decoder_hand"):
        decoder = getattr(model, name, None)
        for layer in getattr(decoder, "layers", ()):
            attn = layer.cross_attn
            for proj in ("k_proj", "v_proj"):
                child = getattr(attn, proj)
                if isinstance(child, nn.Linear):
                    setattr(attn, proj, Int8DynamicLinear(child, levels))
                    swaps.append((attn, proj, child))
    return swaps


__all__ = ["quantize_image_kv_int8", "restore_linears"]
