"""Building a Pipeline: a model folder and a backend request (or `auto`) → the loaded model, the
backbone backend, and on a GPU the captured / compiled decoder passes and the crop
(see pipeline.py for what a Pipeline does with them).

Blocking (`warm_start=False`, bench and the batch engine): everything is built before the first
run. Warm (the window, `infer`): the eager path opens at once and the compiled stages are built
on a background thread and swapped in when checked (warm_start.py).

The backbone is loaded straight into the precision it runs in (BackendPlan.load_dtype): before,
it was loaded in fp32 on the GPU (3.1 GiB for the 840 M backbone) and cast or quantised there,
so the fp32 copy set the GPU's peak. The fp8 backbone is loaded on the host in bf16 and quantised
onto the GPU layer by layer (BackendPlan.backbone_on_host), so the GPU never holds it in bf16
either (1.6 GiB for the 840 M backbone: that load was the fp8 path's peak)."""

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
                   compile_decoder: bool | None = None, warm_start: bool = False,
                   background_build: bool = True, load_in_run_precision: bool = True,
                   host_staged_fp8: bool = True) -> Pipeline:
    """Load a model folder and open the backbone backend the request (or `auto`) names.

    `compile_decoder`: on CUDA, also compile the decoder pass and the crop (TorchInductor; a
    minute the first time, cached after). None: when the backbone is compiled too.
    `decoder_precision`: "auto" is bf16 for a compiled decoder (the fast path; the MHR rig stays
    fp32) and fp32 otherwise. `warm_start`: answer at once with the eager path and build the
    compiled one in the background (`pipeline.fast_path_status` says how that goes);
    `background_build` False: the eager path only (`infer`: one photo could never use the
    compiled one, and a process must not exit while a build still runs).
    `load_in_run_precision` False: the backbone loaded in fp32 and cast after, as before (only
    to measure what that cost: tools/gpu/cold_start.py). `host_staged_fp8` False: the fp8
    backbone loaded onto the GPU in bf16 and quantised there, as before (tools/gpu/fp8_load_peak.py)."""
    from ..device import resolve_device, resolve_dtype
    from ..model.backbone import backbone_arch
    from ..model.config import load_model_config
    from ..model.model_folder import find_model_files, load_model_folder
    from ..runtime.backbones.int8_weights_cache import save_in_background, weights_left_to_cache
    from ..runtime.backbones.plan import (BackendRequest, int8_weights_file, open_backend_check_later, plan_backend,
                                          warm_start_plans)
    from ..runtime.host_memory import keep_freed_memory, release_freed_memory
    from .calibration import calibration_for, mesh_check_for

    keep_freed_memory()  # a CPU pass re-faulted 2.2 GB of pages every time without it (host_memory.py)
    dev = resolve_device(device)
    files = find_model_files(model_dir)
    config = load_model_config(files.config)
    backbone_arch(config.backbone_type)  # an unknown architecture fails here, before loading anything
    request = BackendRequest(kind=backend, precision=precision, backbone_file=backbone_file, cache_dir=cache_dir)
    plan = plan_backend(request, files, dev, config.backbone_type, config.crop_size)
    target = None
    if warm_start:
        plan, target = warm_start_plans(plan, request, dev, background_build)
    if compile_decoder is None:
        compile_decoder = (target or plan).kind == "compiled"
    compile_decoder = compile_decoder and cuda_graph and dev.type == "cuda"
    if decoder_precision == "auto":
        decoder_precision = "bf16" if compile_decoder else "fp32"
    progress(f"loading the model ({plan.kind} backbone: {plan.reason})")
    # The int8 CPU backbone's weights, quantised at an earlier start (int8_weights_cache.py).
    int8_file = int8_weights_file(plan, request, files, dev, config.backbone_type, config.crop_size)
    int8_cached = int8_file is not None and int8_file.is_file()
    loaded = load_model_folder(model_dir, device=dev, with_backbone=plan.needs_backbone_weights,
                               decoder_dtype=resolve_dtype(decoder_precision),
                               backbone_dtype=plan.load_dtype if load_in_run_precision else torch.float32,
                               backbone_device="cpu" if host_staged_fp8 and plan.backbone_on_host else None,
                               leave_unloaded=weights_left_to_cache if int8_cached else None)
    if int8_cached:
        int8_cached = _int8_from_cache(loaded, int8_file, progress)
    encoder = loaded.model.backbone.encoder if plan.needs_backbone_weights else None
    # A warm start with a background build checks a CPU fast path there, after the first answer
    # (the fp32 reference pass would otherwise come first: ~20 s on 2 cores, once per machine).
    backbone, pending_check = open_backend_check_later(
        plan, request, files, dev, config, encoder, progress, calibration=calibration_for(config, dev),
        check=mesh_check_for(loaded), later=target is not None and background_build)
    # Quantised here: kept for the next start, written after the first answer (0.85 GB). Asked
    # again: a check at open has just written the verdict that allows it.
    keep_int8 = None
    if not int8_cached and backbone.info.precision == "int8":
        keep_int8 = int8_weights_file(plan, request, files, dev, config.backbone_type, config.crop_size)
    if plan.needs_backbone_weights:
        loaded.model.backbone.to(dev)  # what of it the backend did not move (fp8 moves the encoder)
        # The weights a backbone quantised or cast on the host replaced (3.4 GB of fp32 for the
        # full-size int8 one): nothing to hand back after a plain fp32 load, mapped int8 weights,
        # or while a pending check keeps the fp32 ones as its reference.
        replaced_on_host = (dev.type == "cpu" and backbone.info.precision != "fp32") or plan.backbone_on_host
        if replaced_on_host and not int8_cached and pending_check is None:
            release_freed_memory()
    if plan.precision == "int8" and not plan.checked:  # int8 named: its decoder part too (a checked path has it)
        mesh_check_for(loaded).fast_decoder("int8")
    if dev.type == "cuda":
        torch.cuda.empty_cache()  # what casting / quantising freed goes back (mem_get_info sees it)
    if target is not None:
        pipeline = _warm_pipeline(loaded, backbone, target, request, dev, cuda_graph, compile_decoder, progress,
                                  background_build, pending_check)
    else:
        decoder, hand_decoder, cropper = gpu_stages(loaded, dev, request.cache_dir, cuda_graph, compile_decoder,
                                                    progress)
        batch_decoder = batch_decoder_for(loaded, dev, cuda_graph, compile_decoder, request.cache_dir, progress)
        pipeline = Pipeline(loaded, backbone, decoder, hand_decoder, cropper, batch_decoder)
    if keep_int8 is not None:
        pipeline.cache_writes.append(save_in_background(keep_int8, encoder, progress, after=pipeline.answered))
    return pipeline


