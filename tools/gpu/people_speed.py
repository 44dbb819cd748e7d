"""Several people per photo on the GPU, in one process (one model load, one set of compiles):

    python tools/gpu/people_speed.py --model /tmp/full [--steps people,before,breakdown,...]

steps (in this order, each optional; results also under $OUT):
  people      `bench --people 1,2,4,8,16`'s own table (bench_people.people_rows), detector excl./incl.
  before      the same photos with last session's paths swapped back in: crops one by one, and/or
              the batched decoder only captured (not compiled)
  breakdown   one photo of N people, stage by stage with syncs (crop, camera, backbone, decoder,
              host copy of the outputs, host copy of the feature maps)
  decoder     batched decoder: bucket replay times, the MHR rig's share (the rig alone, captured),
              a torch.profiler table of one compiled pass at batch 16
  backbone    bucket replay times per crop, a torch.profiler breakdown at batch 16 (GEMM,
              attention, fused element-wise, other), SDPA backends at the backbone's shape
  video       `video` on a 1080p clip with 1 and 4 boxes (the CLI, handed this pipeline)
  batch       the local batch engine over generated 1080p photos with 1-4 people each (the
              people count is written into each photo; the real detector still runs on every
              photo for its cost), persons/s end to end, and where each thread's time went
The pipeline is the fast path: compiled fp8 backbone + compiled bf16 decoder (+ batched crop).
"""

from __future__ import annotations

import argparse
import contextlib
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(os.environ.get("OUT") or tempfile.mkdtemp())
LOG = open(OUT / "people_speed.log", "a", buffering=1)
T0 = time.perf_counter()
RESULTS: dict = {}
SPEC = os.environ.get("PEOPLE_SPEC", "compiled:fp8+dec-compiled+dec-bf16")  # pytorch:fp32 for a CPU dry run
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def say(*parts) -> None:
    line = f"[{time.perf_counter() - T0:6.0f}s] " + " ".join(str(p) for p in parts)
    print(line, flush=True)
    LOG.write(line + "\n")


def save() -> None:
    (OUT / "people_speed.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def gpu_ms(fn, iters: int = 20, warmup: int = 3) -> float:
    from gpu_log import timed_ms

    return timed_ms(fn, torch.device("cuda"), iters, warmup)


# ---------------------------------------------------------------------------------------------
def step_people(bench, counts):
    from sam3dbody_gui.bench_people import format_people_table, people_rows

    rows = people_rows(bench, SPEC, counts)
    text = format_people_table(rows)
    say(text)
    RESULTS["people"] = [r.__dict__ for r in rows]
    return rows


def step_before(bench, counts):
    """Last session's paths, swapped into the same pipeline."""
    from sam3dbody_gui.bench_people import format_people_table, people_rows
    from sam3dbody_gui.runtime.decoders.decoder_buckets import BucketedBodyDecoder

    pipe = bench.pipeline(SPEC)
    new_decoder = pipe.batch_decoder
    say("capturing last session's batched decoder (eager pass captured per bucket)")
    old_decoder = BucketedBodyDecoder(pipe.model, pipe.config.crop_size, pipe.device)
    old_decoder.prepare()

    def one_by_one(image, geom, mirrored=False):
        geoms = list(geom) if isinstance(geom, (list, tuple)) else [geom]
        flips = [bool(mirrored)] * len(geoms) if isinstance(mirrored, bool) else list(mirrored)
        return torch.cat([pipe.cropper.crops(image, [g], [m]) for g, m in zip(geoms, flips)])

    out = {}
    for label, crop, decoder in (("crops one by one + captured decoder (last session)", one_by_one, old_decoder),
                                 ("batched crop + captured decoder", None, old_decoder),
                                 ("batched crop + compiled decoder (now)", None, new_decoder)):
        pipe.batch_decoder = decoder
        if crop is not None:
            pipe._crop = crop
        try:
            rows = people_rows(bench, SPEC, counts, detector=None)
        finally:
            pipe.__dict__.pop("_crop", None)
            pipe.batch_decoder = new_decoder
        say(f"== {label}")
        say(format_people_table(rows))
        out[label] = [r.__dict__ for r in rows]
    RESULTS["before"] = out
    del old_decoder


def step_breakdown(bench, counts):
    from sam3dbody_gui.bench_people import crowd_boxes
    from sam3dbody_gui.model.crop_camera import CropCamera
    from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
    from sam3dbody_gui.pipeline.pipeline import HOST_KEYS
    from sam3dbody_gui.pipeline.preprocess import crop_geometry, default_intrinsics

    pipe = bench.pipeline(SPEC)
    item = benchmark_images()[0]
    table = {}
    for n in counts:
        boxes = crowd_boxes(item.image.shape[:2], item.box, n)
        stages = {k: [] for k in ("geometry+camera", "crop", "backbone", "decoder", "host: outputs",
                                  "host: feature maps", "total")}
        with torch.inference_mode():
            for r in range(12):
                sync()
                t0 = time.perf_counter()
                hw = item.image.shape[:2]
                geoms = [crop_geometry(b, hw, crop_size=pipe.config.crop_size) for b in boxes]
                k = default_intrinsics(hw)
                cam = CropCamera(box_center=torch.from_numpy(np.stack([g.center for g in geoms])),
                                 box_size=torch.tensor([float(g.scale[0]) for g in geoms]),
                                 affine=torch.from_numpy(np.stack([g.affine for g in geoms])),
                                 intrinsics=torch.from_numpy(np.stack([k] * n)), crop_size=512).to(pipe.device)
                sync()
                t1 = time.perf_counter()
                crops = pipe._crop(item.image, geoms)
                sync()
                t2 = time.perf_counter()
                feats = pipe._backbone(crops)
                sync()
                t3 = time.perf_counter()
                out = pipe._decode(feats, cam)
                sync()
                t4 = time.perf_counter()
                pipe._to_host([out[key] for key in HOST_KEYS])
                t5 = time.perf_counter()
                pipe._to_host([feats])
                t6 = time.perf_counter()
                if r >= 2:
                    for key, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0)):
                        stages[key].append(v * 1e3)
        med = {k: statistics.median(v) for k, v in stages.items()}
        table[n] = med
        say(f"breakdown {n:2d} people: " + "  ".join(f"{k} {v:.2f}" for k, v in med.items())
            + f"  → {1000 * n / med['total']:.0f} persons/s")
    RESULTS["breakdown"] = table


