"""The local and the Ray batch engines on the same GPU host, same photos, same settings:

    python3 tools/gpu/ray_batch.py --model /tmp/full --detector DIR [--photos 500] [--engines local,ray]

Each engine loads its own model (the Ray engine in its actor), so the figures are the run's own:
wall time, the time to the first finished photo (model load and compile, caches warm after the
first engine), and the steady rate from the first finished photo to the last. While each runs, a
sampler keeps every process's peak resident memory (the Ray actors by name). At the end: the
two manifests compared line by line (same people, numbers within 1e-3 — the GPU's batched
kernels differ in the last bits between batch compositions).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(os.environ.get("OUT") or tempfile.mkdtemp())
LOG = open(OUT / "ray_batch.log", "a", buffering=1)
T0 = time.perf_counter()


def say(*parts) -> None:
    line = f"[{time.perf_counter() - T0:6.0f}s] " + " ".join(str(p) for p in parts)
    print(line, flush=True)
    LOG.write(line + "\n")


class MemorySampler:
    """Peak RSS per process name (Ray names its workers `ray::<actor or task>`), every 0.5 s."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            import psutil
        except ImportError:  # the figures without the memory column
            return

        while not self._stop.wait(0.5):
            for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
                try:
                    cmd = " ".join(proc.info["cmdline"] or [])[:60] or proc.info["name"]
                    rss = proc.info["memory_info"].rss / 2**30
                except Exception:  # noqa: BLE001 - a process that ended while we looked
                    continue
                if rss > 0.2:
                    key = cmd.split(" ")[0] if cmd.startswith("ray::") else cmd
                    self.peaks[key] = max(self.peaks.get(key, 0.0), rss)


def timed_progress():
    """Patch Progress.update to keep (time, persons) of every finished input."""
    from sam3dbody_gui.batch import progress

    marks: list[tuple[float, int]] = []
    original = progress.Progress.update

    def update(self, kind, status, persons, skipped):
        marks.append((time.perf_counter(), int(persons)))
        return original(self, kind, status, persons, skipped)

    progress.Progress.update = update
    return marks, lambda: setattr(progress.Progress, "update", original)


def run_engine(engine: str, sources, settings, out: Path) -> dict:
    from sam3dbody_gui.batch.local_engine import run_local
    from sam3dbody_gui.batch.ray_engine import run_ray
    from sam3dbody_gui.cli.batch import default_writers

    marks, undo = timed_progress()
    t0 = time.perf_counter()
    try:
        with MemorySampler() as mem:
            if engine == "local":  # the CLI's defaults: 2 readers, a quarter of the cores writing
                run_local(sources, settings, out, readers=2, writers=default_writers(), log=say,
                          progress_out=io.StringIO(), bar=False)
            else:
                run_ray(sources, settings, out, log=say, progress_out=io.StringIO(), bar=False)
    finally:
        undo()
    wall = time.perf_counter() - t0
    persons = sum(p for _, p in marks)
    first_t, first_p = marks[0] if marks else (t0, 0)
    last_t = marks[-1][0] if marks else t0
    steady = (persons - first_p) / (last_t - first_t) if last_t > first_t else float("nan")
    top = sorted(mem.peaks.items(), key=lambda kv: -kv[1])[:6]
    res = {"engine": engine, "photos": len(marks), "persons": persons, "wall_s": wall,
           "first_s": first_t - t0, "steady_persons_s": steady, "overall_persons_s": persons / wall,
           "peak_rss_gib": {k: round(v, 2) for k, v in top}}
    say(f"{engine}: {json.dumps(res)}")
    return res


def compare(a: Path, b: Path) -> str:
    import numpy as np

    la = [json.loads(x) for x in (a / "manifest.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "manifest.jsonl").read_text().splitlines()]
    key = lambda r: (r["source"], r.get("frame"), r.get("person"))  # noqa: E731
    da, db = {key(r): r for r in la}, {key(r): r for r in lb}
    if da.keys() != db.keys():
        return f"DIFFERENT people: {len(da)} vs {len(db)} lines, {len(da.keys() ^ db.keys())} not in both"
    worst = {"box_xyxy": 0.0, "cam_t": 0.0, "params": 0.0}
    for k, x in da.items():
        y = db[k]
        if x["status"] != y["status"]:
            return f"DIFFERENT status at {k}: {x['status']} vs {y['status']}"
        if x["status"] != "ok":
            continue
        for name in ("box_xyxy", "cam_t"):
            worst[name] = max(worst[name], float(np.max(np.abs(np.subtract(x[name], y[name])))))
        for name in x["params"]:
            worst["params"] = max(worst["params"], float(np.max(np.abs(np.subtract(x["params"][name],
                                                                                   y["params"][name])))))
    return f"same {len(da)} lines; max abs differences " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--detector", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--formats", default="glb")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backend", default="compiled")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--clip-frames", type=int, default=0, help="also a 1080p clip of 2 walking figures")
    ap.add_argument("--photos-dir", type=Path, help="where the photos are made (kept; default: a new temp folder); "
                                                     "runs to be compared need the same one")
    ap.add_argument("--out-root", type=Path, help="each engine's OUTDIR under it (default: new temp folders)")
    ap.add_argument("--compare-with", type=Path, help="an earlier run's OUTDIR: its manifest against this one's")
    args = ap.parse_args()

    from people_speed import make_photos

    from sam3dbody_gui.batch.inputs import expand_inputs
    from sam3dbody_gui.batch.settings import BatchSettings

    folder = args.photos_dir or Path(tempfile.mkdtemp(prefix="ray_photos_"))
    t = time.perf_counter()
    if len(list(folder.glob("p*.jpg"))) != args.photos:  # the same photos as an earlier run's, else made
        make_photos(folder, args.photos)
    say(f"{args.photos} 1080p photos ready in {time.perf_counter() - t:.1f} s: {folder}")
    if args.clip_frames and not (folder / "clip.mp4").exists():
        from sam3dbody_gui.bench_video import make_bench_clip

        make_bench_clip(folder / "clip.mp4", people=2, frames=args.clip_frames)
        say(f"made a 1080p clip of {args.clip_frames} frames")
    settings = BatchSettings(model_dir=args.model, formats=tuple(args.formats.split(",")), people="detect",
                             detector_dir=args.detector, max_people=4, min_score=0.0, device=args.device,
                             backend=args.backend, precision=args.precision).checked()
    rows, outs = [], {}
    for engine in args.engines.split(","):
        out = (args.out_root / engine) if args.out_root else Path(tempfile.mkdtemp(prefix=f"batch_{engine}_"))
        try:
            rows.append(run_engine(engine, expand_inputs([str(folder)], out), settings, out))
            outs[engine] = out
        except Exception as exc:  # noqa: BLE001 - the other engine's figures still print
            import traceback

            say(f"{engine} FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}")
    print("\nengine   photos  persons   wall s  first s  steady persons/s  overall persons/s  peak RSS GiB (top)")
    for r in rows:
        print(f"{r['engine']:7s} {r['photos']:7d} {r['persons']:8d} {r['wall_s']:8.1f} {r['first_s']:8.1f} "
              f"{r['steady_persons_s']:17.1f} {r['overall_persons_s']:18.1f}  {r['peak_rss_gib']}")
    if len(outs) == 2:
        a, b = outs.values()
        say("manifests: " + compare(a, b))
    if args.compare_with is not None:
        for engine, out in outs.items():
            say(f"manifest of {engine} vs {args.compare_with}: " + compare(args.compare_with, out))
    (OUT / "ray_batch.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
