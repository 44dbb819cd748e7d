#!/usr/bin/env python3
"""Parity of our decoder/MHR path against upstream's own code, on the same random weights.

Upstream's `sam_3d_body` package is the oracle (from the `sam3d==0.1.2` wheel, which vendors a
byte-identical copy under sam3d/third_party/meta; it is never copied into this repository).
Both models get: the same synthetic checkpoint (ours, `make-synthetic`), the same MHR stand-in,
the same preprocessed batch (upstream's transform) and the same backbone feature map (upstream
fetches its backbone over the network, so the comparison starts after the backbone).

    python tools/parity/decoder_parity.py --upstream <dir holding sam_3d_body> --size tiny \
        [--device cpu|cuda] [--golden-out tests/fixtures/decoder_tiny_golden.pt]

Needs, besides torch: yacs, omegaconf, roma, braceexpand, einops, opencv-python(-headless),
pytorch_lightning (upstream imports them). Runtime shims only, no upstream file is edited:
MOMENTUM_ENABLED=0 (TorchScript rig), a feature-map stand-in for the backbone, a minimal
torchvision ToTensor where torchvision is absent, and on CPU `Tensor.cuda` → identity (upstream
hard-codes `.cuda()`). Prints a table of max abs / relative error; exit 1 if any relative error
exceeds --tol.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

COMPARED = (
    "pred_vertices", "pred_keypoints_3d", "pred_keypoints_2d", "pred_cam_t", "pred_joint_coords",
    "joint_global_rots", "global_rot", "body_pose", "shape", "scale", "hand", "mhr_model_params",
    "pred_pose_raw", "pred_cam", "hand_box", "hand_logits",
)


def install_shims(device: str) -> None:
    os.environ.setdefault("MOMENTUM_ENABLED", "0")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        import pytorch_lightning  # noqa: F401  (imported before the stub: it probes torchvision)
    from torchvision_stub import install_torchvision_stub

    install_torchvision_stub()
    if device == "cpu":
        torch.Tensor.cuda = lambda self, *a, **k: self


class FeatureStandIn(nn.Module):
    """Upstream's backbone slot: returns a preset feature map (and has what upstream pokes at)."""

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.embed_dim = self.embed_dims = embed_dim
        self.patch_size = patch_size
        self.encoder = nn.Module()
        self.encoder.rope_embed = nn.Identity()
        self.features: torch.Tensor | None = None

    def forward(self, x, extra_embed=None):
        return self.features


