"""`bench --people 1,2,4,8,16`: photos of several people, end to end (ms per photo, persons/s).

The people are the benchmark photo's person box moved and scaled around the photo (deterministic),
all run as one batch (Pipeline.run_people)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from .pipeline.benchmark_images import benchmark_images

PEOPLE_ROUNDS_GPU, PEOPLE_ROUNDS_CPU = 20, 2


@dataclass
class PeopleRow:
    config: str
    people: int
    ms_per_photo: float
    persons_per_s: float
    p95_ms: float
    runs: int
    stages_median_ms: dict = None  # preprocess / backbone / decoder+MHR per photo


def crowd_boxes(image_hw: tuple[int, int], box, count: int) -> list[tuple[float, float, float, float]]:
    """`count` boxes: `box` shifted and scaled over the photo, kept inside it."""
    h, w = image_hw
    x1, y1, x2, y2 = box
    rng = np.random.default_rng(count)
    boxes = []
    for i in range(count):
        scale = 0.5 + 0.5 * rng.random()
        bw, bh = (x2 - x1) * scale, (y2 - y1) * scale
        cx = rng.uniform(bw / 2, max(bw / 2 + 1, w - bw / 2))
        cy = rng.uniform(bh / 2, max(bh / 2 + 1, h - bh / 2))
        boxes.append((float(cx - bw / 2), float(cy - bh / 2), float(cx + bw / 2), float(cy + bh / 2)))
    return boxes


def people_rows(bench, spec: str, counts: list[int], rounds: int | None = None) -> list[PeopleRow]:
    item = benchmark_images()[0]
    pipeline = bench.pipeline(spec)
    n_rounds = rounds or (PEOPLE_ROUNDS_GPU if bench.device.type == "cuda" else PEOPLE_ROUNDS_CPU)
    rows = []
    for count in counts:
        bench.progress(f"benchmarking {count} people per photo with {spec}")
        boxes = crowd_boxes(item.image.shape[:2], item.box, count)
        pipeline.run_people(item.image, boxes)  # warm-up: allocations, a first capture per batch size
        timings = [pipeline.run_people(item.image, boxes)[0].timings_ms for _ in range(n_rounds)]
        totals = [t["total"] for t in timings]
        ms = statistics.median(totals)
        stages = {k: statistics.median(t[k] for t in timings) for k in timings[0] if k != "total"}
        rows.append(PeopleRow(spec, count, ms, 1000.0 * count / ms, float(np.percentile(totals, 95)), len(totals),
                              stages))
    return rows


def format_people_table(rows: list[PeopleRow]) -> str:
    lines = [f"\nseveral people per photo, one batch ({rows[0].config}; detector not included; median of "
             f"{rows[0].runs} runs)", f"{'people':>6s} {'ms/photo':>9s} {'persons/s':>10s} {'p95 ms':>9s}   "
             + " ".join(f"{s:>12s}" for s in rows[0].stages_median_ms)]
    for r in rows:
        lines.append(f"{r.people:6d} {r.ms_per_photo:9.2f} {r.persons_per_s:10.1f} {r.p95_ms:9.2f}   "
                     + " ".join(f"{v:12.2f}" for v in r.stages_median_ms.values()))
    return "\n".join(lines)
