#!/usr/bin/env python3
"""Parity of our keypoint-prompted decoder against upstream's own prompted pass, same weights.

Upstream's user-prompt path (sam_3d_body/models/meta_arch/sam3d_body.py): `run_inference(...,
"body")` (the box query), then `run_keypoint_prompt(batch, output, keypoint_prompt)`: the body
decoder again on the same image embeddings, with the prompts and the box query's estimate as the
previous-estimate token. Its prompts are made as its full mode makes its wrist/elbow prompts:
photo pixels → `_full_to_crop` ([-0.5, 0.5] of the crop) → + 0.5, clamped to [0, 1], label = the
MHR70 index. Ours: `keypoint_prompts.prompt_tensor` (photo pixels → prompt rows through our crop
geometry) and `prompted_decode.prompted_pass` from our box query's estimate. Compared: the prompt
rows, and every output both passes have (upstream's prompted pass makes no hand boxes).

Cases: one prompt (left_wrist), two prompts (left_wrist + right_knee), at fixed photo pixels
inside the crop, away from where the random-weight model puts those keypoints.

    PYTHONPATH=<site with yacs, omegaconf, roma, braceexpand, einops, opencv-python-headless,
    pytorch_lightning> python tools/parity/prompt_parity.py --upstream <dir holding sam_3d_body> \
        [--folder <tiny synthetic model>] [--golden-out tests/fixtures/prompt_tiny_golden.pt]

Shims: decoder_parity.py's (MOMENTUM_ENABLED=0, the feature-map stand-in for upstream's backbone,
ToTensor stand-in, `.cuda()` → identity on CPU). The feature map is rounded to fp16 values (kept
in fp32) so the golden can store it in half the bytes without changing a single value.
Exit 1 if any relative error (max |ours - upstream| / max |upstream|) exceeds --tol.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decoder_parity import COMPARED, FeatureStandIn, install_shims, load_into_upstream, test_image  # noqa: E402

PROMPTED = tuple(k for k in COMPARED if k not in ("hand_box", "hand_logits"))
CASES = {
    "one": (("left_wrist", 700.0, 380.0),),
    "two": (("left_wrist", 700.0, 380.0), ("right_knee", 600.0, 560.0)),
}
# The tensors the prompted pass adds to the box query's; the decoder golden pins the rest.
FINGERPRINTED = ("prompt_encoder.", "prompt_to_token.", "prev_to_token_mhr.", "init_to_token_mhr.",
                 "init_pose.", "init_camera.")


def upstream_model(folder: Path, model, seed: int, dev: torch.device):
    import sam_3d_body.models.meta_arch.sam3d_body as upstream_arch
    from sam_3d_body.utils.config import get_config

    state = torch.load(folder / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    cfg = get_config(str(folder / "model_config.yaml"))
    cfg.defrost()
    cfg.MODEL.MHR_HEAD.MHR_MODEL_PATH = str(folder / "assets" / "mhr_model.pt")
    cfg.freeze()
    stand_in = FeatureStandIn(model.feature_dim, model.patch_size)
    upstream_arch.create_backbone = lambda name, cfg=None: stand_in
    torch.manual_seed(seed)
    up = upstream_arch.SAM3DBody(cfg)
    missing, unexpected = load_into_upstream(up, state)
    if missing or unexpected:
        raise SystemExit(f"upstream load: missing {missing[:5]} unexpected {unexpected[:5]}")
    return up.to(dev).eval(), cfg, stand_in, state


def upstream_prompt(up, batch, case) -> torch.Tensor:
    """Upstream's prompt rows, made as its full mode makes its wrist/elbow prompts."""
    from sam3dbody_gui.pipeline.keypoint_prompts import keypoint_index

    pixels = torch.tensor([[[x, y] for _, x, y in case]], dtype=torch.float32, device=batch["img"].device)
    crop = up._full_to_crop(batch, pixels)
    labels = torch.tensor([[[float(keypoint_index(name))] for name, _, _ in case]], device=crop.device)
    return torch.cat([torch.clamp(crop + 0.5, min=0.0, max=1.0), labels], dim=-1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="folder that contains the sam_3d_body package")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--golden-out", type=Path)
    ap.add_argument("--folder", type=Path, help="reuse this tiny synthetic model folder instead of making one")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity means fp32 math
    torch.backends.cudnn.allow_tf32 = False
    install_shims(args.device)
    sys.path.insert(0, str(Path(args.upstream).resolve()))

    from sam3dbody_gui.model.crop_camera import CropCamera
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.pipeline.keypoint_prompts import KeypointPrompt, prompt_tensor
    from sam3dbody_gui.pipeline.preprocess import crop_geometry
    from sam3dbody_gui.pipeline.prompted_decode import prompted_pass, query_estimate
    from sam3dbody_gui.synthetic.fingerprint import state_fingerprint
    from sam3dbody_gui.synthetic.make import make_synthetic_model

    from sam_3d_body.data.transforms import Compose, GetBBoxCenterScale, TopdownAffine, VisionTransformWrapper
    from sam_3d_body.data.utils.prepare_batch import prepare_batch
    from sam_3d_body.utils import recursive_to
    from torchvision.transforms import ToTensor

    dev = torch.device(args.device)
    if args.folder is not None and args.folder.is_dir():
        folder = args.folder
    else:
        tmp = Path(tempfile.mkdtemp(prefix="s3db-prompt-parity-"))
        folder = make_synthetic_model(tmp / "model", size="tiny", seed=args.seed, exports=(), progress=print)
    ours = load_model_folder(folder, device=dev, with_backbone=False)
    model = ours.model
    up, cfg, stand_in, state = upstream_model(folder, model, args.seed, dev)

    img, boxes = test_image()
    transform = Compose([GetBBoxCenterScale(), TopdownAffine(input_size=cfg.MODEL.IMAGE_SIZE, use_udp=False),
                         VisionTransformWrapper(ToTensor())])
    batch = recursive_to(prepare_batch(img, transform, boxes), "cuda" if dev.type == "cuda" else "cpu")
    up._initialize_batch(batch)
    side = cfg.MODEL.IMAGE_SIZE[0] // model.patch_size
    features = torch.randn(1, model.feature_dim, side, side, generator=torch.Generator().manual_seed(args.seed + 2))
    features = features.half().float()  # fp16 values: the golden stores them exactly in half the bytes
    stand_in.features = features.to(dev)
    cam = CropCamera(
        box_center=batch["bbox_center"][0].float(), box_size=batch["bbox_scale"][0][:, 0].float(),
        affine=batch["affine_trans"][0].float(), intrinsics=batch["cam_int"].float(),
        crop_size=int(cfg.MODEL.IMAGE_SIZE[0]),
    )
    geom = crop_geometry(boxes[0].tolist(), img.shape[:2], crop_size=cam.crop_size)

    print(f"\nprompt parity: ours vs upstream run_keypoint_prompt, tiny, seed={args.seed}, device={dev}, "
          f"torch {torch.__version__}")
    print(f"{'case':5s} {'output':22s} {'shape':>16s} {'max abs err':>12s} {'rel err':>10s}")
    worst, golden_cases = 0.0, {}
    for name, case in CASES.items():
        with torch.no_grad():
            query_out = up.run_inference(img, batch, inference_type="body")
            up_prompt = upstream_prompt(up, batch, case)
            ref = up.run_keypoint_prompt(batch, query_out, up_prompt)[0]["mhr"]
            our_prompt = prompt_tensor([KeypointPrompt.at(*p) for p in case], geom, limit=len(case))
            box_query = model.decode_body(features.to(dev), cam)
            got = prompted_pass(model, features.to(dev), cam, our_prompt.to(dev), query_estimate(box_query))
        rows = [("prompt", our_prompt, up_prompt)] + [(k, got[k], ref[k]) for k in PROMPTED]
        for key, a, b in rows:
            a, b = a.float().cpu(), torch.as_tensor(b).float().cpu()
            abs_err = (a - b).abs().max().item()
            rel = abs_err / max(b.abs().max().item(), 1e-12)
            worst = max(worst, rel)
            print(f"{name:5s} {key:22s} {str(tuple(b.shape)):>16s} {abs_err:12.3e} {rel:10.3e}")
        moved = (got["pred_vertices"] - box_query["pred_vertices"]).abs().max().item()
        print(f"{name:5s} (the prompts moved the vertices by up to {moved:.3e} m from the box query's)")
        golden_cases[name] = {
            "prompts": [list(p) for p in case], "prompt": up_prompt.float().cpu(),
            "outputs": {k: torch.as_tensor(ref[k]).float().cpu() for k in PROMPTED},
        }
    print(f"worst relative error {worst:.3e} (tolerance {args.tol:g})")

    if args.golden_out:
        golden = {
            "seed": args.seed, "torch": str(torch.__version__), "device": str(dev),
            "state_fingerprint": state_fingerprint({k: v for k, v in state.items() if k.startswith(FINGERPRINTED)}),
            "rig_fingerprint": state_fingerprint(dict(model.mhr.named_buffers())),
            "features_fp16": features.half(), "box_xyxy": boxes[0].tolist(), "image_hw": list(img.shape[:2]),
            "camera": {k: getattr(cam, k).cpu() for k in ("box_center", "box_size", "affine", "intrinsics")},
            "crop_size": cam.crop_size, "cases": golden_cases,
        }
        args.golden_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(golden, args.golden_out)
        print(f"golden fixture written to {args.golden_out} ({args.golden_out.stat().st_size / 1024:.0f} KB)")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
