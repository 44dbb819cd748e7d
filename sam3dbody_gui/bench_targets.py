"""`bench --targets`: the speed issue's table — each target beside what this machine measures.

    backbone, batch 1          the fast backbone (compiled fp8 / bf16 on a GPU, the CPU's auto
                               precision compiled) and its speed-up over eager fp32
    end to end, body / full    the fast path, image → mesh on the host (median over the images)
    first full-mode run        the window prepares full mode's passes when the model opens; the
                               first full-mode run after that, against a steady one
    cold start → first mesh    a fresh process with empty caches (TorchInductor, Triton and the
                               app's cache moved to new folders), warm start as the window opens
    peak GPU memory, body mode a fresh process, blocking fast path, 10 body runs (warm caches)
    mesh deviation             the fast path against eager fp32 on the same weights (`compare`)

The fresh-process rows run this module as a child (`--child cold|cold-infer|memory`) and read its one
`RESULT {...}` line. Targets are the issue's, for an H200 (the CPU's is end to end on 2 cores);
a row a machine cannot measure says so instead of a number.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

GPU_BACKBONE_MS, GPU_BODY_MS, GPU_FULL_MS = 3.0, 8.0, 20.0
CPU_BODY_MS = 2500.0  # full-size model, 2 cores
COLD_START_S, PEAK_GIB, FIRST_USE_MS = 5.0, 2.5, 20.0
FIDELITY_MEAN_MM, FIDELITY_MAX_MM = 5.0, 30.0
CHILD_LIMIT_S = 600


@dataclass
class TargetRow:
    what: str
    measured: str
    target: str
    met: Optional[bool]  # None: not measured on this machine
    detail: str = ""  # what the table's columns have no room for, printed under it


def _child_env(fresh_caches: Optional[Path]) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if fresh_caches is not None:
        env.update(TORCHINDUCTOR_CACHE_DIR=str(fresh_caches / "inductor"), TRITON_CACHE_DIR=str(fresh_caches / "triton"),
                   XDG_CACHE_HOME=str(fresh_caches / "xdg"))
    return env


def run_child(kind: str, model_dir: Path, device: torch.device, fresh_caches: Optional[Path] = None,
              limit_s: float = CHILD_LIMIT_S) -> dict:
    """This module's `--child kind` in a fresh interpreter; its RESULT, or {"error": ...}."""
    cmd = [sys.executable, "-m", "sam3dbody_gui.bench_targets", "--child", kind, "--model", str(model_dir),
           "--device", str(device), "--spawned-at", repr(time.time())]
    try:
        proc = subprocess.run(cmd, env=_child_env(fresh_caches), capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {limit_s:.0f} s"}
    got = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not got:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-300:]}
    return json.loads(got[-1][len("RESULT "):])


def child(kind: str, model_dir: Path, device_name: str, spawned_at: float) -> dict:
    """cold: warm start (no background build: the first mesh is what is timed), seconds from the
    parent's spawn to the first mesh. memory: the blocking fast path, max_memory_allocated after
    10 body runs."""
    from .device import resolve_device
    from .pipeline.benchmark_images import benchmark_images
    from .pipeline.build import build_pipeline

    device = resolve_device(device_name)
    item = benchmark_images()[0]
    if kind in ("cold", "cold-infer"):
        # "cold": as the window opens (its background build starts after the first answer and is
        # cancelled then: the process ends at its next step); "cold-infer": as `infer` opens (no
        # background build, so a CPU fast path's check against fp32 comes before the answer).
        pipe = build_pipeline(model_dir, device_name, warm_start=True, background_build=kind == "cold")
        pipe.run(item.image, item.box)
        first_mesh_s = time.time() - spawned_at
        if getattr(pipe, "fast_path", None) is not None:
            pipe.fast_path.cancel()
        return {"first_mesh_s": first_mesh_s, "backend": pipe.backbone.info.label()}
    from .bench import fast_configs

    backbone, _ = fast_configs(device)
    kind_name, _, precision = backbone.partition(":")
    pipe = build_pipeline(model_dir, device_name, backend=kind_name, precision=precision, warm_start=False)
    for _ in range(10):
        pipe.run(item.image, item.box)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"peak_gib": peak, "backend": pipe.backbone.info.label()}


