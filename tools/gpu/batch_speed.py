"""Batch throughput end to end (issue 14): the fast detector path, the local (or Ray) engine.

    python3 tools/gpu/batch_speed.py                       # H200: full-size synthetic model + detector
    python3 tools/gpu/batch_speed.py --engine ray          # the same photos through the Ray engine
    python3 tools/gpu/batch_speed.py --device cpu --size tiny --photos 12   # a dry run of the logic

Steps (each guarded: one failing still prints the others), then one table:
  assets     full-size synthetic model (/tmp/bs_model_<size>) and detector (/tmp/bs_detector_<size>)
  photos     N 1080p photos with 1-4 people each (tools/gpu/people_speed.make_photos: the count is
             painted in a corner; random weights find nobody, so the engine's detector runs for its
             cost and the painted count decides the people, as in people_speed's batch step)
  detector   ms per call of 8 photos and per photo: old path (PIL + eager fp32 + host selection,
             photo_work.detect_many) vs new (runtime/detector_fast.py, as the engine loads it); the
             new path's fidelity vs the old on 16 photos (same batches): people found, box and
             score differences
  mesh       ms to make one GLB of the model's mesh on this host (the writers' cost per person)
  batch      the engine on the photos: persons/s, photos/s, busy seconds per stage
Log: $OUT/batch_speed.log (and batch_speed.json) when $OUT is set.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "gpu"))

from gpu_log import BusyClock, ScriptLog, attempt, time_queue_waits  # noqa: E402

LOG = ScriptLog("batch_speed", decimals=1)
OUT, say = LOG.out, LOG.say
RESULTS: dict = {}


def step(name: str):
    """A step whose failure is logged (gpu_log.attempt) and recorded; it then returns None."""
    def wrap(fn):
        def run(*a, **k):
            got = {}
            failed = attempt(LOG, name, lambda: got.setdefault("value", fn(*a, **k)))
            if failed:
                RESULTS.setdefault("failed", {})[name] = failed
            return got.get("value")
        return run
    return wrap


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
@step("assets")
def make_assets(size: str):
    from sam3dbody_gui.synthetic.detector import make_synthetic_detector
    from sam3dbody_gui.synthetic.make import make_synthetic_model

    model, det = Path(f"/tmp/bs_model_{size}"), Path(f"/tmp/bs_detector_{size}")
    t = time.perf_counter()
    if not (model / "SYNTHETIC.txt").exists() and not any(model.glob("*.ckpt")):
        if model.exists():
            import shutil

            shutil.rmtree(model)
        make_synthetic_model(model, size=size, exports=())
    if not (det / "model.safetensors").exists():
        make_synthetic_detector(det, size)
    say(f"assets ready in {time.perf_counter() - t:.0f} s: {model}, {det}")
    return model, det


@step("photos")
def make_photo_set(count: int) -> Path:
    people_speed = importlib.import_module("people_speed")
    folder = Path(f"/tmp/bs_photos_{count}")
    if not folder.exists() or len(list(folder.glob("*.jpg"))) != count:
        t = time.perf_counter()
        people_speed.make_photos(folder, count)
        say(f"made {count} 1080p photos in {time.perf_counter() - t:.1f} s")
    return folder


def load_photos(folder: Path, n: int) -> list:
    from sam3dbody_gui.pipeline.image_io import load_image

    return [load_image(p) for p in sorted(folder.glob("*.jpg"))[:n]]


@step("detector")
def time_detectors(det_dir: Path, device, photos: list) -> dict:
    from sam3dbody_gui.batch.photo_work import detect_many
    from sam3dbody_gui.model.detector import load_detector
    from sam3dbody_gui.runtime.detector_check import compare_detections, plain_batch
    from sam3dbody_gui.runtime.detector_fast import load_batch_detector

    plain = load_detector(det_dir, device=device)
    t = time.perf_counter()
    said = []
    fast = load_batch_detector(det_dir, device, log=said.append)
    if device.type == "cpu":  # the CPU default is the plain one: time the fast class's logic anyway
        from sam3dbody_gui.runtime.detector_fast import fast_detector

        fast = fast_detector(plain, said.append, precisions=("fp32",))
    load_s = time.perf_counter() - t
    for line in said:
        say(line)
    res = {"fast_load_s": load_s, "fast_label": getattr(fast, "label", "plain (fell back)"), "message": said}
    batch = photos[:8]
    rounds = 10 if device.type == "cuda" else 2

    def wall_ms(fn) -> float:
        """Median ms of `fn` with the host's whole cost (syncs around each call), after one warm call."""
        fn()
        times = []
        for _ in range(rounds):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)

    timed_fast = fast
    if fast is plain and device.type == "cuda":  # fell back: still time what the fast path would give
        from sam3dbody_gui.runtime.detector_fast import FastDetector

        timed_fast = FastDetector(plain, "fp32")
        res["fast_label"] = f"plain (fell back); timed: {timed_fast.label} (forced, unchecked)"
    for name, fn in (("old", lambda: detect_many(plain, batch, 0.0, 4)),
                     ("new", lambda: detect_many(timed_fast, batch, 0.0, 4))):
        res[f"{name}_ms_per_call_8"] = ms = wall_ms(fn)
        res[f"{name}_ms_per_photo"] = ms / len(batch)
        say(f"detector {name}: {ms:.1f} ms a call of {len(batch)} photos ({ms / len(batch):.2f} ms a photo)")
    one = photos[0]
    for name, fn in (("old", lambda: plain.detect(one, 0.0, 4)), ("new", lambda: timed_fast.detect(one, 0.0, 4))):
        res[f"{name}_ms_per_call_1"] = wall_ms(fn)
    # Fidelity on 16 photos, the same batches of 8 on both sides, no cap.
    same, worst_px, worst_score, checked = 0, 0.0, 0.0, 0
    for start in (0, 8):
        group = photos[start:start + 8]
        if len(group) < 1:
            continue
        want = plain_batch(plain, group, 0.5, None)
        got = detect_many(timed_fast, group, 0.5, None)
        for p, w, g in zip(group, want, got):
            checked += 1
            same += compare_detections(w, g, p.shape[:2]) is None
            n = min(len(w.people), len(g.people))
            if n:
                a = np.array([x.box_xyxy for x in w.people[:n]])
                b = np.array([x.box_xyxy for x in g.people[:n]])
                worst_px = max(worst_px, float(np.abs(a - b).max()))
                worst_score = max(worst_score, max(abs(x.score - y.score) for x, y in zip(w.people, g.people)))
    res.update(fidelity_same=f"{same}/{checked}", fidelity_box_px_max=worst_px, fidelity_score_max=worst_score)
    say(f"fidelity new vs old: same people on {same}/{checked} photos; by rank, box max {worst_px:.3f} px, "
        f"score max {worst_score:.4f}")
    RESULTS["detector"] = res
    return fast


