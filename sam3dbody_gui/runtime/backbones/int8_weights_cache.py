"""The int8 CPU backbone's quantised weights kept on disk for the next start.

Without it every start reads the checkpoint's 3.4 GB of fp32 block weights into fresh memory
and quantises them (full-size model, 2 cores: ~1 s to copy, 1.8 s to quantise), and the process
holds both copies for a moment (4.3 GB). With it the model folder leaves those weights unloaded
(model_folder.load_model_folder's `leave_unloaded`) and the Int8DynamicLinear layers are built
on this file's tensors, mapped from it (0.85 GB, read as pages are touched, never copied).

It is used only where the fp32 weights are not needed: an int8 path that was named, or that
`auto` chose and whose check against fp32 has passed (cpu_check.py; the fp32 model is the
reference of a check still to run). The key covers the checkpoint (path, size, time), the
architecture, the CPU's weight levels (±127 with VNNI, ±63 without: int8_cpu.py) and torch; a
file that does not match the model it is for is not used (the weights are then read from the
checkpoint and quantised as before, with one message), and a new one is written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ...atomic_file import atomic_path
from ...model.backbone import block_linears
from .int8_cpu import Int8DynamicLinear, weight_levels

FORMAT_VERSION = 1
ENCODER_PREFIX = "backbone.encoder."


def int8_weights_path(cache_dir: Path, checkpoint: Path, arch: str) -> Path:
    from ..compile_cache import cache_path, file_identity

    return cache_path(cache_dir, "int8-weights", torch.device("cpu"), checkpoint=file_identity(checkpoint),
                      arch=arch, levels=weight_levels(), version=FORMAT_VERSION).with_suffix(".pt")


def _named_linears(encoder: nn.Module) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    """(qualified name within `encoder`, parent, attribute, Linear) of the Linears the int8 path
    quantises, in order."""
    names = {id(m): n for n, m in encoder.named_modules()}
    return [(f"{names[id(parent)]}.{attribute}", parent, attribute, linear)
            for parent, attribute, linear in block_linears(encoder)]


def weights_left_to_cache(model: nn.Module) -> list[str]:
    """For load_model_folder's `leave_unloaded`: the fp32 weights the cache replaces."""
    return [f"{ENCODER_PREFIX}{name}.weight" for name, *_ in _named_linears(model.backbone.encoder)]


def swap_in_cached(path: Path, encoder: nn.Module) -> None:
    """Put the cached int8 layers in place of the encoder's block Linears (whose weights were
    left unloaded). Raises (ValueError, OSError, RuntimeError, ...) if the file does not match;
    the encoder is then unchanged."""
    tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(tensors, dict) or tensors.get("version") != FORMAT_VERSION:
        raise ValueError("not an int8 weights file of this version")
    swaps = []
    for name, parent, attribute, linear in _named_linears(encoder):
        w, scale, bias = (tensors.get(f"{name}.{part}") for part in ("weight_int8", "weight_scale", "bias"))
        out_features, in_features = linear.out_features, linear.in_features
        if not (isinstance(w, torch.Tensor) and w.dtype == torch.int8 and w.shape == (out_features, in_features)
                and isinstance(scale, torch.Tensor) and scale.dtype == torch.float32 and scale.shape == (out_features,)
                and isinstance(bias, torch.Tensor) and bias.dtype == torch.float32 and bias.shape == (out_features,)):
            raise ValueError(f"{name} does not match the model")
        swaps.append((parent, attribute, Int8DynamicLinear.from_quantized(w, scale, bias)))
    if len(tensors) != 3 * len(swaps) + 1:
        raise ValueError("the file holds layers the model does not have")
    for parent, attribute, layer in swaps:
        setattr(parent, attribute, layer)


def save_cached(path: Path, encoder: nn.Module) -> None:
    """Write the encoder's int8 block layers (atomically: a reader never sees half a file)."""
    tensors: dict[str, object] = {"version": FORMAT_VERSION}
    names = {id(m): n for n, m in encoder.named_modules()}
    for block in encoder.blocks:
        for module in block.modules():
            if isinstance(module, Int8DynamicLinear):
                name = names[id(module)]
                tensors[f"{name}.weight_int8"] = module.weight_int8
                tensors[f"{name}.weight_scale"] = module.weight_scale
                tensors[f"{name}.bias"] = module.bias
    if len(tensors) == 1:
        raise ValueError("the encoder has no int8 layers")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(path)) as tmp:
        torch.save(tensors, tmp)


# How long the write waits at most for `after` (the first answer): a caller that never runs
# still gets its file.
FIRST_ANSWER_WAIT_S = 30.0


def save_in_background(path: Path, encoder: nn.Module, progress: Callable[[str], None],
                       after: threading.Event | None = None) -> threading.Thread:
    """`save_cached` on a thread of its own (0.85 GB for the full-size model: 5.6 s on this VM's
    disk, flushed), once `after` is set: the first answer does not share the cores with it. A
    failure (a full disk) is one message, and the next start quantises again."""
    def work() -> None:
        if after is not None:
            after.wait(FIRST_ANSWER_WAIT_S)
        try:
            save_cached(path, encoder)
        except Exception as exc:  # noqa: BLE001 - a cache: nothing depends on it
            progress(f"note: the int8 weights were not kept for the next start ({type(exc).__name__}: {exc})")

    # Not a daemon: a process that ends (`infer`) finishes the file first rather than leave none.
    thread = threading.Thread(target=work, name="int8-weights-cache", daemon=False)
    thread.start()
    return thread
