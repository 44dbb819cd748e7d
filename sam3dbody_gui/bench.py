"""`sam3dbody-gui bench`: what each backbone configuration costs, and image → mesh latency.

Backbone method (the seed's): batch 1, one 512×512 crop, CUDA events around each call after a
2 s warm-up, 300 timed iterations, GPU compute time; mean, p95, throughput, artefact size,
speed-up over fp32 eager and peak GPU memory. On a CPU: wall time, fewer iterations, labelled.
End to end: the body-mode pipeline (preprocess → backbone → decoder+MHR → host) on the
benchmark image set, wall clock per stage; a '+full' configuration runs full mode (hand
refinement: hand crops, two more backbone runs, hand decoder, body re-run) and adds those stages.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .pipeline.benchmark_images import benchmark_images
from .pipeline.calibration import calibration_for
from .errors import UserError
from .model.model_folder import LoadedModel, find_model_files, load_model_folder
from .pipeline.build import batch_decoder_for, gpu_stages
from .pipeline.pipeline import Pipeline
from .runtime.backbones.base import BackboneBackend
from .model.model_folder import PT2_CANDIDATES, find_backbone_file
from .runtime.backbones.plan import BackendRequest, open_backend, plan_backend

GPU_WARMUP_S, GPU_ITERATIONS = 2.0, 300
CPU_WARMUP_ITERATIONS, CPU_ITERATIONS = 1, 5
E2E_ROUNDS_GPU, E2E_ROUNDS_CPU = 10, 1


@dataclass
class BackboneRow:
    config: str
    mean_ms: float
    p95_ms: float
    qps: float
    artefact_mib: float
    speedup_vs_fp32: float = float("nan")
    peak_gpu_gib: float = float("nan")
    timing: str = "CUDA events"


@dataclass
class EndToEndRow:
    config: str
    stages_median_ms: dict[str, float] = field(default_factory=dict)
    total_p95_ms: float = float("nan")
    runs: int = 0


def default_configs(device: torch.device, model_dir: Path) -> list[str]:
    configs = ["pytorch:fp32"]
    if device.type == "cuda":
        configs += ["pytorch:fp16", "pytorch:bf16", "compiled:bf16"]
        from .runtime.backbones.fp8 import fp8_supported

        if fp8_supported(device):
            configs.append("compiled:fp8")
        from .runtime.backbones.plan import tensorrt_available

        if tensorrt_available():
            configs.append("tensorrt")
    else:
        configs += ["compiled:fp32"]
    if find_backbone_file(find_model_files(model_dir), PT2_CANDIDATES) is not None:
        configs.append("pt2")
    return configs


def _time_calls(fn: Callable[[], object], device: torch.device, iterations: int | None = None) -> tuple[list[float], str]:
    if device.type == "cuda":
        end = time.perf_counter() + GPU_WARMUP_S
        while time.perf_counter() < end:
            fn()
        torch.cuda.synchronize(device)
        n = iterations or GPU_ITERATIONS
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for start, stop in events:
            start.record()
            fn()
            stop.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(stop) for start, stop in events], f"CUDA events, {GPU_WARMUP_S:g} s warm-up, {n} iterations"
    for _ in range(CPU_WARMUP_ITERATIONS):
        fn()
    n = iterations or CPU_ITERATIONS
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, f"CPU wall time, {n} iterations"


def _artefact_mib(backend: BackboneBackend) -> float:
    for attr in ("package", "path", "engine_path"):
        path = getattr(backend, attr, None)
        if path is not None and Path(path).is_file():
            return Path(path).stat().st_size / 2**20
    encoder = getattr(backend, "encoder", None)
    if encoder is not None:
        return sum(t.numel() * t.element_size() for t in encoder.state_dict().values()) / 2**20
    return float("nan")


class Bench:
    def __init__(self, model_dir: Path, device: torch.device, progress: Callable[[str], None] = print,
                 cache_dir: Path | None = None, max_autotune: bool = False, backbone_file: Path | None = None) -> None:
        """`backbone_file`: the ONNX or .pt2 the tensorrt and pt2 configurations run (default: the folder's)."""
        self.model_dir = Path(model_dir)
        self.backbone_file = backbone_file
        self.device = device
        self.progress = progress
        self.cache_dir = cache_dir
        self.max_autotune = max_autotune
        self.files = find_model_files(model_dir)
        self.loaded: LoadedModel = load_model_folder(model_dir, device=device)
        self.config = self.loaded.config
        self.encoder_fp32 = self.loaded.model.backbone.encoder
        self.backends: dict[str, BackboneBackend] = {}
        self._decoder_models: dict[str, LoadedModel] = {}
        self._pipelines: dict[str, Pipeline] = {}

    def backend(self, spec: str) -> BackboneBackend:
        if spec not in self.backends:
            kind, _, precision = spec.partition(":")
            req = BackendRequest(kind=kind, precision=precision or "auto", cache_dir=self.cache_dir,
                                 max_autotune=self.max_autotune,
                                 backbone_file=self.backbone_file if kind in ("tensorrt", "pt2") else None)
            plan = plan_backend(req, self.files, self.device, self.config.backbone_type, self.config.crop_size)
            encoder = None
            if plan.needs_backbone_weights:  # a private copy: backends cast or quantise it in place
                encoder = type(self.encoder_fp32)(self.encoder_fp32.arch).to(self.device)
                encoder.load_state_dict(self.encoder_fp32.state_dict())
            self.backends[spec] = open_backend(plan, req, self.files, self.device, self.config, encoder,
                                               self.progress, calibration=calibration_for(self.config, self.device))
        return self.backends[spec]

    @torch.inference_mode()
    def backbone_rows(self, configs: list[str], iterations: int | None = None) -> list[BackboneRow]:
        size = self.config.crop_size
        crop = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(self.device)
        rows = []
        for spec in configs:
            self.progress(f"benchmarking backbone {spec}")
            try:
                backend = self.backend(spec)
            except UserError as exc:  # e.g. TensorRT missing: say so in the table, measure the rest
                self.progress(f"  skipped {spec}: {exc}")
                continue
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            times, how = _time_calls(lambda: backend(crop), self.device, iterations)
            mean = statistics.fmean(times)
            row = BackboneRow(spec, mean, float(np.percentile(times, 95)), 1000.0 / mean, _artefact_mib(backend), timing=how)
            if self.device.type == "cuda":
                row.peak_gpu_gib = torch.cuda.max_memory_allocated(self.device) / 2**30
            rows.append(row)
        reference = next((r.mean_ms for r in rows if r.config == "pytorch:fp32"), None)
        for row in rows:
            if reference:
                row.speedup_vs_fp32 = reference / row.mean_ms
        return rows

    def pipeline(self, spec: str) -> Pipeline:
        """A pipeline for 'backend:precision[+graph][+dec-compiled][+dec-bf16][+full]': '+graph' runs
        the body decoder (and full mode's hand decoder) as CUDA graphs, '+dec-compiled' compiles the
        body decoder pass and the crop (then captures the pass: implies '+graph'), '+dec-bf16' runs
        the decoder (not the MHR rig) in bf16, '+dec-int8' its image-token k/v projections in int8
        (the CPU's int8 path, runtime/decoders/int8_image_kv.py), '+full' (used by `end_to_end_rows`) runs full mode
        (the same pipeline, run in full mode). One pipeline per configuration: the end-to-end and
        the people tables share it, so its compiles and captures are made once."""
        backbone_spec, *flags = spec.split("+")
        unknown = set(flags) - {"graph", "dec-compiled", "dec-bf16", "dec-int8", "full"}
        if unknown:
            raise UserError(f"unknown configuration flag(s) {sorted(unknown)} in {spec!r}: "
                            "use +graph, +dec-compiled, +dec-bf16, +dec-int8, +full")
        key = "+".join([backbone_spec] + [f for f in flags if f != "full"])
        if key not in self._pipelines:
            self._pipelines[key] = self._new_pipeline(backbone_spec, flags)
        return self._pipelines[key]

    def _new_pipeline(self, backbone_spec: str, flags: list[str]) -> Pipeline:
        loaded = self.loaded
        if "dec-bf16" in flags:
            if "dec-bf16" not in self._decoder_models:
                self._decoder_models["dec-bf16"] = load_model_folder(
                    self.model_dir, device=self.device, decoder_dtype=torch.bfloat16, with_backbone=False)
            loaded = self._decoder_models["dec-bf16"]
        if "dec-int8" in flags:
            if "dec-int8" not in self._decoder_models:
                from .runtime.decoders.int8_image_kv import quantize_image_kv_int8

                self._decoder_models["dec-int8"] = load_model_folder(self.model_dir, device=self.device,
                                                                     with_backbone=False)
                quantize_image_kv_int8(self._decoder_models["dec-int8"].model)
            loaded = self._decoder_models["dec-int8"]
        decoder, hand_decoder, cropper = gpu_stages(loaded, self.device, self.cache_dir, "graph" in flags,
                                                    "dec-compiled" in flags, self.progress, fallback=False)
        batch_decoder = batch_decoder_for(loaded, self.device, "graph" in flags or "dec-compiled" in flags,
                                          "dec-compiled" in flags, self.cache_dir, self.progress, fallback=False)
        return Pipeline(loaded, self.backend(backbone_spec), decoder, hand_decoder, cropper, batch_decoder)

    def end_to_end_rows(self, configs: list[str], rounds: int | None = None) -> list[EndToEndRow]:
        images = benchmark_images()
        rows = []
        for spec in configs:
            self.progress(f"benchmarking end to end {spec}")
            pipeline = self.pipeline(spec)
            mode = "full" if "full" in spec.split("+")[1:] else "body"
            for item in images[:2]:  # warm-up (allocations, first-run kernels)
                pipeline.run(item.image, item.box, mode=mode)
            n = rounds or (E2E_ROUNDS_GPU if self.device.type == "cuda" else E2E_ROUNDS_CPU)
            timings = [pipeline.run(item.image, item.box, mode=mode).timings_ms for _ in range(n) for item in images]
            rows.append(EndToEndRow(
                spec, {k: statistics.median(t[k] for t in timings) for k in timings[0]},
                float(np.percentile([t["total"] for t in timings], 95)), len(timings)))
        return rows


def fast_configs(device: torch.device) -> tuple[str, str]:
    """(backbone configuration, end-to-end configuration) of the path `auto` runs fastest here:
    on a GPU the compiled fp8 (else bf16) backbone with the compiled bf16 decoder, on a CPU the
    compiled backbone in the precision its units favour (int8: the decoder's image k/v too)."""
    if device.type == "cuda":
        from .runtime.backbones.fp8 import fp8_supported

        backbone = f"compiled:{'fp8' if fp8_supported(device) else 'bf16'}"
        return backbone, backbone + "+dec-compiled+dec-bf16"
    from .runtime.cpu_features import this_cpu_plan

    precision = this_cpu_plan().backbone
    return f"compiled:{precision}", f"compiled:{precision}" + ("+dec-int8" if precision == "int8" else "")


def default_e2e_configs(device: torch.device) -> list[str]:
    if device.type == "cuda":
        fast = fast_configs(device)[1]  # the compiled default
        return ["pytorch:fp32", "pytorch:bf16+graph", "compiled:bf16+dec-compiled", fast, fast + "+full"]
    return ["pytorch:fp32"]


def machine_description(device: torch.device) -> dict:
    info = {"device": str(device), "torch": str(torch.__version__), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_tables(machine: dict, backbone: list[BackboneRow], e2e: list[EndToEndRow]) -> str:
    lines = [f"machine: {machine.get('gpu', machine['cpu'])}, torch {machine['torch']}"]
    if backbone:
        lines.append(f"\nbackbone, batch 1, 512×512 ({backbone[0].timing})")
        lines.append(f"{'configuration':22s} {'mean ms':>9s} {'p95 ms':>9s} {'qps':>8s} {'size MiB':>9s} "
                     f"{'vs fp32':>8s} {'peak GiB':>9s}")
        for r in backbone:
            peak = f"{r.peak_gpu_gib:9.2f}" if math.isfinite(r.peak_gpu_gib) else f"{'–':>9s}"
            speedup = f"{r.speedup_vs_fp32:7.2f}×" if math.isfinite(r.speedup_vs_fp32) else f"{'–':>8s}"
            lines.append(f"{r.config:22s} {r.mean_ms:9.2f} {r.p95_ms:9.2f} {r.qps:8.1f} {r.artefact_mib:9.0f} "
                         f"{speedup} {peak}")
        if any(not math.isfinite(r.peak_gpu_gib) for r in backbone):
            lines.append("peak GiB: – = not measured (peak memory is read from the GPU allocator; a CPU run has none)")
    if e2e:
        stages = [s for s in e2e[0].stages_median_ms if s != "total"]
        for r in e2e[1:]:  # full-mode rows add the hand stages
            stages += [s for s in r.stages_median_ms if s not in stages and s != "total"]
        stages.append("total")
        lines.append(f"\nend to end, image → mesh on the host (median ms over {e2e[0].runs} runs; "
                     "'+graph' = body decoder as one CUDA graph; '+dec-compiled' = decoder and crop compiled, then "
                     "captured; '+full' = full mode, with hand refinement)")
        lines.append(f"{'configuration':26s} " + " ".join(f"{s:>13s}" for s in stages) + f" {'total p95':>10s}")
        for r in e2e:
            cells = [f"{r.stages_median_ms[s]:13.2f}" if s in r.stages_median_ms else f"{'–':>13s}" for s in stages]
            lines.append(f"{r.config:26s} " + " ".join(cells) + f" {r.total_p95_ms:10.2f}")
    return "\n".join(lines)


def run_bench(model_dir: Path, device: torch.device, configs: list[str] | None, e2e: list[str] | None,
              json_path: Path | None, iterations: int | None = None, max_autotune: bool = False,
              progress: Callable[[str], None] = print, people: list[int] | None = None,
              video: list[int] | None = None, video_frames: int = 90, video_clip: Path | None = None) -> str:
    """`people`: also time photos of that many people each (the last end-to-end configuration).
    `video`: also a clip's pass per people count (bench_video.py), on the same configuration."""
    from .bench_people import format_people_table, people_rows
    from .bench_video import format_video_table, video_rows

    bench = Bench(model_dir, device, progress, max_autotune=max_autotune)
    configs = configs if configs is not None else default_configs(device, model_dir)
    e2e = e2e if e2e is not None else default_e2e_configs(device)
    try:
        backbone_rows = bench.backbone_rows(configs, iterations)
        e2e_rows = bench.end_to_end_rows(e2e, None if iterations is None else 1)
        last = (e2e or default_e2e_configs(device))[-1].replace("+full", "")
        crowd_rows = people_rows(bench, last, people, None if iterations is None else 1) if people else []
        clip_rows = video_rows(bench.pipeline(last), video, video_frames, video_clip, progress) if video else []
    except torch.cuda.OutOfMemoryError:
        raise UserError("the GPU ran out of memory during the benchmark; run fewer configurations") from None
    machine = machine_description(device)
    text = format_tables(machine, backbone_rows, e2e_rows)
    if crowd_rows:
        text += "\n" + format_people_table(crowd_rows)
    if clip_rows:
        text += "\n" + format_video_table(clip_rows, f"{last} on {machine.get('gpu', machine['cpu'])}")
    if json_path is not None:
        from .atomic_file import write_bytes_atomic

        payload = {"machine": machine, "images": [i.name for i in benchmark_images()],
                   "backbone": [_finite_or_none(asdict(r)) for r in backbone_rows],
                   "end_to_end": [_finite_or_none(asdict(r)) for r in e2e_rows],
                   "people": [_finite_or_none(asdict(r)) for r in crowd_rows],
                   "video": [_finite_or_none(asdict(r)) for r in clip_rows]}
        write_bytes_atomic(json_path, json.dumps(payload, indent=1, allow_nan=False).encode())
    return text


def _finite_or_none(row: dict) -> dict:
    """Not-measured figures (NaN) as JSON null: NaN is not JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