def _int8_from_cache(loaded: LoadedModel, path: Path, progress: Callable[[str], None]) -> bool:
    """The int8 layers from `path` in place of the block Linears load_model_folder left unloaded;
    if the file does not fit, those weights are read from the checkpoint after all (and quantised
    as at a first start). Whether the cache was used."""
    from ..model.model_folder import load_left_parameters
    from ..runtime.backbones.int8_weights_cache import swap_in_cached

    try:
        swap_in_cached(path, loaded.model.backbone.encoder)
    except Exception as exc:  # noqa: BLE001 - a cache: the checkpoint has the weights
        progress(f"note: the kept int8 weights could not be used ({type(exc).__name__}: {str(exc)[:160]}); "
                 "quantising the checkpoint's")
        load_left_parameters(loaded)
        return False
    progress("int8 backbone weights from the cache (quantised at an earlier start)")
    return True


def _warm_pipeline(loaded: LoadedModel, backbone, target, request, device: torch.device, cuda_graph: bool,
                   compile_decoder: bool, progress: Callable[[str], None], background: bool = True,
                   pending_check=None) -> Pipeline:
    """The pipeline on the eager `backbone` and decoder, its fast stages (`target`'s compiled
    backbone, on CUDA the compiled decoder passes and crop) building in the background;
    `pending_check` (cpu_check.PendingCheck): the eager fast path's check against fp32, run there first."""
    from .calibration import calibration_crops
    from .warm_start import FIRST_RUN_GRACE_S, BackgroundFastPath

    pipeline = Pipeline(loaded, backbone)
    if backbone.info.precision != target.precision:  # the checked CPU path fell back to fp32: nothing to compile
        pipeline.fast_path_status = f"not built: the {target.precision} path fell back to {backbone.info.precision}"
        return pipeline
    if not background:
        pipeline.fast_path_status = f"not built (the eager {target.precision} path answers; no background build asked)"
        return pipeline
    pipeline.fast_path = BackgroundFastPath(
        pipeline, lambda: _fast_stages(pipeline, target, request, device, cuda_graph, compile_decoder, progress),
        lambda: next(iter(calibration_crops(loaded.config, device))), progress,
        what=f"the compiled {target.precision} backbone" + (" and decoder" if compile_decoder else ""),
        first_run_grace_s=FIRST_RUN_GRACE_S, on_swapped=_remember_compiled_verdict(loaded, target, request, device),
        precheck=None if pending_check is None else _eager_check(pipeline, pending_check, progress,
                                                                  _keeping_int8(pipeline, request, progress)))
    checking = "" if pending_check is None else " (checked against fp32 in the background after the first answer)"
    progress(f"answering with the eager {target.precision} backbone{checking}; {pipeline.fast_path.what} "
             "is compiling in the background")
    pipeline.fast_path.start()
    return pipeline


def _keeping_int8(pipeline: Pipeline, request, progress: Callable[[str], None]) -> Callable[[str], None]:
    """After a passed check: an int8 path's weights kept for the next start (int8_weights_cache.py)."""
    loaded = pipeline.loaded

    def keep(precision: str) -> None:
        if precision != "int8":
            return
        from ..runtime.backbones.int8_weights_cache import int8_weights_path, save_in_background
        from ..runtime.backbones.plan import default_cache_dir

        path = int8_weights_path(request.cache_dir or default_cache_dir(), loaded.files.checkpoint,
                                 loaded.config.backbone_type)
        pipeline.cache_writes.append(save_in_background(path, loaded.model.backbone.encoder, progress))

    return keep