@step("mesh")
def time_mesh(pipe) -> float:
    from sam3dbody_gui.export.mesh_file import mesh_bytes

    faces = np.asarray(pipe.faces, dtype=np.int32)
    verts = np.random.default_rng(0).random((int(faces.max()) + 1, 3)).astype(np.float32)
    mesh_bytes(verts, faces, "glb")
    t = time.perf_counter()
    for _ in range(10):
        mesh_bytes(verts, faces, "glb")
    ms = (time.perf_counter() - t) / 10 * 1e3
    RESULTS["glb_ms_per_person"] = ms
    say(f"GLB of {len(verts)} vertices: {ms:.1f} ms of a core a person")
    return ms


class CountedDetector:
    """The engine's real detector runs on every photo (its cost); the people are the painted count."""

    def __init__(self, real):
        self.real = real

    def detect(self, image, min_score=0.5, max_people=None, **kw):
        return self.detect_many([image], min_score, max_people)[0]

    def detect_many(self, images, min_score=0.5, max_people=None):
        from sam3dbody_gui.batch.photo_work import detect_many

        detect_many(self.real, images, min_score, max_people)
        people_speed = importlib.import_module("people_speed")
        return [people_speed._CountedDetector._written(im, min_score, max_people) for im in images]


@step("batch")
def run_batch(engine: str, pipe, model_dir: Path, det_dir: Path, folder: Path, device, spec: str, fast,
              writers: int) -> dict:
    import sam3dbody_gui.batch.local_engine as local_engine
    import sam3dbody_gui.batch.photo_work as photo_work
    from sam3dbody_gui.batch.inputs import expand_inputs
    from sam3dbody_gui.batch.settings import BatchSettings

    out = Path(tempfile.mkdtemp(prefix="bs_out_"))
    settings = BatchSettings(model_dir=model_dir, formats=("glb",), people="detect", detector_dir=det_dir,
                             max_people=4, min_score=0.0, device=device.type, backend=spec.split(":")[0],
                             precision=spec.split(":")[1].split("+")[0] if ":" in spec else "auto").checked()
    sources = expand_inputs([str(folder)], out)
    clock = BusyClock()
    busy, timed = clock.busy, clock.timed

    originals = {n: getattr(photo_work, n) for n in ("read", "find_people_many", "infer_many")}
    orig_get, orig_record = local_engine._Run._get, local_engine._Run._record
    t0 = time.perf_counter()
    if engine == "ray":
        from sam3dbody_gui.batch.ray_engine import run_ray

        # The actors load their own model and detector (the synthetic detector's own people: 4 a photo).
        run_ray(sources, settings, out, log=say, progress_out=io.StringIO(), bar=False)
    else:
        photo_work.read = timed("reader (hash + decode)", originals["read"])
        photo_work.find_people_many = timed("detector (people thread)", originals["find_people_many"])
        photo_work.infer_many = timed("model (main thread)", originals["infer_many"], generator=True)
        time_queue_waits(clock)
        local_engine._Run._record = lambda self, job, lines: timed("writer thread (record)", orig_record)(
            self, job, lines)
        try:
            local_engine.run_local(sources, settings, out, pipeline=pipe, detector=CountedDetector(fast),
                                   writers=writers, log=say, progress_out=io.StringIO(), bar=False)
        finally:
            for n, fn in originals.items():
                setattr(photo_work, n, fn)
            local_engine._Run._get, local_engine._Run._record = orig_get, orig_record
    wall = time.perf_counter() - t0
    lines = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    persons = sum(1 for l in lines if l["status"] == "ok")
    res = {"engine": engine, "photos": len(sources), "persons": persons, "wall_s": wall,
           "persons_per_s": persons / wall, "photos_per_s": len(sources) / wall, "writers": writers,
           "busy_s": {k: round(v, 2) for k, v in busy.items()}, "statuses": sorted({l["status"] for l in lines})}
    say(f"batch ({engine}): {len(sources)} photos, {persons} persons in {wall:.1f} s -> {persons / wall:.0f} "
        f"persons/s ({len(sources) / wall:.0f} photos/s); busy s: {json.dumps(res['busy_s'])}")
    RESULTS["batch"] = res
    return res


