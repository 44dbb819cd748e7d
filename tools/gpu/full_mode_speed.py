"""Full mode (body + both hands) on the GPU, old path vs new (issue 15), in one process:

    python3 tools/gpu/full_mode_speed.py                      # on the GPU host, from the repo root
    python3 tools/gpu/full_mode_speed.py --device cpu --size tiny --runs 2   # a dry run of the logic

Makes its own synthetic model folder in /tmp (full size by default), then:
  1. the fast path's parts: compiled fp8 backbone (bf16 off Hopper/Ada), compiled bf16 body pass
     and GPU crop (gpu_stages), an fp32 eager reference (backbone and decoder);
  2. full mode's new passes made as at load (LazyHandDecoder.prepare(): hand decoder and body
     re-run compiled + captured), its time, then the first full-mode run right after it;
  3. the stage table (hand crops, hand backbone, hand decoder, body re-run, total; medians of
     CUDA-synced stage times over the benchmark images, as `bench --e2e`) for
       old       hand pass captured (not compiled), re-run eager — the path before issue 15
       captured  hand pass and re-run captured, not compiled
       new       hand pass and re-run compiled + captured (what build_pipeline gives)
     under upstream's hand checks and with every hand accepted (the synthetic weights' hands
     mostly fail the checks, which skips the re-run's decoder: the second rows run it);
  4. each path's mesh deviation from the fp32 eager full mode (mm; all vertices, the 42 hand
     keypoints), and whether the hand decisions agree.
Each step is guarded: one failing prints its error and the others still run. The log goes to
$OUT/full_mode_speed.log when $OUT is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_log import ScriptLog  # noqa: E402

LOG = ScriptLog("full_mode_speed", decimals=1)
say, T0 = LOG.say, LOG.t0
STAGES = ("hand crops", "hand backbone", "hand decoder", "body re-run", "total")
HAND_KEYPOINTS = slice(21, 63)  # MHR70: right hand 21-41, left hand 42-62 (wrists included)
CENTRED_HAND_CAMERA = (-0.4, 0.0, 0.0)  # puts each hand's wrist at its crop's centre (test_full_mode.py)


def step(name: str, results: dict):
    """Decorator-free guard: `with step(...)`-like call that records a failure and carries on."""
    class Guard:
        def __enter__(self):
            say(f"--- {name}")

        def __exit__(self, kind, exc, tb):
            if exc is not None:
                results.setdefault("errors", []).append(f"{name}: {kind.__name__}: {exc}")
                say(f"FAILED {name}: {kind.__name__}: {exc}")
                say("".join(traceback.format_exception(kind, exc, tb))[-3000:])
            return True  # swallow: the next step still runs
    return Guard()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--runs", type=int, default=5, help="rounds over the benchmark images (×4 images: ≥ 20 runs)")
    parser.add_argument("--model", type=Path, help="an existing model folder (default: a new synthetic one in /tmp)")
    args = parser.parse_args()
    device = torch.device(args.device)
    results: dict = {}
    # FULL_MODE_CACHE_DIR: compiled kernels an earlier run left (e.g. cold_start.py's background build)
    cache_dir = Path(os.environ.get("FULL_MODE_CACHE_DIR") or tempfile.mkdtemp(prefix="full-mode-cache-"))

    from sam3dbody_gui.bench import Bench
    from sam3dbody_gui.model.full_mode import HandChecks
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
    from sam3dbody_gui.pipeline.build import gpu_stages
    from sam3dbody_gui.pipeline.pipeline import Pipeline
    from sam3dbody_gui.runtime.decoders.hand_graph import LazyHandDecoder

    accept_all = HandChecks(wrist_angle=10.0, min_crop_side=0.0, keypoint_extent=1e9, wrist_distance=1e9)
    model_dir = args.model
    with step("synthetic model", results):
        if model_dir is None:
            from sam3dbody_gui.synthetic.make import make_synthetic_model

            model_dir = Path(tempfile.mkdtemp(prefix="full-mode-model-")) / args.size
            make_synthetic_model(model_dir, size=args.size, exports=())
        say("model", model_dir)

    cuda = device.type == "cuda"
    images = benchmark_images()
    pipes: dict[str, Pipeline] = {}
    with step("fast-path parts (backbone, body pass, crop) and the fp32 reference", results):
        t = time.perf_counter()
        bench = Bench(model_dir, device, progress=say, cache_dir=cache_dir)
        if cuda:
            from sam3dbody_gui.runtime.backbones.fp8 import fp8_supported

            backbone = bench.backend(f"compiled:{'fp8' if fp8_supported(device) else 'bf16'}")
            loaded = load_model_folder(model_dir, device=device, decoder_dtype=torch.bfloat16, with_backbone=False)
        else:  # the CPU dry run: the eager backbone, an fp32 decoder
            backbone, loaded = bench.backend("pytorch:fp32"), bench.loaded
        decoder, _, cropper = gpu_stages(loaded, device, cache_dir, graph=True, compiled=True, progress=say,
                                         fallback=False)
        pipes["fp32"] = bench.pipeline("pytorch:fp32")
        say(f"parts ready in {time.perf_counter() - t:.0f} s; backbone {backbone.info.label()}")

    def with_hands(hand_decoder) -> Pipeline:
        return Pipeline(loaded, backbone, decoder, hand_decoder, cropper)

    def lifted(compiled: bool) -> LazyHandDecoder:
        made = LazyHandDecoder(loaded.model, loaded.config.crop_size, device, graph=True, compiled=compiled,
                               cache_dir=cache_dir, progress=say)
        if not cuda:  # the dry run: the same plumbing without the capture (aot_eager for the compiler)
            made.needs_cuda, made.compile_backend, made.want_graph, made.compiled = False, "aot_eager", True, compiled
        return made

    with step("new path: made as at load, then the first full-mode run", results):
        new = lifted(compiled=True)
        t = time.perf_counter()
        new.prepare()
        results["prepare_s"] = time.perf_counter() - t
        say(f"prepare() {results['prepare_s']:.1f} s: hand pass {new.status}; re-run {new.refine_status}")
        pipes["new"] = with_hands(new)
        t = time.perf_counter()
        first = pipes["new"].run(images[0].image, images[0].box, mode="full")
        results["first_run_ms"] = (time.perf_counter() - t) * 1e3
        say(f"first full-mode run after load: {results['first_run_ms']:.1f} ms (its stages: "
            + ", ".join(f"{k} {first.timings_ms.get(k, float('nan')):.1f}" for k in STAGES) + ")")
    with step("captured path (hand pass and re-run captured, not compiled)", results):
        captured = lifted(compiled=False)
        captured.prepare()
        say(f"hand pass {captured.status}; re-run {captured.refine_status}")
        pipes["captured"] = with_hands(captured)
    with step("old path (hand pass captured, re-run eager)", results):
        old = lifted(compiled=False)
        old.prepare()
        old._refiner, old.refine_status = None, "eager (the old path)"
        pipes["old"] = with_hands(old)

    hand_camera = loaded.model.init_camera_hand.weight
    fp32_camera = pipes["fp32"].model.init_camera_hand.weight if "fp32" in pipes else None
    cases = (("upstream checks", None, False), ("every hand accepted", accept_all, True))
    rows, deviations = [], []
    for case, checks, centred in cases:
        saved = [hand_camera.detach().clone()] + ([fp32_camera.detach().clone()] if fp32_camera is not None else [])
        if centred:
            with torch.no_grad():
                for weight in (hand_camera, fp32_camera):
                    if weight is not None:
                        weight.copy_(torch.tensor([CENTRED_HAND_CAMERA], device=weight.device))
        try:
            reference = {}
            with step(f"fp32 eager reference ({case})", results):
                reference = {i: pipes["fp32"].run(item.image, item.box, mode="full", hand_checks=checks)
                             for i, item in enumerate(images)}
            for name in ("old", "captured", "new"):
                if name not in pipes:
                    continue
                with step(f"{name} ({case})", results):
                    pipe = pipes[name]
                    for item in images[:2]:
                        pipe.run(item.image, item.box, mode="full", hand_checks=checks)  # warm-up
                    timings, used = [], []
                    for _ in range(args.runs):
                        for item in images:
                            r = pipe.run(item.image, item.box, mode="full", hand_checks=checks)
                            timings.append(r.timings_ms)
                            used.append(r.hands.prompts_used)
                    med = {k: statistics.median(t[k] for t in timings) for k in STAGES}
                    rows.append((name, case, med, len(timings), sorted(set(used))))
                    say(name, case, {k: round(v, 2) for k, v in med.items()}, "prompts used", sorted(set(used)))
                    for i, item in enumerate(images):
                        if i not in reference:
                            continue
                        r = pipe.run(item.image, item.box, mode="full", hand_checks=checks)
                        want = reference[i]
                        v = np.linalg.norm(r.vertices - want.vertices, axis=-1) * 1e3
                        h = np.linalg.norm(r.keypoints_3d[HAND_KEYPOINTS] - want.keypoints_3d[HAND_KEYPOINTS],
                                           axis=-1) * 1e3
                        same = r.hands.accepted.tolist() == want.hands.accepted.tolist() \
                            and r.hands.prompts_used == want.hands.prompts_used
                        deviations.append((name, case, item.name, v.mean(), v.max(), h.mean(), h.max(), same))
        finally:
            with torch.no_grad():
                hand_camera.copy_(saved[0])
                if fp32_camera is not None:
                    fp32_camera.copy_(saved[1])

    say("=" * 100)
    say(f"device: {torch.cuda.get_device_name(device) if cuda else 'cpu'}; model {args.size}; "
        f"backbone {backbone.info.label() if 'fp32' in pipes else '?'}")
    say(f"new path made at load (prepare): {results.get('prepare_s', float('nan')):.1f} s; "
        f"first full-mode run after it: {results.get('first_run_ms', float('nan')):.1f} ms")
    say("full mode, median ms per stage (CUDA-synced), old vs captured vs new:")
    say(f"{'path':9s} {'case':21s} " + " ".join(f"{s:>13s}" for s in STAGES) + "   runs  prompts used")
    for name, case, med, n, used in rows:
        say(f"{name:9s} {case:21s} " + " ".join(f"{med[s]:13.2f}" for s in STAGES) + f" {n:6d}  {used}")
    say("deviation from fp32 eager full mode (mm), mean over the images of each image's mean / max:")
    say(f"{'path':9s} {'case':21s} {'vert mean':>10s} {'vert max':>10s} {'hand kp mean':>13s} {'hand kp max':>12s}"
        "  same hand decisions")
    for name in ("old", "captured", "new"):
        for case, _, _ in cases:
            mine = [d for d in deviations if d[0] == name and d[1] == case]
            if mine:
                say(f"{name:9s} {case:21s} {np.mean([d[3] for d in mine]):10.3f} {max(d[4] for d in mine):10.3f} "
                    f"{np.mean([d[5] for d in mine]):13.3f} {max(d[6] for d in mine):12.3f}  "
                    f"{sum(d[7] for d in mine)}/{len(mine)}")
    for error in results.get("errors", []):
        say("ERROR", error)
    say(f"done in {time.perf_counter() - T0:.0f} s")


if __name__ == "__main__":
    main()
