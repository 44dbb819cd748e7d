"""The compiled fp8 backbone as today against variants, batch 1 and 16 (issue 15).

    python3 tools/gpu/backbone_variants.py                         # on the GPU host, < 8 min
    python3 tools/gpu/backbone_variants.py --device cpu --size tiny  # a dry run of the logic

Builds the full-size synthetic backbone with the project's generator (synthetic/backbone_exports.
build_synthetic_backbone: the weights `make-synthetic --size full` writes, tested equal, without the
decoder, the MHR stand-in and the checkpoint I/O; `--model DIR` loads a model folder instead), then:
  today            CompiledBackbone as the app opens it (fp8, default kernels, our CUDA graph;
                   batch 16 = the dynamic-batch compile replayed as a bucket graph)
  today, no graph  the same compiled code called directly at batch 1 (launch gaps)
  block study      ONE transformer block compiled alone (static shapes, own CUDA graph), batch 1
                   and 16, for each compile tuning in compiled_backend.TUNINGS that changes the
                   kernels and for token padding (1,029 → 1,040 / 1,056 with a key mask; the mask
                   alone at 1,029 too), times ×32 blocks: EXTRAPOLATED, labelled "block×32"
  full static-16   the whole backbone with TUNINGS["static-batches"] (static batch 16)
  full <tuning>    the whole backbone with the best tuning of the block study, if time is left
Columns: ms at batch 1, ms per crop at batch 16, compile seconds, max |Δ| / max |feature| against
today's output and against fp32 eager (block rows: against the block run eagerly). Each step is in
try/except and skipped past --deadline. Log: $OUT/backbone_variants.log.
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_log import ScriptLog, attempt, timed_ms  # noqa: E402,F401 - timed_ms: pt2_speed takes it from here

_LOG = ScriptLog("backbone_variants")
OUT, LOG, T0, say = _LOG.out, _LOG.file, _LOG.t0, _LOG.say
ROWS: list[dict] = []


def rel(got: torch.Tensor | None, want: torch.Tensor | None) -> float | None:
    if got is None or want is None:
        return None
    return float((got.float() - want.float()).abs().max() / want.float().abs().max())


def row(name: str, scope: str, ms1=None, ms16=None, compile_s=None, vs_today=None, vs_fp32=None, note="") -> None:
    r = dict(variant=name, scope=scope, ms1=ms1, ms16=ms16, compile_s=compile_s, vs_today=vs_today,
             vs_fp32=vs_fp32, note=note)
    ROWS.append(r)
    say("ROW", r)


def step(name: str, deadline: float, need_s: float, fn) -> None:
    left = deadline - (time.perf_counter() - T0)
    if left < need_s:
        say(f"skipped {name}: {left:.0f} s left, needs ~{need_s:.0f}")
        row(name, "-", note=f"skipped: {left:.0f} s left")
        return
    failed = attempt(_LOG, name, fn)
    if failed:
        row(name, "-", note=failed)


# --- one block, optionally with padded tokens and a key mask ------------------------------------------
class OneBlock(torch.nn.Module):
    """blocks[0] of the prepared encoder on (B, N, C) tokens; `pad_to` adds zero tokens that every
    real token is masked from (RoPE angle 0 for them); the output keeps only the real tokens."""

    def __init__(self, block, sin, cos, tokens: int, pad_to: int | None = None, mask: bool = False):
        super().__init__()
        self.block, self.tokens = block, tokens
        total = pad_to or tokens
        pad = total - tokens
        self.register_buffer("sin", torch.cat([sin, sin.new_zeros(pad, sin.shape[1])]))
        self.register_buffer("cos", torch.cat([cos, cos.new_ones(pad, cos.shape[1])]))
        self.pad = pad
        keys = torch.arange(total, device=sin.device) < tokens
        self.register_buffer("key_mask", keys[None, None, None, :])  # (1, 1, 1, N): True = attend
        self.masked = mask or pad > 0

    def forward(self, x):
        if self.pad:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.pad, x.shape[2])], dim=1)
        b = self.block
        if self.masked:
            x = x + b.ls1(self._attention(b.attn, b.norm1(x)))
            x = x + b.ls2(b.mlp(b.norm2(x)))
        else:
            x = b(x, self.sin, self.cos)
        return x[:, :self.tokens]

    def _attention(self, attn, x):
        from sam3dbody_gui.model.backbone import apply_rope

        batch, tokens, channels = x.shape
        qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = apply_rope(q, self.sin, self.cos), apply_rope(k, self.sin, self.cos)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.key_mask)
        return attn.proj(out.transpose(1, 2).reshape(batch, tokens, channels))


def block_study(encoder, dtype, device, depth: int, deadline: float, tunings: list[str]) -> dict[str, float]:
    from sam3dbody_gui.runtime.backbones.compiled_backend import TUNINGS
    from sam3dbody_gui.runtime.cuda_graph import capture

    grid = 512 // encoder.patch_size
    tokens = encoder.n_prefix_tokens + grid * grid
    sin, cos = encoder.rope_embed.sin_cos(grid, grid, encoder.n_prefix_tokens)
    block = encoder.blocks[0]
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.randn(b, tokens, encoder.embed_dim, generator=gen).to(device=device, dtype=dtype) for b in (1, 16)}
    with torch.inference_mode():
        eager = {b: OneBlock(block, sin, cos, tokens)(x).clone() for b, x in inputs.items()}
    variants = [("block default", TUNINGS["default"], None, False),
                ("block default, key mask at 1029", TUNINGS["default"], None, True)]
    variants += [(f"block default, padded to {n} + mask", TUNINGS["default"], n, True) for n in (1040, 1056)]
    variants += [(f"block {name}", TUNINGS[name], None, False) for name in tunings if name != "default"]
    per_block: dict[str, float] = {}

    def one(label, options, pad_to, mask):
        torch._dynamo.reset()  # every variant's forward is the same code object: start its cache afresh
        module = OneBlock(block, sin, cos, tokens, pad_to, mask).eval()
        t = time.perf_counter()
        compiled = torch.compile(module, fullgraph=True, dynamic=False, **options.compile_kwargs())
        res = {}
        for b, x in inputs.items():
            static = x.clone()
            with torch.inference_mode():
                compiled(static)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    graph, out = capture(lambda: compiled(static), device)
                    run = graph.replay
                else:
                    out = compiled(static)
                    run = lambda: compiled(static)  # noqa: E731
                res[b] = (timed_ms(run, device), rel(out, eager[b]))
        compile_s = time.perf_counter() - t
        per_block[label] = res[1][0]
        row(label, f"block×{depth}", res[1][0] * depth, res[16][0] * depth / 16, compile_s,
            max(r for _, r in res.values()), None, f"1 block: {res[1][0]:.3f} / {res[16][0]:.3f} ms (b1 / b16)")

    for label, options, pad_to, mask in variants:
        need = 100 if options.gemm_backends or options.max_autotune else 25
        step(label, deadline, need, lambda: one(label, options, pad_to, mask))
    return per_block


def synthetic_backbone(size: str, folder: Path | None, device: torch.device):
    """(config, fp32 backbone on `device`): from a model folder, or the generator's in memory."""
    if folder is not None:
        from sam3dbody_gui.model.model_folder import load_model_folder

        loaded = load_model_folder(folder, device=str(device))
        return loaded.config, loaded.model.backbone.encoder.float()
    from sam3dbody_gui.synthetic.backbone_exports import build_synthetic_backbone
    from sam3dbody_gui.synthetic.make import synthetic_config

    config = synthetic_config(size)
    return config, build_synthetic_backbone(config.backbone_type).to(device)