def table() -> str:
    d, b = RESULTS.get("detector", {}), RESULTS.get("batch", {})
    rows = [("persons/s (end to end)", b.get("persons_per_s")), ("photos/s", b.get("photos_per_s")),
            ("photos / persons", f"{b.get('photos')} / {b.get('persons')}" if b else None),
            ("wall s", b.get("wall_s"))]
    rows += [(f"busy s: {k}", v) for k, v in b.get("busy_s", {}).items()]
    rows += [("detector old, ms a call of 8 / a photo", _pair(d, "old")),
             ("detector new, ms a call of 8 / a photo", _pair(d, "new")),
             ("detector old / new, ms a call of 1", f"{_f(d.get('old_ms_per_call_1'))} / {_f(d.get('new_ms_per_call_1'))}"),
             ("detector new: path", d.get("fast_label")), ("detector new: load + check s", d.get("fast_load_s")),
             ("fidelity: photos with the same people", d.get("fidelity_same")),
             ("fidelity: box max px / score max", f"{_f(d.get('fidelity_box_px_max'), 3)} / "
                                                   f"{_f(d.get('fidelity_score_max'), 4)}"),
             ("GLB ms a person (one core)", RESULTS.get("glb_ms_per_person")),
             ("failed steps", ", ".join(RESULTS.get("failed", {})) or "none")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {_f(v) if isinstance(v, float) else v}" for name, v in rows)


def _f(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pair(d: dict, name: str) -> str:
    return f"{_f(d.get(f'{name}_ms_per_call_8'))} / {_f(d.get(f'{name}_ms_per_photo'), 2)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="full", choices=("tiny", "full"))
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--engine", default="local", choices=("local", "ray"))
    ap.add_argument("--writers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--spec", default=None, help="bench config (default: compiled fp8 + compiled bf16 decoder "
                                                 "on a GPU, pytorch:fp32 on the CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    spec = args.spec or ("compiled:fp8+dec-compiled+dec-bf16" if device.type == "cuda" else "pytorch:fp32")
    say(f"torch {torch.__version__}, {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, "
        f"{os.cpu_count()} CPUs, engine {args.engine}, writers {args.writers}, spec {spec}")
    assets = make_assets(args.size)
    folder = make_photo_set(args.photos)
    pipe = fast = None
    if assets:
        model_dir, det_dir = assets
        photos = load_photos(folder, 16) if folder else []
        fast = time_detectors(det_dir, device, photos) if photos else None
        if fast is None:  # the step failed part way: the batch still runs, with what the engine would load
            from sam3dbody_gui.runtime.detector_fast import load_batch_detector

            fast = load_batch_detector(det_dir, device, log=say)

        @step("pipeline")
        def build():
            from sam3dbody_gui.bench import Bench

            t = time.perf_counter()
            bench = Bench(model_dir, device, progress=lambda m: None)
            p = bench.pipeline(spec)
            say(f"pipeline ready in {time.perf_counter() - t:.0f} s: backbone {p.backbone.info.label()}, "
                f"decoder {p.decoder_label}")
            return p

        pipe = build() if args.engine == "local" else None
        if pipe is not None:
            time_mesh(pipe)
        if folder and (pipe is not None or args.engine == "ray"):
            run_batch(args.engine, pipe, model_dir, det_dir, folder, device, spec, fast, args.writers)
    if OUT:
        (OUT / "batch_speed.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    say("table:\n" + table())


if __name__ == "__main__":
    main()
