"""Dynamo's recompile limit (runtime/compile_limits.py): the decoder's pieces compiled for every
shape the app compiles, not dropped to eager past the default limit of 8.

What the GPU does at load, traced on the CPU with aot_eager: the body pass compiled for one
person and for batches of 2-16 (the rig's graph breaks make the same small functions recompile
for each). With the default limit and a plain torch.compile, Dynamo gives up on three of them (the
rig's camera transform, `repeat` in run_decoder, a decoder layer's forward: its warning says so,
and the test below failed that way before the fix); through StaticPass, which raises the limit
before it compiles, it never does."""

from __future__ import annotations

import logging

import torch

from sam3dbody_gui.runtime.decoders.compiled_hand_pass import StaticPass, camera_fields, hand_example
from sam3dbody_gui.model.crop_camera import CropCamera

CPU = torch.device("cpu")
SIZES = (1, 2, 4, 8, 16)


class _LimitWarnings(logging.Handler):
    def __init__(self):
        super().__init__()
        self.hits = []

    def emit(self, record):
        if "recompile_limit" in record.getMessage():
            self.hits.append(record.getMessage().splitlines()[1].strip())


def _compile_every_size(model) -> list:
    features, cams = hand_example(model, 512, CPU)
    fields = {k: v[:1] for k, v in camera_fields(cams).items()}

    def body(f, cam_fields):
        return model.decode_body(f, CropCamera(crop_size=512, **cam_fields))

    seen = _LimitWarnings()
    logger = logging.getLogger("torch._dynamo")
    logger.addHandler(seen)
    torch._dynamo.reset()
    try:
        with torch._dynamo.config.patch(recompile_limit=8), torch.inference_mode():
            for size in SIZES:
                example = (features[:1].expand(size, -1, -1, -1).contiguous(),
                           {k: v.expand(size, *v.shape[1:]).contiguous() for k, v in fields.items()})
                StaticPass(body, example, CPU, compile_backend="aot_eager")
    finally:
        logger.removeHandler(seen)
        torch._dynamo.reset()
    return seen.hits


def test_the_compiled_passes_raise_it_so_every_shape_compiles(tiny_loaded):
    assert _compile_every_size(tiny_loaded.model) == []