def step_decoder(bench):
    from sam3dbody_gui.runtime.cuda_graph import capture
    from sam3dbody_gui.runtime.decoders.decoder_graph import plausible_camera

    pipe = bench.pipeline(SPEC)
    model = pipe.model
    dec = pipe.batch_decoder
    res = {"label": getattr(dec, "label", type(dec).__name__)}
    side = 32
    for size in (1, 2, 4, 8, 16):
        feats = torch.randn(size, model.feature_dim, side, side, device="cuda", dtype=model.decoder_dtype)
        cam = plausible_camera(512, torch.device("cuda")).rows([0] * size)
        with torch.inference_mode():
            if size == 1:
                ms = gpu_ms(lambda: pipe.decoder(feats, cam))
            else:
                graph = dec._graphs[size]
                ms = gpu_ms(lambda: graph(feats, cam))
        res[f"pass_ms_{size}"] = ms
        say(f"decoder pass, batch {size:2d}: {ms:.2f} ms ({ms / size:.2f} ms/person) [{res['label'] if size > 1 else pipe.decoder_label}]")
    # The rig alone, captured, at each batch size: a body pass calls it 6 times.
    for size in (1, 16):
        shape = torch.randn(size, 45, device="cuda") * 0.5
        params = torch.randn(size, 204, device="cuda") * 0.1
        face = torch.zeros(size, 72, device="cuda")
        graph, _ = capture(lambda: model.mhr(shape, params, face), torch.device("cuda"))
        ms = gpu_ms(graph.replay)
        res[f"rig_ms_{size}"] = ms
        say(f"MHR rig alone, batch {size:2d}: {ms:.3f} ms a call, x6 a pass = {6 * ms:.2f} ms")
    # Profile of one compiled pass at 16 (not replayed: the kernels one by one).
    if hasattr(dec, "compiled"):
        from torch.profiler import ProfilerActivity, profile

        b = dec._graphs[16]
        with torch.inference_mode():
            dec.compiled(b.features, b.camera)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                dec.compiled(b.features, b.camera)
                torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70)
        (OUT / "decoder_profile.txt").write_text(table)
        say("decoder profile (batch 16, compiled, not replayed):\n" + table)
        res["profile_categories"] = _categories(prof)
        say("decoder kernel time by kind (ms): " + json.dumps(res["profile_categories"]))
    RESULTS["decoder"] = res
    save()


def _categories(prof) -> dict:
    cats = {"gemm": 0.0, "attention": 0.0, "triton fused": 0.0, "other": 0.0, "kernels": 0}
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            continue
        name = evt.name.lower()
        t = getattr(evt, "self_device_time_total", None)
        if t is None:
            t = evt.self_cuda_time_total
        t /= 1e3
        if any(s in name for s in ("gemm", "xmma", "cutlass", "nvjet", "sm90", "gemv", "matmul", "splitk")):
            cats["gemm"] += t
        elif any(s in name for s in ("flash", "fmha", "attention", "cudnn", "sdpa", "attn")):
            cats["attention"] += t
        elif name.startswith("triton"):
            cats["triton fused"] += t
        else:
            cats["other"] += t
        cats["kernels"] += 1
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in cats.items()}


