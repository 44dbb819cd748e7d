"""Building a Pipeline: a model folder and a backend request (or `auto`) → the loaded model, the
backbone backend, and on a GPU the captured / compiled decoder passes and the crop
(see pipeline.py for what a Pipeline does with them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ..model.model_folder import LoadedModel
from .device_crop import DeviceCropper
from .pipeline import Pipeline

if TYPE_CHECKING:
    from .pipeline import BodyDecoder


def build_pipeline(model_dir: Path, device: str = "auto", precision: str = "auto", backend: str = "auto",
                   backbone_file: Path | None = None, cuda_graph: bool = True, decoder_precision: str = "auto",
                   progress: Callable[[str], None] = lambda m: None, cache_dir: Path | None = None,
                   compile_decoder: bool | None = None) -> Pipeline:
    """Load a model folder and open the backbone backend the request (or `auto`) names.

    `compile_decoder`: on CUDA, also compile the decoder pass and the crop (TorchInductor; a
    minute the first time, cached after). None: when the backbone is compiled too.
    `decoder_precision`: "auto" is bf16 for a compiled decoder (the fast path; the MHR rig stays
    fp32) and fp32 otherwise."""
    from ..device import resolve_device, resolve_dtype
    from ..model.backbone import backbone_arch
    from ..model.config import load_model_config
    from ..model.model_folder import find_model_files, load_model_folder
    from ..runtime.backbones.plan import BackendRequest, open_backend, plan_backend
    from .calibration import calibration_for, mesh_check_for

    dev = resolve_device(device)
    files = find_model_files(model_dir)
    config = load_model_config(files.config)
    backbone_arch(config.backbone_type)  # an unknown architecture fails here, before loading anything
    request = BackendRequest(kind=backend, precision=precision, backbone_file=backbone_file, cache_dir=cache_dir)
    plan = plan_backend(request, files, dev, config.backbone_type, config.crop_size)
    if compile_decoder is None:
        compile_decoder = plan.kind == "compiled"
    compile_decoder = compile_decoder and cuda_graph and dev.type == "cuda"
    if decoder_precision == "auto":
        decoder_precision = "bf16" if compile_decoder else "fp32"
    progress(f"loading the model ({plan.kind} backbone: {plan.reason})")
    loaded = load_model_folder(model_dir, device=dev, with_backbone=plan.needs_backbone_weights,
                               decoder_dtype=resolve_dtype(decoder_precision))
    encoder = loaded.model.backbone.encoder if plan.needs_backbone_weights else None
    backbone = open_backend(plan, request, files, dev, config, encoder, progress,
                            calibration=calibration_for(config, dev), check=mesh_check_for(loaded))
    if plan.precision == "int8" and not plan.checked:  # int8 named: its decoder part too (a checked path has it)
        mesh_check_for(loaded).fast_decoder("int8")
    decoder, hand_decoder, cropper = gpu_stages(loaded, dev, request.cache_dir, cuda_graph, compile_decoder, progress)
    batch_decoder = batch_decoder_for(loaded, dev, cuda_graph, compile_decoder, request.cache_dir, progress)
    return Pipeline(loaded, backbone, decoder, hand_decoder, cropper, batch_decoder)


def gpu_stages(loaded: LoadedModel, device: torch.device, cache_dir: Path | None, graph: bool, compiled: bool,
               progress: Callable[[str], None] = lambda m: None, fallback: bool = True):
    """(body decoder, hand decoder, cropper) for a pipeline on `device`; all None off CUDA.

    `graph`: decoder passes as CUDA graphs. `compiled`: also compile the crop and the body pass
    (then captured; implies `graph`), caches under `cache_dir`. `fallback`: if the compiled pass
    fails, say so and use the plain captured one (False: raise, e.g. to benchmark it)."""
    if device.type != "cuda" or not (graph or compiled):
        return None, None, None
    from ..runtime.decoders.decoder_graph import graph_body_decoder
    from ..runtime.decoders.hand_graph import LazyHandDecoder
    from ..runtime.backbones.plan import default_cache_dir

    crop_size = loaded.config.crop_size
    cache_dir = cache_dir or default_cache_dir()
    decoder = cropper = None
    if compiled:
        from ..runtime.decoders.compiled_decoder import CompiledBodyDecoder

        progress("compiling the GPU crop (seconds; cached)")
        cropper = DeviceCropper(device, loaded.config.image_mean, loaded.config.image_std, compiled=True,
                                cache_dir=cache_dir)
        try:
            decoder = CompiledBodyDecoder(loaded.model, crop_size, device, cache_dir, progress)
        except Exception as exc:  # noqa: BLE001 - the plain captured pass is always there to fall back on
            if not fallback:
                raise
            progress(f"compiled decoder unavailable ({type(exc).__name__}: {exc}); using the captured pass")
    if decoder is None:
        progress("capturing the decoder as a CUDA graph")
        decoder = graph_body_decoder(loaded.model, crop_size, device)
    hand_decoder = LazyHandDecoder(loaded.model, crop_size, device, graph=True)  # full mode, on first use
    return decoder, hand_decoder, cropper


def batch_decoder_for(loaded: LoadedModel, device: torch.device, graph: bool, compiled: bool = False,
                      cache_dir: Path | None = None, progress: Callable[[str], None] = lambda m: None,
                      fallback: bool = True) -> BodyDecoder | None:
    """The body pass for several people: CUDA graphs per batch-size bucket on a GPU, all captured
    here (at load), so a photo with more people never waits for one; with `compiled`, the pass
    compiled first (one compile for every bucket, cached under `cache_dir`), falling back to the
    plain captured buckets if that fails (`fallback` False: raise). None (the eager pass) elsewhere."""
    if device.type != "cuda" or not (graph or compiled):
        return None
    from ..runtime.decoders.decoder_buckets import BucketedBodyDecoder, CompiledBucketedBodyDecoder

    crop_size = loaded.config.crop_size
    if compiled:
        from ..runtime.backbones.plan import default_cache_dir

        try:
            return CompiledBucketedBodyDecoder(loaded.model, crop_size, device, cache_dir or default_cache_dir(),
                                               progress)
        except Exception as exc:  # noqa: BLE001 - the plain captured buckets are always there to fall back on
            if not fallback:
                raise
            progress(f"compiled batched decoder unavailable ({type(exc).__name__}: {exc}); using captured buckets")
    progress("capturing the decoder for several people at once (CUDA graphs per batch size)")
    batched = BucketedBodyDecoder(loaded.model, crop_size, device)
    batched.prepare()
    return batched
