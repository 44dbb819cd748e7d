#!/usr/bin/env python3
"""Check our DINOv3 backbone against independent implementations; write the tiny golden fixture.

Both sides get the same random weights (our `init_backbone_random_`, fixed seed) and the same input.
Oracles:
  timm    `vit_huge_plus_patch16_dinov3_qkvb`, timm's Eva port of DINOv3 (the `_qkvb` variant: the
          SAM 3D Body checkpoint has q/v biases, which the plain variant drops). Our state dict is
          converted to timm's names by timm's own `eva.checkpoint_filter_fn`, so the mapping is
          timm's, not ours. Output: `forward_intermediates(indices=1, norm=True, NCHW)`.
  dinov3  optional (`--dinov3` with the `dinov3` package of facebookresearch/dinov3 importable, or
          `--dinov3-src DIR` with DIR holding that package):
          the official DinoVisionTransformer built with the hub's `dinov3_vith16plus` kwargs; it
          loads our state dict as is (same names). Output: `get_intermediate_layers(x, n=1,
          reshape=True, norm=True)`, the call upstream SAM 3D Body makes.
The tiny size overrides only embed_dim/depth/heads/MLP ratio; everything else is the oracle's own
ViT-H+/16 configuration. Errors are max|ours - oracle| and relative max|ours - oracle| / max|oracle|.
fp32 rows must stay under --tolerance (exit status 1 otherwise); fp16/bf16 rows (on CUDA) compare
each implementation cast to that dtype against the oracle in fp32, for information.

Needs torch and timm 1.x (>= 1.0.20, for the DINOv3 models); no network.
  python tools/parity/backbone_parity.py --device cuda --golden-out $OUT/backbone_tiny_golden.pt
The golden file goes to tests/fixtures/backbone_tiny_golden.pt (tests/test_backbone.py reads it).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from sam3dbody_gui.model.backbone import (  # noqa: E402
    BACKBONE_ARCHS,
    BackboneArch,
    DinoV3Backbone,
)
from sam3dbody_gui.synthetic.random_source import RandomSource  # noqa: E402
from sam3dbody_gui.synthetic.random_weights import init_backbone_random_  # noqa: E402

TIMM_MODEL = "vit_huge_plus_patch16_dinov3_qkvb"
GOLDEN_INPUT_SHAPE = (2, 3, 64, 96)  # batch 2 and a non-square grid catch reshape and RoPE axis slips
SIZES = {
    "sam3dbody_gui_tiny": [GOLDEN_INPUT_SHAPE, (1, 3, 512, 512)],
    "dinov3_vith16plus": [(1, 3, 512, 512)],
}


def build_ours(arch: BackboneArch, seed: int, device: torch.device) -> DinoV3Backbone:
    with torch.device("meta"):  # no throw-away default init of 840 M parameters
        model = DinoV3Backbone(arch)
    model = model.to_empty(device=device)
    return init_backbone_random_(model, RandomSource(seed)).eval()


def size_overrides(arch_name: str, arch: BackboneArch) -> dict:
    return {} if arch_name == "dinov3_vith16plus" else {"embed_dim": arch.embed_dim, "depth": arch.depth,
                                                         "num_heads": arch.num_heads}


class TimmOracle:
    name = "timm"

    def __init__(self, arch_name: str, arch: BackboneArch, ours: DinoV3Backbone, device: torch.device):
        import timm
        from timm.models.eva import checkpoint_filter_fn

        if TIMM_MODEL not in timm.list_models(TIMM_MODEL):
            sys.exit(f"timm {timm.__version__} has no {TIMM_MODEL}; DINOv3 needs timm >= 1.0.20")
        self.version = f"timm {timm.__version__} {TIMM_MODEL}"
        kwargs = size_overrides(arch_name, arch)
        if kwargs:
            # timm's SwiGLU hidden is int(dim * mlp_ratio), aligned to 8.
            kwargs["mlp_ratio"] = arch.ffn_hidden / arch.embed_dim
        with torch.device(device):
            model = timm.create_model(TIMM_MODEL, pretrained=False, num_classes=0, **kwargs)
        state = checkpoint_filter_fn({k: v for k, v in ours.state_dict().items()}, model)
        model.load_state_dict(state, strict=True)
        self.model = model.eval()
        rope_gap = (model.rope.periods.float() - ours.rope_embed.periods.float()).abs().max().item()
        print(f"  {self.version}: loaded; RoPE periods max |timm - ours| = {rope_gap:.3g}")

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        return model.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True)[0]


class Dinov3Oracle:
    name = "dinov3"

    def __init__(self, arch_name: str, arch: BackboneArch, ours: DinoV3Backbone, device: torch.device):
        import dinov3.hub.backbones as hub

        # Take the hub's own kwargs for ViT-H+/16 by intercepting its builder call.
        captured: dict = {}
        real_builder = hub._make_dinov3_vit
        hub._make_dinov3_vit = lambda **kw: captured.update(kw)
        try:
            hub.dinov3_vith16plus(pretrained=False)
        finally:
            hub._make_dinov3_vit = real_builder
        overrides = size_overrides(arch_name, arch)
        if overrides:
            # DINOv3's SwiGLU hidden is int(int(dim * ffn_ratio) * 2 / 3), aligned to 8.
            overrides["ffn_ratio"] = arch.ffn_hidden * 1.5 / arch.embed_dim
        with torch.device(device):
            model = real_builder(**{**captured, **overrides, "pretrained": False})
        model.load_state_dict(ours.state_dict(), strict=True)
        self.model = model.eval()
        self.version = "dinov3 DinoVisionTransformer (hub dinov3_vith16plus kwargs)"
        print(f"  {self.version}: loaded")

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        return model.get_intermediate_layers(x, n=1, reshape=True, norm=True)[0]


def errors(ours: torch.Tensor, oracle: torch.Tensor) -> tuple[float, float, float]:
    ours, oracle = ours.float(), oracle.float()
    if ours.shape != oracle.shape:
        raise SystemExit(f"shape mismatch: ours {tuple(ours.shape)} vs oracle {tuple(oracle.shape)}")
    abs_err = (ours - oracle).abs().max().item()
    scale = oracle.abs().max().item()
    return abs_err, scale, abs_err / scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--golden-out", type=Path, help="write the tiny golden fixture here")
    parser.add_argument("--golden-oracle", choices=["timm", "dinov3"], default="timm")
    parser.add_argument("--dinov3", action="store_true", help="also compare with the official dinov3 code")
    parser.add_argument("--dinov3-src", type=Path, help="folder holding the dinov3 package (implies --dinov3)")
    parser.add_argument("--skip-full", action="store_true", help="only the tiny size")
    parser.add_argument("--low-precision", default=None,
                        help="comma list of float16,bfloat16 rows (default: both on CUDA, none on CPU)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max fp32 relative error")
    args = parser.parse_args()

    device = torch.device(args.device)
    # Exact fp32 on both sides: TF32 would put ~1e-3 noise into every matmul and the patch conv.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    low_precision = args.low_precision if args.low_precision is not None else (
        "float16,bfloat16" if device.type == "cuda" else "")
    low_dtypes = [getattr(torch, name) for name in low_precision.split(",") if name]

    oracle_classes = []
    try:
        import timm  # noqa: F401
        oracle_classes.append(TimmOracle)
    except ImportError:
        if not (args.dinov3 or args.dinov3_src):
            sys.exit("timm is not installed (the oracle): pip install 'timm>=1.0.20', or use --dinov3-src")
        print("timm is not installed: comparing with dinov3 only")
    if args.dinov3_src:
        sys.path.insert(0, str(args.dinov3_src.resolve()))
    if args.dinov3 or args.dinov3_src:
        oracle_classes.append(Dinov3Oracle)

    print(f"torch {torch.__version__}, device {device}, seed {args.seed}")
    rows, failed, golden = [], False, None
    arch_names = ["sam3dbody_gui_tiny"] + ([] if args.skip_full else ["dinov3_vith16plus"])
    for arch_name in arch_names:
        arch = BACKBONE_ARCHS[arch_name]
        print(f"{arch_name}: building")
        ours = build_ours(arch, args.seed, device)
        oracles = [cls(arch_name, arch, ours, device) for cls in oracle_classes]
        for shape in SIZES[arch_name]:
            x = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed + 1)).to(device)
            with torch.inference_mode():
                ours_out = ours(x)
                for oracle in oracles:
                    oracle_out = oracle(oracle.model, x)
                    abs_err, scale, rel = errors(ours_out, oracle_out)
                    failed |= rel > args.tolerance
                    rows.append((arch_name, shape, oracle.name, "fp32 vs fp32", abs_err, scale, rel))
                    if arch_name == "sam3dbody_gui_tiny" and shape == GOLDEN_INPUT_SHAPE \
                            and oracle.name == args.golden_oracle:
                        golden = {
                            "format": 1,
                            "arch": arch_name,
                            "seed": args.seed,
                            "input": x.cpu(),
                            "output": oracle_out.float().cpu(),
                            "state_dict": {k: v.cpu() for k, v in ours.state_dict().items()},
                            "oracle": oracle.version,
                            "made_on": f"torch {torch.__version__}, {device}",
                        }
                    for dtype in low_dtypes:
                        dtype_name = str(dtype).removeprefix("torch.")
                        ours_low = copy.deepcopy(ours).to(dtype)
                        abs_err, scale, rel = errors(ours_low(x), oracle_out)
                        rows.append((arch_name, shape, oracle.name, f"ours {dtype_name} vs fp32", abs_err, scale, rel))
                        del ours_low
                        oracle_low = copy.deepcopy(oracle.model).to(dtype)
                        abs_err, scale, rel = errors(oracle(oracle_low, x.to(dtype)), oracle_out)
                        rows.append((arch_name, shape, oracle.name, f"{oracle.name} {dtype_name} vs fp32", abs_err,
                                     scale, rel))
                        del oracle_low
        del ours, oracles
        if device.type == "cuda":
            torch.cuda.empty_cache()

    header = ("arch", "input", "oracle", "compared", "max abs err", "max |oracle|", "rel err")
    table = [header] + [(a, "x".join(map(str, s)), o, c, f"{e:.3e}", f"{m:.3e}", f"{r:.3e}")
                        for a, s, o, c, e, m, r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))

    if args.golden_out:
        if golden is None:
            print(f"no golden written: oracle {args.golden_oracle} did not run", file=sys.stderr)
            return 1
        args.golden_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(golden, args.golden_out)
        print(f"golden fixture ({golden['oracle']}) written to {args.golden_out}")
    if failed:
        print(f"FAIL: an fp32 relative error exceeds {args.tolerance}", file=sys.stderr)
        return 1
    print(f"OK: every fp32 relative error is within {args.tolerance}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