def first_full_run_ms(pipeline, images) -> tuple[float, float, str]:
    """(first full-mode run after the window's prepare(), median of 5 steady ones, ms; where the
    first run's extra time went: its stages against the steady medians, largest first, and what
    compiled or was captured during it)."""
    from .runtime.compile_events import watch_compiles

    prepare = getattr(pipeline.hand_decoder, "prepare", None)
    if prepare is not None:
        prepare()
    item = images[0]
    pipeline.run(item.image, item.box)  # body mode first, as a user's first photo
    with watch_compiles() as events:
        t0 = time.perf_counter()
        first_stages = pipeline.run(item.image, item.box, mode="full").timings_ms
        first = (time.perf_counter() - t0) * 1e3
    runs = [pipeline.run(item.image, item.box, mode="full").timings_ms for _ in range(5)]
    steady = {name: statistics.median(r.get(name, 0.0) for r in runs) for name in runs[0]}
    return first, steady["total"], "; ".join(filter(None, [extra_by_stage(first_stages, steady), events.describe()]))


def extra_by_stage(first: dict, steady: dict, shown: int = 2) -> str:
    """'hand decoder +900.1, body re-run +250.3 ms': the stages a first run spent more in."""
    extra = sorted(((first[name] - steady.get(name, 0.0), name) for name in first if name != "total"), reverse=True)
    said = [f"{name} +{ms:.1f}" for ms, name in extra[:shown] if ms >= 1.0]
    return ", ".join(said) + " ms" if said else ""


