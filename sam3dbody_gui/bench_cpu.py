"""`bench --cpu-paths`: the CPU's fast paths against fp32, as one table (issue 15's CPU row).

For fp32, the path `auto` picks on this CPU (runtime/cpu_features.py) eager and compiled, and
the CPU's other fast precision where it has one: the body-mode pipeline on every benchmark image
(after one warm-up run), median backbone, decoder+MHR and total wall time, and the mesh deviation
from fp32 on the same images (the figures `compare` gives: mean and max over the vertices, in the
camera frame, worst image for the max). The fp32 runs are made once and shared by every row.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bench import Bench, machine_description
from .pipeline.benchmark_images import benchmark_images
from .runtime.backbones.cpu_check import FIDELITY_MAX_MM, FIDELITY_MEAN_MM
from .runtime.cpu_features import CpuPlan, cpu_model_name, detect, this_cpu_plan


@dataclass
class CpuPathRow:
    config: str
    backbone_ms: float
    decoder_ms: float
    total_ms: float
    mesh_mean_mm: float
    mesh_max_mm: float
    feature_diff_pct: float
    runs: int


def cpu_path_configs(plan: CpuPlan, units: frozenset[str]) -> list[str]:
    configs = ["pytorch:fp32"]
    if plan.fast:  # the int8 path: the decoder's image-token k/v projections too, as `auto` runs it
        dec = "+dec-int8" if plan.backbone == "int8" else ""
        configs += [f"pytorch:{plan.backbone}{dec}", f"compiled:{plan.backbone}{dec}"]
    other = "bf16" if plan.backbone == "int8" and {"avx512_bf16", "amx_bf16"} & units else None
    if plan.backbone == "bf16" and {"avx512_vnni", "avx_vnni", "avx2"} & units:
        other = "int8"
    if other:
        configs.append(f"pytorch:{other}")
    return configs


def cpu_path_rows(bench: Bench, configs: list[str], progress: Callable[[str], None] = print,
                  images: int | None = None) -> list[CpuPathRow]:
    items = benchmark_images()[:images]
    reference = None
    rows = []
    for spec in configs:
        progress(f"CPU path {spec}")
        pipeline = bench.pipeline(spec)
        pipeline.run(items[0].image, items[0].box)  # warm-up (allocations, first-run kernels)
        results = [pipeline.run(item.image, item.box) for item in items]
        if reference is None:
            reference = results
        mean_mm, max_mm, feature = [], [], []
        for got, want in zip(results, reference):
            mm = np.linalg.norm(got.vertices_camera - want.vertices_camera, axis=1) * 1000.0
            mean_mm.append(float(mm.mean()))
            max_mm.append(float(mm.max()))
            feature.append(float(np.linalg.norm(got.features - want.features) / max(np.linalg.norm(want.features),
                                                                                     1e-12)))
        stage = {key: statistics.median(r.timings_ms[key] for r in results)
                 for key in ("backbone", "decoder+MHR", "total")}
        rows.append(CpuPathRow(spec, stage["backbone"], stage["decoder+MHR"], stage["total"], float(np.mean(mean_mm)),
                               float(np.max(max_mm)), 100.0 * float(np.mean(feature)), len(results)))
    return rows


def format_cpu_table(machine: dict, plan: CpuPlan, rows: list[CpuPathRow]) -> str:
    lines = [f"CPU paths on {cpu_model_name()} ({detect().describe()}), {machine['threads']} threads, "
             f"torch {machine['torch']}; body mode, median over {rows[0].runs} images, wall ms",
             f"auto here: {plan.reason}",
             f"{'configuration':24s} {'backbone':>9s} {'dec+MHR':>9s} {'total':>9s} {'vs fp32':>8s} "
             f"{'mesh mean':>10s} {'mesh max':>9s} {'feature %':>10s}"]
    reference = rows[0].total_ms
    for r in rows:
        lines.append(f"{r.config:24s} {r.backbone_ms:9.0f} {r.decoder_ms:9.0f} {r.total_ms:9.0f} "
                     f"{reference / r.total_ms:7.2f}× {r.mesh_mean_mm:10.2f} {r.mesh_max_mm:9.2f} "
                     f"{r.feature_diff_pct:10.2f}")
    lines.append(f"mesh: mm vs {rows[0].config} on the same images (limit: mean ≤ {FIDELITY_MEAN_MM:g}, "
                 f"max ≤ {FIDELITY_MAX_MM:g}); feature: relative L2 difference of the backbone features")
    return "\n".join(lines)


def run_cpu_paths(model_dir: Path, json_path: Path | None = None, progress: Callable[[str], None] = print,
                  images: int | None = None, configs: list[str] | None = None, cache_dir: Path | None = None) -> str:
    """`images`: the first that many benchmark images (default all); `cache_dir`: compiled kernels
    (default the user cache, where the app finds them: `auto` then picks the compiled path)."""
    device = torch.device("cpu")
    plan = this_cpu_plan()
    bench = Bench(model_dir, device, progress, cache_dir=cache_dir)
    rows = cpu_path_rows(bench, configs or cpu_path_configs(plan, detect().usable()), progress, images)
    machine = machine_description(device)
    if json_path is not None:
        from .atomic_file import write_bytes_atomic

        payload = {"machine": machine, "cpu": detect().describe(), "auto": asdict(plan),
                   "rows": [asdict(r) for r in rows]}
        write_bytes_atomic(json_path, json.dumps(payload, indent=1).encode())
    return format_cpu_table(machine, plan, rows)