# --- main -----------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="full", choices=("full", "tiny"))
    ap.add_argument("--model", type=Path, help="an existing synthetic model folder (default: made in /tmp)")
    ap.add_argument("--precision", help="default fp8 on CUDA, fp32 on the CPU")
    ap.add_argument("--deadline", type=float, default=400,
                    help="seconds from start: later steps are skipped (a compile under way cannot be cut short)")
    # Plain max-autotune ("autotune") was measured slower on the H100 (README): left out by default.
    ap.add_argument("--tunings", default="aten-triton-epilogue,tuned,triton-epilogue")
    ap.add_argument("--no-aoti", action="store_true",
                    help="leave out the AOTInductor package (on the H200 in session 9 it crashed the process)")
    args = ap.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("fp8" if device.type == "cuda" else "fp32")
    from sam3dbody_gui.pipeline.calibration import calibration_crops, calibration_for
    from sam3dbody_gui.runtime.backbones.compiled_backend import TUNINGS, CompileOptions, CompiledBackbone
    from sam3dbody_gui.runtime.backbones.plan import prepare_encoder

    torch._dynamo.config.recompile_limit = 64  # many variants of the same code in one process
    say(f"torch {torch.__version__}, {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, "
        f"size {args.size}, precision {precision}")
    config, encoder = synthetic_backbone(args.size, args.model, device)
    say(f"backbone ready: {len(encoder.blocks)} blocks, width {encoder.embed_dim}")
    depth = len(encoder.blocks)
    crops = list(calibration_crops(config, device))
    batch16 = torch.cat([torch.roll(crops[i % len(crops)], shifts=37 * i, dims=-1) for i in range(16)])
    crop1 = batch16[:1].clone()
    fp32 = copy.deepcopy(encoder).float().eval()
    with torch.inference_mode():
        ref1 = fp32(crop1).float()
        ref16 = torch.cat([fp32(batch16[i:i + 4]).float() for i in range(0, 16, 4)])
        fp32_ms = timed_ms(lambda: fp32(crop1), device, 10, 2)
    del fp32
    row("fp32 eager (reference)", "model", fp32_ms, None, None, None, 0.0)
    prepared, dtype = prepare_encoder(copy.deepcopy(encoder), precision, device, calibration_for(config, device))
    del encoder
    cache_dir = Path(tempfile.mkdtemp(prefix="bbv-cache-"))
    buckets = (16,) if device.type == "cuda" else ()
    state: dict = {}

    def full(name: str, options: CompileOptions, label: str | None = None) -> None:
        t = time.perf_counter()
        backend = CompiledBackbone(prepared, dtype, device, 512, cache_dir / f"{name}.cc", options, say,
                                   precision=precision, batch_buckets=buckets)
        compile_s = time.perf_counter() - t
        with torch.inference_mode():
            out1 = backend(crop1).float().clone()
            ms1 = timed_ms(lambda: backend(crop1), device)
            out16 = ms16 = None
            if backend.batched:
                out16 = backend(batch16).float().clone()
                ms16 = timed_ms(lambda: backend(batch16), device, 20) / 16
            else:  # the CPU dry run: one crop at a time
                out16 = torch.cat([backend(batch16[i:i + 1]).float().clone() for i in range(16)])
        if name == "today":
            state.update(out1=out1, out16=out16, backend=backend)
            with torch.inference_mode():
                no_graph = timed_ms(lambda: backend.compiled(backend.static_input), device)
            row("today, no CUDA graph", "model", no_graph, None, None, 0.0, rel(out1, ref1), "compiled code called directly")
        vs_today = None if name == "today" else max(rel(out1, state.get("out1")) or 0, rel(out16, state.get("out16")) or 0)
        note = "" if backend.options == options else f"fell back to {backend.options.describe()}"
        row(label or f"full {name}", "model", ms1, ms16, compile_s, 0.0 if name == "today" else vs_today,
            max(rel(out1, ref1), rel(out16, ref16)), note or options.describe())
        if name != "today":
            del backend
            torch._dynamo.reset()

    step("today", args.deadline, 60, lambda: full("today", CompileOptions(), "today (compiled fp8, default)"))
    if not args.no_aoti:
        step("AOTInductor package", args.deadline, 150, lambda: aoti(prepared, dtype, device, crop1, ref1, state, cache_dir))
    step("full static-batches", args.deadline, 90, lambda: full("static-batches", TUNINGS["static-batches"]))
    tunings = [t.strip() for t in args.tunings.split(",") if t.strip()]
    per_block: dict[str, float] = {}
    step("block study", args.deadline, 60,
         lambda: per_block.update(block_study(prepared, dtype, device, depth, args.deadline, tunings)))
    tuned = {k[len("block "):]: v for k, v in per_block.items() if k[len("block "):] in TUNINGS and k != "block default"}
    base = per_block.get("block default")
    if tuned and base:
        best = min(tuned, key=tuned.get)
        if tuned[best] < 0.97 * base:
            step(f"full {best}", args.deadline, 240, lambda: full(best, TUNINGS[best]))
        else:
            say(f"no tuning beat the default block by 3 % (best {best}: {tuned[best]:.3f} vs {base:.3f} ms)")
    print_table()