def step_backbone(bench):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    pipe = bench.pipeline(SPEC)
    bb = pipe.backbone
    res = {}
    crop = torch.randn(1, 3, 512, 512, device="cuda")
    with torch.inference_mode():
        res["ms_1"] = gpu_ms(lambda: bb(crop), 30)
        for size in bb.buckets:
            crops = torch.randn(size, 3, 512, 512, device="cuda")
            res[f"ms_{size}"] = gpu_ms(lambda: bb(crops), 20)
    for key, ms in res.items():
        size = int(key.split("_")[1])
        say(f"backbone batch {size:2d}: {ms:.2f} ms ({ms / size:.2f} ms/crop, {1000 * size / ms:.0f} crops/s)")
    graph, static, _ = bb._bucket_graphs[16]
    with torch.inference_mode():
        bb.batch_compiled(static)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                bb.batch_compiled(static)
            torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90)
    (OUT / "backbone_profile.txt").write_text(table)
    cats = {k: (v / 3 if isinstance(v, float) else v // 3) for k, v in _categories(prof).items()}
    res["profile_categories_per_call_ms"] = cats
    say("backbone profile, batch 16, one call (kernels one by one, not replayed):\n" + table)
    say("backbone kernel time by kind, one batch-16 call (ms): " + json.dumps(cats))
    # SDPA backends at the backbone's attention shape.
    sdpa = {}
    for batch in (1, 16):
        q, k, v = (torch.randn(batch, 20, 1029, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * batch * 20 * 1029 * 1029 * 64
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]), torch.inference_mode():
                    ms = gpu_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), 30)
                sdpa[f"{name}_{batch}"] = ms
                say(f"SDPA {name:9s} batch {batch:2d}: {ms:.3f} ms a layer, {flops / ms / 1e9:.0f} TFLOP/s, "
                    f"x32 layers = {32 * ms:.2f} ms")
            except Exception as exc:  # noqa: BLE001
                say(f"SDPA {name} batch {batch}: unavailable ({type(exc).__name__}: {str(exc)[:120]})")
    res["sdpa"] = sdpa
    RESULTS["backbone"] = res
    save()


