"""Dynamo's recompile limit, raised for the decoder's many compiled shapes.

The body decoder is compiled for one person, for batches (2-16 people), for the hands (batch 2,
other context) and for full mode's re-run (per kept-prompt count). Dynamo caches compiled code
per Python function, not per `torch.compile` call, and the rig (TorchScript) splits each pass
into pieces (graph breaks), so the same small functions (a decoder layer's `forward`, the rig's
camera transform) gather an entry for every shape and layer. Past `recompile_limit` (8 by
default) Dynamo stops compiling such a function and runs it eagerly, silently slower, for every
later shape: measured on the H200 (bench --targets), the full-mode passes built after the batched
decoder hit it. The limit is raised once, before the first decoder compile, to room for every
shape this app compiles; a function that really recompiles without end still stops there.
"""

from __future__ import annotations

import torch

RECOMPILE_LIMIT = 64  # entries per function; the app compiles ~20 shapes of the decoder's pieces


def allow_decoder_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise Dynamo's per-function recompile limit to `limit` (never lower it)."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed in torch 2.6
        if isinstance(getattr(config, name, None), int) and getattr(config, name) < limit:
            setattr(config, name, limit)
    accumulated = getattr(config, "accumulated_recompile_limit", None)
    if isinstance(accumulated, int) and accumulated < 4 * limit:
        config.accumulated_recompile_limit = 4 * limit
