"""The INT8 QDQ `.pt2` backbone: as exported vs compiled vs lowered onto int8 GEMMs, vs compiled fp8.

    python3 tools/gpu/pt2_speed.py                          # on the GPU host, < 8 min
    python3 tools/gpu/pt2_speed.py --device cpu --size tiny  # a dry run of the logic

Builds the full-size synthetic backbone with the project's generator
(synthetic/backbone_exports.build_synthetic_backbone; `--model DIR` loads a model folder instead),
writes its INT8 QDQ `.pt2` (export_backbone_pt2_int8, calibrated on the app's calibration crops)
to /tmp, and times at batch 1 (CUDA events, warm, median):
  as-is                   ExportedProgramBackbone(speed="as-is"): the program's module, eager
  compiled                the program's module through torch.compile + CUDA graph, not lowered
  lowered                 speed="lowered": QDQ linears on torch._int_mm, eager
  lowered + bf16 attn     the same with attention in bf16 (half_attention)
  lowered, compiled       speed="compiled": lowered + torch.compile + CUDA graph
  lowered + bf16, compiled
  compiled fp8            today's CompiledBackbone (fp8, default kernels) on the same weights
Columns: ms, compile/open seconds, max |Δ| / max |feature| and RMS against the program as is and
against the fp32 backbone eager, the steps kept. Log: $OUT/pt2_speed.log.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_log import ScriptLog, attempt  # noqa: E402

_LOG = ScriptLog("pt2_speed")
OUT, LOG, T0, say = _LOG.out, _LOG.file, _LOG.t0, _LOG.say
ROWS: list[dict] = []


def main() -> None:
    from backbone_variants import synthetic_backbone, timed_ms

    from sam3dbody_gui.pipeline.calibration import calibration_crops, calibration_for
    from sam3dbody_gui.runtime.backbones import pt2_fast
    from sam3dbody_gui.runtime.backbones.compiled_backend import CompileOptions, CompiledBackbone
    from sam3dbody_gui.runtime.backbones.plan import prepare_encoder
    from sam3dbody_gui.runtime.backbones.pt2_backend import ExportedProgramBackbone
    from sam3dbody_gui.synthetic.backbone_exports import export_backbone_pt2_int8

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="full", choices=("full", "tiny"))
    ap.add_argument("--model", type=Path)
    ap.add_argument("--deadline", type=float, default=400, help="seconds from start: later steps are skipped")
    args = ap.parse_args()
    device = torch.device(args.device)
    say(f"torch {torch.__version__}, {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}")
    config, encoder = synthetic_backbone(args.size, args.model, device)
    # With a model folder each speed-up step is judged as the app judges it: by the body mesh
    # against the program's (pt2_fast.speed_up; at full size the features alone drop every step).
    mesh_check = None
    if args.model is not None:
        from sam3dbody_gui.model.model_folder import load_model_folder
        from sam3dbody_gui.pipeline.calibration import mesh_check_for

        mesh_check = mesh_check_for(load_model_folder(args.model, device=str(device), with_backbone=False))
    crops = list(calibration_crops(config, device))
    crop = torch.roll(crops[0], shifts=51, dims=-1)  # not a calibration crop
    with torch.inference_mode():
        ref = encoder(crop).float()
        row("fp32 eager (reference)", timed_ms(lambda: encoder(crop), device, 10, 2), None, ref, None, "", "")
    path = Path(tempfile.mkdtemp(prefix="pt2-int8-")) / "backbone_int8.pt2"
    t = time.perf_counter()
    export_backbone_pt2_int8(encoder, path, config.crop_size, crops)
    say(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s")
    state: dict = {"ref": ref}

    def backend(label: str, **kw) -> None:
        t = time.perf_counter()
        b = ExportedProgramBackbone(path, device, progress=say, mesh_check=mesh_check, **kw)
        open_s = time.perf_counter() - t
        with torch.inference_mode():
            out = b(crop).float().clone()
            ms = timed_ms(lambda: b(crop), device, 20 if kw.get("speed", "as-is") == "as-is" else 30)
        if label == "as-is":
            state["as_is"] = out
        row(label, ms, open_s, out, state.get("as_is"), ", ".join(b.fast.steps) or "as exported", b.fast.describe())

    def compiled_unlowered() -> None:
        b = ExportedProgramBackbone(path, device)
        probe = pt2_fast.reference_probe(mesh_check, b.input_shape, b.input_dtype, device)
        with torch.inference_mode():
            want = pt2_fast.first_output(b.module(probe)).clone()
        fast = pt2_fast.FastProgram(lambda x: pt2_fast.first_output(b.module(x)))
        t = time.perf_counter()
        run = pt2_fast._compiled(b.module, fast, probe, pt2_fast._judge(want, mesh_check), device, say)
        open_s = time.perf_counter() - t
        with torch.inference_mode():
            out = run(crop).float().clone()
            ms = timed_ms(lambda: run(crop), device)
        row("compiled (not lowered)", ms, open_s, out, state.get("as_is"), ", ".join(fast.steps), fast.describe())

    def fp8() -> None:
        if device.type != "cuda":
            say("compiled fp8: needs a GPU; skipped")
            return
        prepared, dtype = prepare_encoder(copy.deepcopy(encoder), "fp8", device, calibration_for(config, device))
        t = time.perf_counter()
        b = CompiledBackbone(prepared, dtype, device, config.crop_size, path.with_suffix(".cc"), CompileOptions(),
                             say, precision="fp8", batch_buckets=())
        open_s = time.perf_counter() - t
        with torch.inference_mode():
            out = b(crop).float().clone()
            ms = timed_ms(lambda: b(crop), device)
        row("compiled fp8 (today's fast path)", ms, open_s, out, state.get("as_is"), "fp8", "our backbone, not the .pt2")

    steps = [
        ("as-is", 40, lambda: backend("as-is")),
        ("lowered", 30, lambda: backend("lowered", speed="lowered")),
        ("lowered + bf16 attention", 30, lambda: backend("lowered + bf16 attention", speed="lowered",
                                                         half_attention=True)),
        ("lowered, compiled", 90, lambda: backend("lowered, compiled", speed="compiled")),
        ("lowered + bf16 attention, compiled", 90, lambda: backend("lowered + bf16 attention, compiled",
                                                                   speed="compiled", half_attention=True)),
        ("compiled fp8", 90, fp8),
        ("compiled (not lowered)", 90, compiled_unlowered),
    ]
    for name, need, fn in steps:
        left = args.deadline - (time.perf_counter() - T0)
        if left < need:
            say(f"skipped {name}: {left:.0f} s left")
            ROWS.append(dict(variant=name, note=f"skipped: {left:.0f} s left"))
            continue
        failed = attempt(_LOG, name, fn)
        if failed:
            ROWS.append(dict(variant=name, note=failed))
        if device.type == "cuda":
            torch._dynamo.reset()
            torch.cuda.empty_cache()
    print_table()


REF: dict = {}


def row(name, ms, open_s, out, as_is, steps, note) -> None:
    if name.startswith("fp32"):
        REF["fp32"] = out

    def diff(want):
        if out is None or want is None:
            return None, None
        d = out - want
        return float(d.abs().max() / want.abs().max()), float(d.pow(2).mean().sqrt() / want.pow(2).mean().sqrt())

    r = dict(variant=name, ms=ms, open_s=open_s, vs_as_is=diff(as_is), vs_fp32=diff(REF.get("fp32")),
             steps=steps, note=note)
    ROWS.append(r)
    say("ROW", {k: v for k, v in r.items() if k != "note"}, note)


def print_table() -> None:
    def f(v, fmt):
        width = int(fmt.split(".")[0] or 0)
        return "-".rjust(width) if v is None else format(v, fmt)

    def pair(p):
        return "-" if not p or p[0] is None else f"{p[0]:.2%}/{p[1]:.2%}"

    lines = [f"{'variant':36s} {'ms b1':>8s} {'open s':>7s} {'Δ as-is max/rms':>16s} {'Δ fp32 max/rms':>16s}  steps kept"]
    for r in ROWS:
        lines.append(f"{r['variant'][:36]:36s} {f(r.get('ms'), '8.2f')} {f(r.get('open_s'), '7.0f')} "
                     f"{pair(r.get('vs_as_is')):>16s} {pair(r.get('vs_fp32')):>16s}  {r.get('steps') or r.get('note', '')}")
    lines.append("Δ: max |difference| / max |feature| and RMS difference / RMS feature, on a crop not calibrated on.")
    say("table:\n" + "\n".join(lines))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001
        say(f"failed: {type(exc).__name__}: {exc}")
        if LOG:
            LOG.write(traceback.format_exc())
        print_table()