def step_variants(bench, deadline: float):
    """The batch-16 backbone compiled again at a static batch of 16 (vs the dynamic-batch compile
    the buckets replay), with the SDPA backend the microbenchmark found fastest, and default."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from sam3dbody_gui.runtime.cuda_graph import capture

    pipe = bench.pipeline(SPEC)
    bb = pipe.backbone
    sdpa = RESULTS.get("backbone", {}).get("sdpa", {})
    order = []
    if sdpa.get("cudnn_16", 1e9) < 0.95 * sdpa.get("flash_16", 0):
        order.append(("static 16, cudnn attention", [SDPBackend.CUDNN_ATTENTION]))
    order.append(("static 16, default attention", None))
    res = {"dynamic buckets, default attention": RESULTS.get("backbone", {}).get("ms_16")}
    for label, backends in order:
        if time.perf_counter() - T0 > deadline - 90:
            say(f"variant {label}: skipped (deadline)")
            continue
        t = time.perf_counter()
        ctx = sdpa_kernel(backends) if backends else contextlib.nullcontext()
        compiled = torch.compile(bb.encoder, fullgraph=True, dynamic=False)
        static = torch.randn(16, 3, 512, 512, device="cuda", dtype=bb.dtype)
        with ctx, torch.inference_mode():
            compiled(static)
            torch.cuda.synchronize()
            graph, _ = capture(lambda: compiled(static), torch.device("cuda"))
        ms = gpu_ms(graph.replay, 20)
        res[label] = ms
        say(f"variant {label}: {ms:.2f} ms at 16 ({ms / 16:.2f} ms/crop; compile {time.perf_counter() - t:.0f} s)")
        del graph
    RESULTS["variants"] = res
    save()


# ---------------------------------------------------------------------------------------------
def _patched_pipeline(pipe):
    import sam3dbody_gui.batch.local_engine as local_engine
    import sam3dbody_gui.pipeline.build as pipeline_module

    pipeline_module.build_pipeline = lambda *a, **k: pipe
    local_engine.load_pipeline = lambda settings, log: pipe


def step_video(bench, model_dir: Path):
    import av

    from sam3dbody_gui.cli import main

    pipe = bench.pipeline(SPEC)
    _patched_pipeline(pipe)
    clip = Path("/tmp/clip1080.mp4")
    if not clip.exists():
        with av.open(str(clip), "w") as c:
            s = c.add_stream("libx264", rate=30)
            s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
            rng = np.random.default_rng(0)
            for _ in range(90):
                f = (rng.random((1080, 1920, 3)) * 60 + 80).astype(np.uint8)
                for p in c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))) or []:
                    pass
            for p in s.encode():
                c.mux(p)
    res = {}
    for people in (1, 4):
        boxes = []
        for k in range(people):
            x = k * 450 + 60
            boxes += ["--bbox", str(x), "100", str(x + 380), "1000"]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["video", str(clip), "--model", str(model_dir), "--device", "cuda", "--backend", "compiled",
                         *boxes, "--json", f"/tmp/f{people}.jsonl", "--fresh"])
        lines = [l for l in buf.getvalue().splitlines() if "speed" in l or "frames:" in l or "error" in l]
        res[people] = lines[-3:]
        say(f"video, {people} people (exit {code}): " + " | ".join(lines[-2:]))
    RESULTS["video"] = res
    save()


class _CountedDetector:
    """The real detector runs on every photo (its cost), the people are the ones written into the
    photo (1-4, in its top-left block): random weights find no real people."""

    def __init__(self, real):
        self.real = real

    def detect(self, image, min_score=0.5, max_people=None, **kw):
        if self.real is not None:
            self.real.detect(image, min_score=min_score, max_people=max_people)
        return self._written(image, min_score, max_people)

    def detect_many(self, images, min_score=0.5, max_people=None):
        """As the engine's batched detection: the real network once for all the photos."""
        from sam3dbody_gui.batch.photo_work import detect_many

        if self.real is not None:
            detect_many(self.real, images, min_score, max_people)
        return [self._written(image, min_score, max_people) for image in images]

    @staticmethod
    def _written(image, min_score, max_people):
        from sam3dbody_gui.model.detector_postprocess import Detections, PersonBox

        count = people_in(image)
        boxes = [PersonBox(box, 0.9) for box in PEOPLE_BOXES[:count]]
        return Detections(boxes, count, False, min_score, max_people)


PEOPLE_BOXES = [(60.0 + 450 * k, 100.0, 440.0 + 450 * k, 1000.0) for k in range(4)]


def people_in(image) -> int:
    level = float(image[8:24, 8:24].mean())
    return int(np.clip(round((level - 40) / 60), 0, 3)) + 1


