"""Cold start and GPU memory of the fast path (issue 15: first mesh ≤ 5 s, body-mode peak ≤ 2.5 GiB):

    python3 tools/gpu/cold_start.py                       # the H200: full-size synthetic model
    python3 tools/gpu/cold_start.py --device cpu --size tiny   # a dry run of the logic on a CPU

Every measurement runs in a fresh subprocess; "empty caches" = a fresh TorchInductor, Triton and
app cache folder (the app's cache is platformdirs' user cache, moved with XDG_CACHE_HOME), "warm
caches" = the folders an earlier child filled. Times are from the moment the parent starts the
child (interpreter start and `import torch` included) to:
  first mesh   the first body-mode MeshResult on the host (a benchmark photo, one person)
  fast path    warm start: the compiled stages checked and swapped in; blocking: = first mesh
Steps, most important first (a step that fails prints its error, the others still run; a step
that would not finish inside the time budget is skipped and says so):
  warm-cold      warm start (build_pipeline(warm_start=True), backend auto), empty caches
  block-cold     the old blocking path (backend compiled, warm_start=False), empty caches
  mem-new        blocking fast path, warm caches: GPU memory by stage (at each progress line:
                 allocated, max allocated so far, used per mem_get_info), the body-mode peak after
                 10 runs, and the first full-mode run's extra cost over a steady full-mode run
  mem-old        the same with the backbone loaded in fp32 and cast after (load_in_run_precision=False)
  warm-warm      warm start, warm caches
  infer          `infer`'s start: warm, no background build (one photo), empty caches, then exit
  block-warm     blocking, warm caches
The table at the end has one row per step; the memory breakdowns follow it. Log: $OUT/cold_start.log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUDGET_S = float(os.environ.get("COLD_START_BUDGET_S", 7 * 60 - 20))  # the whole script, model included
STEP_LIMIT_S = float(os.environ.get("COLD_START_STEP_LIMIT_S", 240))  # one child at most


# ---------------------------------------------------------------------------------------------
# the child: one measurement in this (fresh) process
def child(args) -> None:
    sys.path.insert(0, str(REPO))
    import numpy as np
    import torch

    from sam3dbody_gui.pipeline.benchmark_images import benchmark_images
    from sam3dbody_gui.pipeline.build import build_pipeline

    spawned = args.spawned_at
    cuda = args.device == "cuda"
    out: dict = {"step": args.child, "import_s": time.time() - spawned, "stages": []}

    def now() -> float:
        return time.time() - spawned

    def gib(x: float) -> float:
        return round(x / 2**30, 3)

    def mark(message: str) -> None:
        row = {"t": round(now(), 2), "msg": str(message)[:90]}
        if cuda:
            free, total = torch.cuda.mem_get_info()
            row.update(alloc=gib(torch.cuda.memory_allocated()), peak=gib(torch.cuda.max_memory_allocated()),
                       used=gib(total - free))
        out["stages"].append(row)
        print(f"[{row['t']:6.1f}s] {message}", flush=True)

    if cuda:
        torch.cuda.init()
        free, total = torch.cuda.mem_get_info()
        out["context_used_gib"] = gib(total - free)
    warm = args.child.startswith("warm") or args.child == "infer"
    kwargs = dict(backend="auto" if warm else "compiled", warm_start=warm, progress=mark,
                  background_build=args.child != "infer",
                  load_in_run_precision=args.child != "mem-old")
    item = benchmark_images()[0]
    pipe = build_pipeline(Path(args.model), args.device, **kwargs)
    out["built_s"] = now()
    first = pipe.run(item.image, item.box)
    out["first_mesh_s"] = now()
    out["first_backend"] = first.backend
    mark("first mesh")
    # What is known so far, in case the swap outlasts the step's limit (the parent keeps the last RESULT).
    print("RESULT " + json.dumps(dict(out, fast_path_s=None, status="still building at the limit")), flush=True)
    fast = getattr(pipe, "fast_path", None)
    if args.child == "infer":  # `infer`'s case: a warm start with no background build, then exit
        out.update(fast_path_s=None, status=pipe.fast_path_status, backend=pipe.backbone.info.label())
        print("RESULT " + json.dumps(out), flush=True)
        return
    eager_ms = []
    if fast is not None:
        while not fast.wait(0.5):  # a user's runs go on meanwhile (and have to survive the swap)
            eager_ms.append(pipe.run(item.image, item.box).timings_ms["total"])
        out["runs_while_building"] = len(eager_ms)
        out["eager_ms"] = float(np.median(eager_ms)) if eager_ms else None
    out["fast_path_s"] = now()
    out["status"] = pipe.fast_path_status or "blocking"
    out["backend"] = pipe.backbone.info.label()
    out["decoder"] = pipe.decoder_label
    mark("fast path in place")
    times = [pipe.run(item.image, item.box).timings_ms["total"] for _ in range(10)]
    out["steady_ms"] = float(np.median(times))
    if cuda:
        out["body_peak_gib"] = gib(torch.cuda.max_memory_allocated())
        free, total = torch.cuda.mem_get_info()
        out["body_used_gib"] = gib(total - free)
        out["max_used_gib"] = max(r.get("used", 0) for r in out["stages"])
    if args.child.startswith("mem"):
        t0 = time.perf_counter()
        pipe.run(item.image, item.box, mode="full")
        first_full = (time.perf_counter() - t0) * 1e3
        steady_full = float(np.median([pipe.run(item.image, item.box, mode="full").timings_ms["total"]
                                       for _ in range(5)]))
        out.update(first_full_ms=first_full, steady_full_ms=steady_full, full_extra_ms=first_full - steady_full)
        if cuda:
            out["full_peak_gib"] = gib(torch.cuda.max_memory_allocated())
        mark("full mode measured")
        if cuda:  # parameter bytes held by the model after the build, by dtype
            by: dict = {}
            for t in list(pipe.model.parameters()) + list(pipe.model.buffers()):
                by[str(t.dtype)] = by.get(str(t.dtype), 0) + t.numel() * t.element_size()
            out["model_bytes_gib"] = {k: gib(v) for k, v in by.items()}
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# the parent
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--model", default=None, help="an existing model folder (default: made in /tmp)")
    parser.add_argument("--steps", default="warm-cold,block-cold,mem-new,mem-old,warm-warm,infer,block-warm")
    parser.add_argument("--child", default=None)
    parser.add_argument("--spawned-at", type=float, default=0.0)
    args = parser.parse_args()
    if args.child:
        return child(args)

    start = time.time()
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    log = open(out_dir / "cold_start.log", "a", buffering=1) if out_dir else None

    def say(line: str) -> None:
        line = f"[{time.time() - start:6.0f}s] {line}"
        print(line, flush=True)
        if log:
            log.write(line + "\n")

    results: dict[str, dict] = {}
    model = Path(args.model) if args.model else Path(tempfile.gettempdir()) / f"sam3dbody-cold-start-{args.size}"
    try:
        if not (model / "model.ckpt").is_file():
            sys.path.insert(0, str(REPO))
            from sam3dbody_gui.synthetic.make import make_synthetic_model

            say(f"making the {args.size} synthetic model in {model}")
            make_synthetic_model(model, size=args.size, seed=0, exports=(), progress=lambda m: None)
        say(f"model: {model}")
    except Exception as exc:  # noqa: BLE001
        say(f"could not make the model: {type(exc).__name__}: {exc}")
        return

    # COLD_START_CACHE_ROOT: a later script can reuse the caches a step filled (root/<a|b|c>/...)
    root = Path(os.environ.get("COLD_START_CACHE_ROOT") or tempfile.mkdtemp(prefix="cold-start-caches-"))

    def caches(name: str) -> dict:
        base = root / name
        return {"TORCHINDUCTOR_CACHE_DIR": str(base / "inductor"), "TRITON_CACHE_DIR": str(base / "triton"),
                "XDG_CACHE_HOME": str(base / "xdg")}

    # Which cache set each step uses: the cold steps fill theirs, the warm ones reuse those.
    cache_of = {"warm-cold": "a", "block-cold": "b", "mem-new": "a", "mem-old": "a", "warm-warm": "a",
                "block-warm": "b", "infer": "c"}
    for step in [s for s in args.steps.split(",") if s]:
        left = BUDGET_S - (time.time() - start)
        limit = min(STEP_LIMIT_S, left)
        if limit < 30:
            say(f"{step}: skipped (the time budget is spent)")
            results[step] = {"error": "skipped: time budget"}
            continue
        env = dict(os.environ, **caches(cache_of.get(step, step)), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--device", args.device,
               "--model", str(model), "--spawned-at", repr(time.time())]
        say(f"{step}: starting (limit {limit:.0f} s)")
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit, cwd=REPO)
            for line in proc.stdout.splitlines():
                if log and not line.startswith("RESULT "):
                    log.write(f"    {step}: {line}\n")
            got = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if got:
                results[step] = json.loads(got[-1][len("RESULT "):])
                results[step]["exit_code"] = proc.returncode
            else:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                results[step] = {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-300:]}
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            got = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            results[step] = (dict(json.loads(got[-1][len("RESULT "):]), exit_code=f"killed at {limit:.0f} s")
                             if got else {"error": f"timed out after {limit:.0f} s"})
        except Exception as exc:  # noqa: BLE001
            results[step] = {"error": f"{type(exc).__name__}: {exc}"}
        r = results[step]
        say(f"{step}: " + (r["error"] if "error" in r else
                           f"first mesh {r['first_mesh_s']:.1f} s, fast path {_f(r['fast_path_s'], '.1f')} s, "
                           f"{r['status']}, exit code {r['exit_code']}"))
    if out_dir:
        (out_dir / "cold_start.json").write_text(json.dumps(results, indent=1))
    say("\n" + format_tables(results))


def _f(value, fmt: str = "7.1f") -> str:
    width = int(fmt.split(".")[0] or 0)
    return format(value, fmt) if isinstance(value, (int, float)) else "–".rjust(width)


def format_tables(results: dict) -> str:
    lines = ["cold start (s from process start) and memory (GiB; peak = torch.cuda.max_memory_allocated, "
             "used = total − free per mem_get_info, CUDA context included)",
             f"{'step':11s} {'import':>7s} {'built':>7s} {'1st mesh':>8s} {'fast':>7s} {'eager ms':>8s} "
             f"{'fast ms':>7s} {'peak':>6s} {'used':>6s} {'maxused':>7s}  status / backend"]
    for step, r in results.items():
        if "error" in r:
            lines.append(f"{step:11s} error: {r['error']}")
            continue
        lines.append(f"{step:11s} {_f(r.get('import_s'))} {_f(r.get('built_s'))} {_f(r.get('first_mesh_s'), '8.1f')} "
                     f"{_f(r.get('fast_path_s'))} {_f(r.get('eager_ms'), '8.1f')} {_f(r.get('steady_ms'))} "
                     f"{_f(r.get('body_peak_gib'), '6.2f')} {_f(r.get('body_used_gib'), '6.2f')} "
                     f"{_f(r.get('max_used_gib'), '7.2f')}  {r.get('status', '')[:70]} · {r.get('backend', '')}"
                     + (f" · EXIT CODE {r['exit_code']}" if r.get("exit_code") else ""))
    for step in ("mem-new", "mem-old"):
        r = results.get(step, {})
        if "stages" not in r:
            continue
        lines.append(f"\n{step}: by stage (each row: at that progress line, i.e. after the stage before it)")
        lines.append(f"{'t s':>6s} {'alloc':>6s} {'peak':>6s} {'used':>6s}  stage")
        for row in r["stages"]:
            lines.append(f"{row['t']:6.1f} {_f(row.get('alloc'), '6.2f')} {_f(row.get('peak'), '6.2f')} "
                         f"{_f(row.get('used'), '6.2f')}  {row['msg']}")
        lines.append(f"body-mode peak after 10 runs {_f(r.get('body_peak_gib'), '.2f')} GiB; with full mode "
                     f"{_f(r.get('full_peak_gib'), '.2f')} GiB; model tensors {r.get('model_bytes_gib')}")
        lines.append(f"first full-mode run {_f(r.get('first_full_ms'), '.0f')} ms vs steady "
                     f"{_f(r.get('steady_full_ms'), '.0f')} ms: extra {_f(r.get('full_extra_ms'), '.0f')} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
