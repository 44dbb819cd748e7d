"""`bench --people 1,2,4,8,16`: photos of several people, end to end (ms per photo, persons/s).

The people are the benchmark photo's person box moved and scaled around the photo (deterministic),
all run as one batch (Pipeline.run_people). With a person detector installed (`download
--detector`, or a synthetic one in its folder), its time per photo (median, same photo) is
measured too and the table gives both figures: detector excluded and included (the detector
runs before the crops, so included = photo time + detector time)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional

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
    detector_ms: Optional[float] = None  # median per photo; None: no detector installed
    ms_with_detector: Optional[float] = None
    persons_per_s_with_detector: Optional[float] = None


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


def installed_detector(device):
    """The installed person detector on `device` (fp32, as the app and `infer --detect` run it), or None."""
    from .hub_detector import find_installed_detector

    folder = find_installed_detector()
    if folder is None:
        return None
    from .model.detector import load_detector

    return load_detector(folder, device=device)


def time_detector(detector, image: np.ndarray, rounds: int) -> float:
    """Median wall time of one `detect` on `image` (it returns host boxes: the GPU is done)."""
    import time

    for _ in range(3 if rounds > 2 else 1):
        detector.detect(image)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        detector.detect(image)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def people_rows(bench, spec: str, counts: list[int], rounds: int | None = None,
                detector="installed") -> list[PeopleRow]:
    """`detector`: a PersonDetector to time too, "installed" (the installed one, if any) or None."""
    item = benchmark_images()[0]
    pipeline = bench.pipeline(spec)
    n_rounds = rounds or (PEOPLE_ROUNDS_GPU if bench.device.type == "cuda" else PEOPLE_ROUNDS_CPU)
    if isinstance(detector, str):
        detector = None
        try:
            detector = installed_detector(bench.device)
        except Exception as exc:  # noqa: BLE001 - the table is still worth having without it
            bench.progress(f"person detector not timed: {type(exc).__name__}: {exc}")
    det_ms = None if detector is None else time_detector(detector, item.image, n_rounds)
    rows = []
    for count in counts:
        bench.progress(f"benchmarking {count} people per photo with {spec}")
        boxes = crowd_boxes(item.image.shape[:2], item.box, count)
        pipeline.run_people(item.image, boxes)  # warm-up: allocations, a first capture per batch size
        timings = [pipeline.run_people(item.image, boxes)[0].timings_ms for _ in range(n_rounds)]
        totals = [t["total"] for t in timings]
        ms = statistics.median(totals)
        stages = {k: statistics.median(t[k] for t in timings) for k in timings[0] if k != "total"}
        row = PeopleRow(spec, count, ms, 1000.0 * count / ms, float(np.percentile(totals, 95)), len(totals), stages)
        if det_ms is not None:
            row.detector_ms, row.ms_with_detector = det_ms, ms + det_ms
            row.persons_per_s_with_detector = 1000.0 * count / (ms + det_ms)
        rows.append(row)
    return rows


def format_people_table(rows: list[PeopleRow]) -> str:
    with_det = rows[0].detector_ms is not None
    det_note = (f"detector excluded, and included: +{rows[0].detector_ms:.2f} ms a photo" if with_det
                else "detector not included: none installed (download --detector)")
    head = f"{'people':>6s} {'ms/photo':>9s} {'persons/s':>10s} {'p95 ms':>9s}"
    if with_det:
        head += f" {'ms+det':>9s} {'pers/s+det':>10s}"
    lines = [f"\nseveral people per photo, one batch ({rows[0].config}; {det_note}; median of {rows[0].runs} runs)",
             head + "   " + " ".join(f"{s:>12s}" for s in rows[0].stages_median_ms)]
    for r in rows:
        line = f"{r.people:6d} {r.ms_per_photo:9.2f} {r.persons_per_s:10.1f} {r.p95_ms:9.2f}"
        if with_det:
            line += f" {r.ms_with_detector:9.2f} {r.persons_per_s_with_detector:10.1f}"
        lines.append(line + "   " + " ".join(f"{v:12.2f}" for v in r.stages_median_ms.values()))
    return "\n".join(lines)