def make_photos(folder: Path, count: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from sam3dbody_gui.bundled import sample_image_path
    from sam3dbody_gui.pipeline.image_io import load_image

    folder.mkdir(parents=True, exist_ok=True)
    base = np.asarray(Image.fromarray(load_image(sample_image_path())).resize((1920, 1080)), dtype=np.int16)

    def one(i):
        rng = np.random.default_rng(i)
        img = base + rng.integers(-12, 12, size=(1, 1, 3))
        img = np.roll(img, int(rng.integers(0, 400)), axis=1)
        img = np.clip(img, 0, 255).astype(np.uint8)
        img[:32, :32] = 40 + 60 * (i % 4)  # the photo's people count - 1
        Image.fromarray(img).save(folder / f"p{i:04d}.jpg", quality=90)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def step_batch(bench, model_dir: Path, photos: int, writers_list, formats_list):
    import sam3dbody_gui.batch.local_engine as local_engine
    import sam3dbody_gui.batch.photo_work as photo_work
    from sam3dbody_gui.batch.inputs import expand_inputs
    from sam3dbody_gui.batch.settings import BatchSettings
    from sam3dbody_gui.hub_detector import find_installed_detector
    from sam3dbody_gui.model.detector import load_detector

    pipe = bench.pipeline(SPEC)
    _patched_pipeline(pipe)
    folder = Path("/tmp/batch_photos")
    t = time.perf_counter()
    make_photos(folder, photos)
    say(f"made {photos} 1080p photos in {time.perf_counter() - t:.1f} s")
    det_dir = find_installed_detector()
    real = load_detector(det_dir, device=DEVICE) if det_dir is not None else None
    detector = _CountedDetector(real)
    from gpu_log import BusyClock, time_queue_waits

    clock = BusyClock()
    busy, timed = clock.busy, clock.timed

    originals = {n: getattr(photo_work, n) for n in ("read", "find_people_many", "infer_many")}  # write: pickled
    orig_put_w = local_engine._Run._put_for_writer
    orig_get = time_queue_waits(clock)
    local_engine._Run._put_for_writer = lambda self, item, writer: timed("main waits for the writer", orig_put_w)(
        self, item, writer)
    for n, fn in originals.items():  # infer_many yields: time the whole of it
        setattr(photo_work, n, timed(n, (lambda f: lambda *a, **k: list(f(*a, **k)))(fn) if n == "infer_many" else fn))
    res = {}
    try:
        runs = []
        for entry in formats_list:  # "glb" (every --writers count) or "obj@8/16"
            formats, _, counts = entry.partition("@")
            runs += [(formats, w) for w in ([int(c) for c in counts.split("/")] if counts else writers_list)]
        for formats, writers in runs:
            if True:
                busy.clear()
                out = Path(tempfile.mkdtemp(prefix="batch_out_"))
                settings = BatchSettings(model_dir=model_dir, formats=tuple(formats.split(",")), people="detect",
                                         detector_dir=det_dir, max_people=4, min_score=0.0, device=DEVICE.type,
                                         backend=SPEC.split(":")[0]).checked()
                sources = expand_inputs([str(folder)], out)
                t0 = time.perf_counter()
                local_engine.run_local(sources, settings, out, pipeline=pipe, detector=detector,
                                               writers=writers, log=lambda m: None, progress_out=io.StringIO(),
                                               bar=False)
                wall = time.perf_counter() - t0
                lines = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
                persons = sum(1 for l in lines if l["status"] == "ok")
                key = f"{formats} writers={writers}"
                res[key] = {"photos": len(sources), "persons": persons, "wall_s": wall,
                            "persons_per_s": persons / wall, "photos_per_s": len(sources) / wall,
                            "busy_s": {k: round(v, 2) for k, v in busy.items()},
                            "statuses": sorted({l["status"] for l in lines})}
                say(f"batch {key}: {len(sources)} photos, {persons} persons in {wall:.1f} s → "
                    f"{persons / wall:.0f} persons/s ({len(sources) / wall:.0f} photos/s); busy s: "
                    + json.dumps(res[key]["busy_s"]))
                save()
    finally:
        for n, fn in originals.items():
            setattr(photo_work, n, fn)
        local_engine._Run._get, local_engine._Run._put_for_writer = orig_get, orig_put_w
    RESULTS["batch"] = res
    save()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("/tmp/full"))
    ap.add_argument("--steps", default="people,breakdown,decoder,backbone,before,batch,video,variants")
    ap.add_argument("--counts", default="1,2,4,8,16")
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--writers", default="4,8")
    ap.add_argument("--formats", default="glb")
    ap.add_argument("--deadline", type=float, default=560, help="seconds: skip steps that would start later")
    args = ap.parse_args()
    from sam3dbody_gui.bench import Bench

    counts = [int(c) for c in args.counts.split(",")]
    say(f"torch {torch.__version__}, {torch.cuda.get_device_name() if DEVICE.type == 'cuda' else 'CPU'}")
    bench = Bench(args.model, DEVICE, progress=say)
    bench.pipeline(SPEC)
    say(f"pipeline ready: backbone {bench.pipeline(SPEC).backbone.info.label()}, decoder "
        f"{bench.pipeline(SPEC).decoder_label}, batched {getattr(bench.pipeline(SPEC).batch_decoder, 'label', None)}, "
        f"crop {getattr(bench.pipeline(SPEC).cropper, 'status', None)}; peak GPU memory "
        f"{torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == 'cuda' else 0:.1f} GiB")
    if DEVICE.type == "cuda":
        RESULTS["peak_gib_after_load"] = torch.cuda.max_memory_allocated() / 2**30
    steps = {
        "people": lambda: step_people(bench, counts),
        "before": lambda: step_before(bench, counts),
        "breakdown": lambda: step_breakdown(bench, counts),
        "decoder": lambda: step_decoder(bench),
        "backbone": lambda: step_backbone(bench),
        "batch": lambda: step_batch(bench, args.model, args.photos, [int(w) for w in args.writers.split(",")],
                                    args.formats.split(";")),
        "video": lambda: step_video(bench, args.model),
        "variants": lambda: step_variants(bench, args.deadline),
    }
    for name in args.steps.split(","):
        if time.perf_counter() - T0 > args.deadline:
            say(f"skipped {name}: past the deadline")
            continue
        try:
            steps[name]()
        except Exception as exc:  # noqa: BLE001 - the other steps still run
            import traceback

            say(f"step {name} failed: {type(exc).__name__}: {exc}")
            LOG.write(traceback.format_exc())
        save()
    say("done")


if __name__ == "__main__":
    main()