def load_into_upstream(up: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    """Our synthetic checkpoint's decoder, heads and prompt encoder into upstream's SAM3DBody (the
    backbone is a stand-in, the MHR rig upstream's own); returns (missing, unexpected) keys that matter."""
    for head in (up.head_pose, up.head_pose_hand):  # upstream hard-codes the released mesh size
        head.faces = nn.Parameter(torch.zeros_like(state["head_pose.faces"]), requires_grad=False)
        head.keypoint_mapping = nn.Parameter(torch.zeros_like(state["head_pose.keypoint_mapping"]), requires_grad=False)
    missing, unexpected = up.load_state_dict({k: v for k, v in state.items() if not k.startswith("backbone.")},
                                             strict=False)
    return [k for k in missing if not k.startswith(("backbone.", "head_pose.mhr.", "head_pose_hand.mhr."))], unexpected


def test_image() -> tuple[np.ndarray, np.ndarray]:
    height, width = 720, 1280
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (height + width)], -1).astype(np.uint8)
    return img, np.array([[460.0, 40.0, 820.0, 700.0]], dtype=np.float32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="folder that contains the sam_3d_body package")
    ap.add_argument("--size", default="tiny", choices=("tiny", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--golden-out", type=Path)
    ap.add_argument("--folder", type=Path, help="reuse this synthetic model folder instead of making one")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity means fp32 math
    torch.backends.cudnn.allow_tf32 = False
    install_shims(args.device)
    sys.path.insert(0, str(Path(args.upstream).resolve()))

    from sam3dbody_gui.model.crop_camera import CropCamera
    from sam3dbody_gui.model.model_folder import load_model_folder
    from sam3dbody_gui.synthetic.fingerprint import state_fingerprint
    from sam3dbody_gui.synthetic.make import make_synthetic_model

    import sam_3d_body.models.meta_arch.sam3d_body as upstream_arch
    from sam_3d_body.data.transforms import Compose, GetBBoxCenterScale, TopdownAffine, VisionTransformWrapper
    from sam_3d_body.data.utils.prepare_batch import prepare_batch
    from sam_3d_body.utils import recursive_to
    from sam_3d_body.utils.config import get_config
    from torchvision.transforms import ToTensor

    dev = torch.device(args.device)
    if args.folder is not None and args.folder.is_dir():
        folder = args.folder
    else:
        tmp = Path(tempfile.mkdtemp(prefix="s3db-parity-"))
        folder = make_synthetic_model(tmp / "model", size=args.size, seed=args.seed, exports=(), progress=print)
    ours = load_model_folder(folder, device=dev, with_backbone=False)
    model = ours.model
    state = torch.load(folder / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"]

    cfg = get_config(str(folder / "model_config.yaml"))
    cfg.defrost()
    cfg.MODEL.MHR_HEAD.MHR_MODEL_PATH = str(folder / "assets" / "mhr_model.pt")
    cfg.freeze()
    stand_in = FeatureStandIn(model.feature_dim, model.patch_size)
    upstream_arch.create_backbone = lambda name, cfg=None: stand_in
    torch.manual_seed(args.seed)
    up = upstream_arch.SAM3DBody(cfg)
    missing, unexpected = load_into_upstream(up, state)
    if missing or unexpected:
        print("upstream load: missing", missing[:5], "unexpected", unexpected[:5])
        return 2
    up = up.to(dev).eval()

    img, boxes = test_image()
    transform = Compose([GetBBoxCenterScale(), TopdownAffine(input_size=cfg.MODEL.IMAGE_SIZE, use_udp=False),
                         VisionTransformWrapper(ToTensor())])
    batch = recursive_to(prepare_batch(img, transform, boxes), "cuda" if dev.type == "cuda" else "cpu")
    up._initialize_batch(batch)
    side = cfg.MODEL.IMAGE_SIZE[0] // model.patch_size
    features = torch.randn(1, model.feature_dim, side, side, generator=torch.Generator().manual_seed(args.seed + 1))
    stand_in.features = features.to(dev)

    with torch.no_grad():
        ref = up.run_inference(img, batch, inference_type="body")["mhr"]
        cam = CropCamera(
            box_center=batch["bbox_center"][0].float(),
            box_size=batch["bbox_scale"][0][:, 0].float(),
            affine=batch["affine_trans"][0].float(),
            intrinsics=batch["cam_int"].float(),
            crop_size=int(cfg.MODEL.IMAGE_SIZE[0]),
        )
        got = model.decode_body(features.to(dev), cam)

    print(f"\nparity: ours vs upstream sam_3d_body, body mode, size={args.size}, seed={args.seed}, "
          f"device={dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), torch {torch.__version__}")
    print(f"{'output':22s} {'shape':>16s} {'max abs err':>12s} {'rel err':>10s}")
    worst = 0.0
    for key in COMPARED:
        a, b = got[key].float().cpu(), torch.as_tensor(ref[key]).float().cpu()
        abs_err = (a - b).abs().max().item()
        rel = abs_err / max(b.abs().max().item(), 1e-12)
        worst = max(worst, rel)
        print(f"{key:22s} {str(tuple(b.shape)):>16s} {abs_err:12.3e} {rel:10.3e}")
    print(f"worst relative error {worst:.3e} (tolerance {args.tol:g})")

    if args.golden_out:
        golden = {
            "size": args.size, "seed": args.seed, "state_fingerprint": state_fingerprint(state),
            "rig_fingerprint": state_fingerprint(dict(model.mhr.named_buffers())),
            "features": features, "torch": str(torch.__version__), "device": str(dev),
            "camera": {k: getattr(cam, k).cpu() for k in ("box_center", "box_size", "affine", "intrinsics")},
            "crop_size": cam.crop_size,
            "outputs": {k: torch.as_tensor(ref[k]).float().cpu() for k in COMPARED},
        }
        args.golden_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(golden, args.golden_out)
        print(f"golden fixture written to {args.golden_out}")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