def target_rows(model_dir: Path, device: torch.device, cold: bool = True,
                progress: Callable[[str], None] = print) -> list[TargetRow]:
    from .bench import Bench, fast_configs
    from .compare import compare_rows
    from .pipeline.benchmark_images import benchmark_images

    cuda = device.type == "cuda"
    backbone_spec, e2e_spec = fast_configs(device)
    bench = Bench(model_dir, device, progress=progress)
    rows: list[TargetRow] = []

    def add(row: TargetRow) -> None:  # each row also said as it is measured: a run cut short keeps them
        rows.append(row)
        detail = f"; {row.detail}" if row.detail else ""
        progress(f"measured: {row.what}: {row.measured} (target {row.target}){detail}")

    fast_row, fp32_row = None, None
    for row in bench.backbone_rows(["pytorch:fp32", backbone_spec]):
        fast_row, fp32_row = (row, fp32_row) if row.config == backbone_spec else (fast_row, row)
    if fast_row is not None:
        speedup = fp32_row.mean_ms / fast_row.mean_ms if fp32_row else float("nan")
        add(TargetRow(f"backbone, batch 1 ({backbone_spec})", f"{fast_row.mean_ms:.2f} ms ({speedup:.1f}× fp32)",
                      f"≤ {GPU_BACKBONE_MS:g} ms (≥ 20×)" if cuda else "– (a GPU target)",
                      fast_row.mean_ms <= GPU_BACKBONE_MS and speedup >= 20 if cuda else None))
    pipeline = bench.pipeline(e2e_spec)
    images = benchmark_images()
    first, steady, where = first_full_run_ms(pipeline, images)
    body, full = bench.end_to_end_rows([e2e_spec, e2e_spec + "+full"])
    body_ms, full_ms = body.stages_median_ms["total"], full.stages_median_ms["total"]
    add(TargetRow("end to end, body mode", f"{body_ms:.2f} ms",
                  f"≤ {GPU_BODY_MS:g} ms" if cuda else f"≤ {CPU_BODY_MS:g} ms (full size, 2 cores)",
                  body_ms <= (GPU_BODY_MS if cuda else CPU_BODY_MS)))
    add(TargetRow("end to end, full mode", f"{full_ms:.2f} ms", f"≤ {GPU_FULL_MS:g} ms" if cuda else "–",
                  full_ms <= GPU_FULL_MS if cuda else None))
    # The first-use cost is a GPU's: CUDA graphs captured (or passes compiled) at first use.
    add(TargetRow("first full-mode run after load", f"+{first - steady:.1f} ms ({first:.1f} vs {steady:.1f})",
                  f"≤ +{FIRST_USE_MS:g} ms" if cuda else "– (a GPU target: captures)",
                  first - steady <= FIRST_USE_MS if cuda else None, f"extra time in {where}" if where else ""))
    fidelity = compare_rows(bench, "pytorch:fp32", e2e_spec)
    mean_mm = statistics.fmean(r.vertex_mean_mm for r in fidelity)
    max_mm = max(r.vertex_max_mm for r in fidelity)
    add(TargetRow(f"mesh deviation vs fp32 ({e2e_spec})", f"mean {mean_mm:.2f} / max {max_mm:.2f} mm",
                  f"mean ≤ {FIDELITY_MEAN_MM:g}, max ≤ {FIDELITY_MAX_MM:g} mm",
                  mean_mm <= FIDELITY_MEAN_MM and max_mm <= FIDELITY_MAX_MM))
    del bench, pipeline
    if cuda:
        torch.cuda.empty_cache()
        progress("peak GPU memory: a fresh process, blocking fast path")
        got = run_child("memory", model_dir, device)
        add(TargetRow("peak GPU memory, body mode", got.get("error") or f"{got['peak_gib']:.2f} GiB",
                      f"≤ {PEAK_GIB:g} GiB", None if "error" in got else got["peak_gib"] <= PEAK_GIB))
    if cold:
        # On the CPU `infer` differs: it checks its fast path against fp32 before answering.
        starts = [("cold", "cold start → first mesh (empty caches)")]
        if not cuda:
            starts.append(("cold-infer", "cold start, `infer` (checks first)"))
        for kind, what in starts:
            progress(f"{what.strip()}: a fresh process with empty caches")
            with tempfile.TemporaryDirectory(prefix="sam3dbody-cold-") as fresh:
                got = run_child(kind, model_dir, device, fresh_caches=Path(fresh))
            add(TargetRow(what, got.get("error") or f"{got['first_mesh_s']:.1f} s ({got['backend']})",
                          f"≤ {COLD_START_S:g} s", None if "error" in got else got["first_mesh_s"] <= COLD_START_S))
    return rows


def format_targets(machine: dict, rows: list[TargetRow]) -> str:
    where = machine.get("gpu") or machine.get("cpu", "this machine")
    lines = [f"speed targets on {where} ({machine.get('threads', '?')} threads, torch "
             f"{machine.get('torch', torch.__version__)}), model {machine.get('model', '?')}",
             f"{'':40s} {'measured':36s} {'target':30s} met"]
    for r in rows:
        met = "–" if r.met is None else ("yes" if r.met else "NO")
        lines.append(f"{r.what[:40]:40s} {r.measured[:36]:36s} {r.target[:30]:30s} {met}")
    lines += [f"  {r.what}: {r.detail}" for r in rows if r.detail]
    return "\n".join(lines)


def run_targets(model_dir: Path, device: torch.device, json_path: Optional[Path] = None, cold: bool = True,
                progress: Callable[[str], None] = print) -> str:
    from .bench import machine_description

    rows = target_rows(model_dir, device, cold, progress)
    machine = dict(machine_description(device), model=str(model_dir))
    if json_path is not None:
        from .atomic_file import write_bytes_atomic

        write_bytes_atomic(json_path, json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]},
                                                 indent=1).encode())
    return format_targets(machine, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="a child of `bench --targets` (not for direct use)")
    parser.add_argument("--child", choices=("cold", "cold-infer", "memory"), required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--spawned-at", type=float, default=None)
    args = parser.parse_args()
    result = child(args.child, args.model, args.device, args.spawned_at or time.time())
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