def aoti(prepared, dtype, device, crop1, ref1, state: dict, cache_dir: Path) -> None:
    """The backbone as an AOTInductor package (the CPU's compiled path, runtime/backbones/
    aoti_backend.py), here on this device: build, a second load with the weights handed over as
    user-managed constants (what a later start pays instead of torch.compile's re-trace), ms at
    batch 1 called directly and, on CUDA, replayed from one captured graph."""
    from sam3dbody_gui.runtime.backbones.aoti_backend import (_compile_package, _encoder_tensors, open_package,
                                                               tensor_layout)
    from sam3dbody_gui.runtime.cuda_graph import capture

    package = cache_dir / "backbone-aoti.pt2"
    static = crop1.to(dtype).clone()
    t = time.perf_counter()
    _compile_package(prepared, static, package)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    runner = open_package(package, tensor_layout(prepared, static), lambda names: _encoder_tensors(prepared, names))
    load_s = time.perf_counter() - t
    say(f"AOTInductor package: built in {build_s:.0f} s, {package.stat().st_size / 1e6:.1f} MB; "
        f"a second load {load_s:.2f} s")
    with torch.inference_mode():
        out1 = runner(static).float().clone()
        ms1 = timed_ms(lambda: runner(static), device)
    row("AOTInductor package, called directly", "model", ms1, None, build_s, rel(out1, state.get("out1")),
        rel(out1, ref1), f"second load {load_s:.2f} s")
    if device.type == "cuda":
        graph, output = capture(lambda: runner(static), device)
        graph.replay()
        torch.cuda.synchronize(device)
        replayed = output.float().clone()
        ms_graph = timed_ms(graph.replay, device)
        row("AOTInductor package, one CUDA graph", "model", ms_graph, None, None, rel(replayed, state.get("out1")),
            rel(replayed, ref1), "captured around the package's call")


def print_table() -> None:
    def f(v, fmt):
        width = int(fmt.split(".")[0] or 0)
        return "-".rjust(width) if v is None else format(v, fmt)

    lines = [f"{'variant':48s} {'scope':9s} {'ms b1':>7s} {'ms/crop b16':>11s} {'compile s':>9s} "
             f"{'Δ today':>8s} {'Δ fp32':>8s}  note"]
    for r in ROWS:
        lines.append(f"{r['variant'][:48]:48s} {r['scope']:9s} {f(r['ms1'], '7.2f')} {f(r['ms16'], '11.2f')} "
                     f"{f(r['compile_s'], '9.0f')} {f(r['vs_today'], '8.2%')} {f(r['vs_fp32'], '8.2%')}  {r['note']}")
    lines.append("Δ: max |difference| / max |feature|; block rows: against the block run eagerly (same precision).")
    lines.append("block×N rows: one block's time × the depth, EXTRAPOLATED (no embedding / final norm).")
    text = "\n".join(lines)
    say("table:\n" + text)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - print what was measured
        say(f"failed: {type(exc).__name__}: {exc}")
        if LOG:
            LOG.write(traceback.format_exc())
        print_table()