def _eager_check(pipeline: Pipeline, pending, progress: Callable[[str], None],
                 on_pass: Callable[[str], None] = lambda precision: None) -> Callable[[], None]:
    """The background build's first step when the eager fast path answered unchecked: its check
    against fp32. A miss (or a check that fails) puts the fp32 backbone and decoder in place
    between two runs and ends the build (warm_start.FastPathDeclined); the window runs the photo
    again on fp32. `on_pass(precision)` after a pass."""
    from ..runtime.backbones.pytorch_backend import PyTorchBackbone
    from ..runtime.host_memory import release_freed_memory
    from .warm_start import FastPathDeclined

    def check() -> None:
        precision = pending.precision
        progress(f"checking the eager {precision} CPU backbone against fp32 (once: one fp32 pass; the verdict is "
                 "cached)")
        try:
            verdict = pending.run(pipeline.backbone)
            why = f"missed the fidelity check ({verdict.describe()})"
        except Exception as exc:  # noqa: BLE001 - unchecked, it does not stay
            verdict, why = None, f"could not be checked ({type(exc).__name__}: {exc})"
        if verdict is not None and verdict.ok:
            progress(f"{precision} CPU backbone: {verdict.describe()}")
            release_freed_memory()  # the fp32 weights it replaced, kept until now as the check's reference
            on_pass(precision)
            return
        with pipeline.run_lock:  # between two runs
            pipeline.backbone = PyTorchBackbone(pending.undo(), precision="fp32")
        raise FastPathDeclined(f"the {precision} CPU path {why}; fp32 is in use")

    return check


def _remember_compiled_verdict(loaded: LoadedModel, target, request, device: torch.device):
    """For a checked CPU plan: after the swap, the compiled path's verdict against fp32, kept for
    the next start (plan.py opens a cached AOTInductor package at once only with one). Bounded
    from the eager path's verdict and the swap's check, both on the same crop and decoder
    (cpu_check.chained), so it costs no fp32 pass."""
    if device.type != "cpu" or not target.checked:
        return lambda verdict: None
    from ..runtime.backbones.cpu_check import chained, read_verdict, write_verdict
    from ..runtime.backbones.plan import cpu_verdict_file

    config = loaded.config

    def remember(swap_verdict) -> None:
        def where(kind: str):
            return cpu_verdict_file(request, loaded.files, kind, target.precision, config.backbone_type,
                                    config.crop_size)

        eager = read_verdict(where("pytorch"))
        if eager is not None and swap_verdict is not None:
            write_verdict(where("compiled"), chained(eager, swap_verdict))

    return remember


def _fast_stages(pipeline: Pipeline, target, request, device: torch.device, cuda_graph: bool, compile_decoder: bool,
                 progress: Callable[[str], None]):
    """Runs on the background thread: the compiled backbone on the eager one's very modules (no
    second copy of the weights), then on CUDA the decoder passes and the crop (gpu_stages)."""
    from ..runtime.backbones.plan import open_compiled
    from ..runtime.decoders.prompted_graph import LazyPromptedDecoder
    from .warm_start import FastStages

    eager, config = pipeline.backbone, pipeline.config
    stages = FastStages(backbone=open_compiled(eager.encoder, eager.dtype, device, config.crop_size, request,
                                               config.backbone_type, target.precision, progress))
    if device.type == "cuda" and cuda_graph:
        notes: list[str] = []
        say = _noting(progress, notes)
        stages.decoder, stages.hand_decoder, stages.cropper = gpu_stages(
            pipeline.loaded, device, request.cache_dir, cuda_graph, compile_decoder, say)
        stages.batch_decoder = batch_decoder_for(pipeline.loaded, device, cuda_graph, compile_decoder,
                                                 request.cache_dir, say)
        stages.prompted_decoder = LazyPromptedDecoder(pipeline.model, config.crop_size, device, graph=True)
        prepare_hands = getattr(stages.hand_decoder, "prepare", None)
        if callable(prepare_hands):  # full mode's hand pass captured here too, not on the first full-mode run
            progress("capturing full mode's hand decoder")
            prepare_hands()
        stages.notes = notes
    return stages


def _noting(progress: Callable[[str], None], notes: list[str]) -> Callable[[str], None]:
    """`progress`, keeping the fall-backs it reports (a compiled decoder that fell back to the
    captured one) for the status line."""
    def say(message: str) -> None:
        if "unavailable" in message:
            notes.append(message)
        progress(message)

    return say


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
    hand_decoder = LazyHandDecoder(loaded.model, crop_size, device, graph=True, compiled=compiled,  # made by prepare()
                                   cache_dir=cache_dir, progress=progress, fallback=fallback)
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
