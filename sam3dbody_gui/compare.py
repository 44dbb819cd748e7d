"""`sam3dbody-gui compare`: what a faster configuration changes, against a reference (fp32).

Both run on the same weights and the same benchmark images; per image we report the backbone
feature difference (relative L2, ‖cand − ref‖ / ‖ref‖) and the mesh vertex deviation in
millimetres (mean and max over the 18,439 vertices, camera frame), like the seed's fidelity table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bench import Bench, machine_description
from .pipeline.benchmark_images import benchmark_images

FIDELITY_GOAL_MEAN_MM, FIDELITY_GOAL_MAX_MM = 5.0, 30.0


@dataclass
class FidelityRow:
    image: str
    feature_rel_diff_pct: float
    vertex_mean_mm: float
    vertex_max_mm: float


def compare_rows(bench: Bench, reference: str, candidate: str) -> list[FidelityRow]:
    ref, cand = bench.pipeline(reference), bench.pipeline(candidate)
    rows = []
    for item in benchmark_images():
        r = ref.run(item.image, item.box)
        c = cand.run(item.image, item.box)
        feature_diff = np.linalg.norm(c.features - r.features) / max(np.linalg.norm(r.features), 1e-12)
        deviation_mm = np.linalg.norm(c.vertices_camera - r.vertices_camera, axis=1) * 1000.0
        rows.append(FidelityRow(item.name, 100.0 * float(feature_diff), float(deviation_mm.mean()),
                                float(deviation_mm.max())))
    return rows


def format_fidelity(reference: str, candidate: str, rows: list[FidelityRow], machine: dict) -> str:
    lines = [f"fidelity of {candidate} against {reference} on {machine.get('gpu', machine['cpu'])} "
             f"(same weights, {len(rows)} images)",
             f"{'image':34s} {'feature diff %':>15s} {'mesh mean mm':>13s} {'mesh max mm':>12s}"]
    for r in rows:
        lines.append(f"{r.image:34s} {r.feature_rel_diff_pct:15.3f} {r.vertex_mean_mm:13.2f} {r.vertex_max_mm:12.2f}")
    mean_mm = float(np.mean([r.vertex_mean_mm for r in rows]))
    max_mm = float(np.max([r.vertex_max_mm for r in rows]))
    verdict = "meets" if mean_mm <= FIDELITY_GOAL_MEAN_MM and max_mm <= FIDELITY_GOAL_MAX_MM else "MISSES"
    lines.append(f"{'all images':34s} {np.mean([r.feature_rel_diff_pct for r in rows]):15.3f} {mean_mm:13.2f} "
                 f"{max_mm:12.2f}")
    lines.append(f"{verdict} the goal: mean ≤ {FIDELITY_GOAL_MEAN_MM:g} mm, max ≤ {FIDELITY_GOAL_MAX_MM:g} mm")
    return "\n".join(lines)


def run_compare(model_dir: Path, device: torch.device, reference: str, candidate: str, json_path: Path | None,
                progress: Callable[[str], None] = print, max_autotune: bool = False,
                backbone_file: Path | None = None) -> str:
    """`backbone_file`: the ONNX (tensorrt) or .pt2 (pt2) a candidate of that kind runs."""
    bench = Bench(model_dir, device, progress, max_autotune=max_autotune, backbone_file=backbone_file)
    rows = compare_rows(bench, reference, candidate)
    machine = machine_description(device)
    if json_path is not None:
        from .atomic_file import write_bytes_atomic

        payload = {"machine": machine, "reference": reference, "candidate": candidate, "rows": [asdict(r) for r in rows]}
        write_bytes_atomic(json_path, json.dumps(payload, indent=1).encode())
    return format_fidelity(reference, candidate, rows, machine)
