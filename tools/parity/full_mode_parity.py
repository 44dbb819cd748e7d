#!/usr/bin/env python3
"""Parity of our full mode (hand refinement) against upstream's `run_inference("full")`.

Both sides get the same synthetic checkpoint and MHR stand-in (ours, `make-synthetic`), the same
photo and person box, and the SAME backbone module: our DINOv3 (`DinoV3Backbone`, the
checkpoint's weights) sits in upstream's backbone slot, so the three backbone passes of full mode
(body crop, mirrored left-hand crop, right-hand crop) see identical weights. Ours runs through the
real `Pipeline` (PyTorch backend, fp32, CPU) with `mode="full"`.

Cases. The synthetic weights start the hand camera where the body camera starts, which puts
every hand keypoint outside the hand crops (so the hand decoder's 2-D keypoint tokens stay off
and upstream's checks reject both hands). Two cases therefore also set `init_camera_hand` (on both
models alike) to (-0.4, 0, 0): the wrist at the crop centre, the hand inside the crop.
  as-is    the synthetic weights, upstream's thresholds: both hands rejected, no body re-run;
  accept   hand camera centred; wrist-angle and wrist-distance checks relaxed: both hands
           accepted, body re-run with wrist/elbow prompts, wrist fix, hand replacement;
  mixed    hand camera centred; upstream's thresholds but the wrist distance relaxed: one hand
           accepted (wrist angle 0.77 rad), the other rejected (2.41 rad).
Upstream's wrist-angle threshold is an argument of run_inference; the other three are local
constants, so its run_inference is re-compiled at run time from its own source with those
constants read from the case (the file on disk is untouched), and ours gets the same values
through `HandChecks`.

    /work/oracle-venv/bin/python tools/parity/full_mode_parity.py \
        --upstream /tmp/up/wheel/sam3d/third_party/meta [--golden-out tests/fixtures/full_mode_tiny_golden.pt]

Runtime shims, besides decoder_parity.py's (MOMENTUM_ENABLED=0, ToTensor stand-in, `.cuda()` →
identity on CPU): `recursive_to(..., "cuda")` → the CPU; upstream's `cv2.warpAffine` → our
bit-exact OpenCV-4.x warp (`warp_crop_uint8`; the oracle environment has OpenCV 5, which samples
on a finer grid — preprocessing parity with OpenCV 4.x is tests/test_preprocess.py's job), so
both models see identical crop pixels; TRAIN.USE_FP16 off (fp32 parity). Exit 1 if any compared
output's relative error (max |ours - upstream| / max |upstream|) exceeds --tol.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "parity"))

from decoder_parity import install_shims, load_into_upstream, test_image  # noqa: E402

FINAL_KEYS = (
    "pred_vertices", "pred_keypoints_3d", "pred_keypoints_2d", "pred_cam_t", "pred_joint_coords", "global_rot",
    "body_pose", "hand", "scale", "shape", "mhr_model_params", "pred_cam", "pred_pose_raw",
)
# Hand-pass outputs (left rows after upstream's un-mirroring of hand PCA / scale).
HAND_KEYS = ("hand", "scale", "shape", "pred_cam_t", "pred_keypoints_3d", "pred_keypoints_2d", "pred_vertices")
CENTRED_HAND_CAMERA = (-0.4, 0.0, 0.0)  # (s, tx, ty) start of the hand camera head
CASES = {  # name → (init_camera_hand or None for the synthetic weights', HandChecks overrides)
    "as-is": (None, {}),
    "accept": (CENTRED_HAND_CAMERA, {"wrist_angle": 10.0, "wrist_distance": 1e9}),
    "mixed": (CENTRED_HAND_CAMERA, {"wrist_distance": 1e9}),
}
# Upstream's hard-coded constants in run_inference → HandChecks field.
UPSTREAM_CONSTANTS = {
    "hand_box_size_thresh = 64": "min_crop_side",
    "hand_kps2d_thresh = 0.5": "keypoint_extent",
    "hand_wrist_kps2d_thresh = 0.25": "wrist_distance",
}


class BackboneSlot(nn.Module):
    """Upstream's backbone slot, running our DINOv3 module (the very object our pipeline runs)."""

    def __init__(self, encoder: nn.Module, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.embed_dim = self.embed_dims = embed_dim
        self.patch_size = patch_size

    def forward(self, x, extra_embed=None):
        assert extra_embed is None
        return self.encoder(x)


def patch_upstream(upstream_arch, record: dict) -> None:
    """CPU shims and a recording `_get_hand_box`; run_inference with settable constants."""
    from sam3dbody_gui.pipeline.preprocess import CropGeometry, warp_crop_uint8

    original_to = upstream_arch.recursive_to
    upstream_arch.recursive_to = lambda x, target: original_to(x, "cpu" if target == "cuda" else target)

    import sam_3d_body.data.transforms.common as transforms_common

    real_cv2 = transforms_common.cv2

    class Cv2Shim:
        def __getattr__(self, name):
            return getattr(real_cv2, name)

        @staticmethod
        def warpAffine(img, matrix, size, flags=None):  # noqa: N802  (cv2's name)
            assert size[0] == size[1]
            geom = CropGeometry(bbox_xyxy=None, center=None, scale=None, affine=np.asarray(matrix, np.float64),
                                crop_size=int(size[0]), image_hw=img.shape[:2])
            out = warp_crop_uint8(img, geom)
            return out[..., 0] if img.ndim == 3 and img.shape[2] == 1 else out

    transforms_common.cv2 = Cv2Shim()

    original_box = upstream_arch.SAM3DBody._get_hand_box

    def recording_box(self, pose_output, batch):
        left, right = original_box(self, pose_output, batch)
        record["boxes"] = np.stack([left.copy(), right.copy()], axis=1)  # before upstream mirrors `left`
        return left, right

    upstream_arch.SAM3DBody._get_hand_box = recording_box

    original_hand = upstream_arch.SAM3DBody.forward_step

    def recording_step(self, batch, decoder_type="body"):
        out = original_hand(self, batch, decoder_type)
        if decoder_type == "hand":
            record.setdefault("hand_batches", []).append(batch)
        return out

    upstream_arch.SAM3DBody.forward_step = recording_step

    source = textwrap.dedent(inspect.getsource(upstream_arch.SAM3DBody.run_inference))
    for constant, field in UPSTREAM_CONSTANTS.items():
        assert source.count(constant) == 1, f"upstream changed: {constant!r} not found once"
        name = constant.split(" = ")[0]
        source = source.replace(constant, f"{name} = _PARITY_CHECKS['{field}']")
    namespace = dict(upstream_arch.__dict__)
    exec(compile(source, upstream_arch.__file__, "exec"), namespace)  # noqa: S102  (upstream's own code)
    upstream_arch.SAM3DBody.run_inference = namespace["run_inference"]
    upstream_arch._PARITY_NAMESPACE = namespace


def relative_error(got, want) -> tuple[float, float]:
    a, b = torch.as_tensor(got).double().cpu(), torch.as_tensor(want).double().cpu()
    abs_err = (a - b).abs().max().item() if a.numel() else 0.0
    return abs_err, abs_err / max(b.abs().max().item() if b.numel() else 0.0, 1e-12)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True, help="folder that contains the sam_3d_body package")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder", type=Path, help="reuse this tiny synthetic model folder instead of making one")
    ap.add_argument("--golden-out", type=Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    install_shims("cpu")
    sys.path.insert(0, str(Path(args.upstream).resolve()))

    from sam3dbody_gui.model import full_mode
    from sam3dbody_gui.model.full_mode import HandChecks
    from sam3dbody_gui.pipeline.build import build_pipeline
    from sam3dbody_gui.synthetic.fingerprint import state_fingerprint
    from sam3dbody_gui.synthetic.make import make_synthetic_model

    import sam_3d_body.models.meta_arch.sam3d_body as upstream_arch
    from sam_3d_body.data.transforms import Compose, GetBBoxCenterScale, TopdownAffine, VisionTransformWrapper
    from sam_3d_body.data.utils.prepare_batch import prepare_batch
    from sam_3d_body.utils.config import get_config
    from torchvision.transforms import ToTensor

    record: dict = {}
    patch_upstream(upstream_arch, record)

    if args.folder is not None and args.folder.is_dir():
        folder = args.folder
    else:
        folder = make_synthetic_model(Path(tempfile.mkdtemp(prefix="s3db-full-")) / "model", size="tiny",
                                      seed=args.seed, exports=(), progress=print)
    pipeline = build_pipeline(folder, device="cpu", precision="fp32", backend="pytorch", cuda_graph=False)
    model = pipeline.model
    encoder = model.backbone.encoder
    state = torch.load(folder / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"]

    cfg = get_config(str(folder / "model_config.yaml"))
    cfg.defrost()
    cfg.MODEL.MHR_HEAD.MHR_MODEL_PATH = str(folder / "assets" / "mhr_model.pt")
    cfg.TRAIN.USE_FP16 = False  # fp32 parity: upstream would cast the backbone (ours, shared) to fp16
    cfg.freeze()
    slot = BackboneSlot(encoder, model.feature_dim, model.patch_size)
    upstream_arch.create_backbone = lambda name, cfg=None: slot
    up = upstream_arch.SAM3DBody(cfg)
    missing, unexpected = load_into_upstream(up, state)
    if missing or unexpected:
        print("upstream load: missing", missing[:5], "unexpected", unexpected[:5])
        return 2
    up = up.eval()
    assert up.backbone.encoder is encoder

    img, boxes = test_image()
    transform = Compose([GetBBoxCenterScale(), TopdownAffine(input_size=cfg.MODEL.IMAGE_SIZE, use_udp=False),
                         VisionTransformWrapper(ToTensor())])
    transform_hand = Compose([GetBBoxCenterScale(padding=0.9), TopdownAffine(input_size=cfg.MODEL.IMAGE_SIZE,
                              use_udp=False), VisionTransformWrapper(ToTensor())])

    captured: dict = {}
    original_decode_hands = full_mode.decode_hands

    def capturing_decode_hands(*a, **k):
        captured["hands"] = out = original_decode_hands(*a, **k)
        return out

    full_mode.decode_hands = capturing_decode_hands

    print(f"\nparity: ours vs upstream sam_3d_body, full mode (hand refinement), tiny, seed={args.seed}, cpu, "
          f"torch {torch.__version__}")
    worst = 0.0
    golden_cases = {}
    synthetic_hand_camera = model.init_camera_hand.weight.detach().clone()
    for case, (hand_camera, overrides) in CASES.items():
        checks = HandChecks(**overrides)
        with torch.no_grad():
            start = synthetic_hand_camera if hand_camera is None else torch.tensor([hand_camera])
            model.init_camera_hand.weight.copy_(start)
            up.init_camera_hand.weight.copy_(start)
        upstream_arch._PARITY_NAMESPACE["_PARITY_CHECKS"] = {
            "min_crop_side": checks.min_crop_side, "keypoint_extent": checks.keypoint_extent,
            "wrist_distance": checks.wrist_distance}
        record.clear()
        batch = prepare_batch(img, transform, boxes)
        up._initialize_batch(batch)
        with torch.no_grad():
            ref, batch_l, batch_r, l_out, r_out = up.run_inference(
                img, batch, inference_type="full", transform_hand=transform_hand,
                thresh_wrist_angle=checks.wrist_angle)
        ref = ref["mhr"]
        result = pipeline.run(img, boxes[0].tolist(), mode="full", hand_checks=checks)
        hands = captured["hands"]
        h = result.hands
        print(f"\n[{case}] hand camera start {start[0].tolist()}, checks {overrides or 'upstream defaults'}")
        checks_passed = {k: v.tolist() for k, v in vars(h.checks).items()}
        print(f"  ours: hands accepted (left, right) {h.accepted.tolist()}, checks {checks_passed}, "
              f"re-run {h.body_rerun} with {h.prompts_used} prompts")
        rows = []
        ours_final = {
            "pred_vertices": result.vertices, "pred_keypoints_3d": result.keypoints_3d,
            "pred_keypoints_2d": result.keypoints_2d, "pred_cam_t": result.cam_t, "pred_joint_coords": result.joints,
            **{k: result.params[k] for k in ("global_rot", "body_pose", "hand", "scale", "shape",
                                             "mhr_model_params", "pred_cam", "pred_pose_raw")},
        }
        for key in FINAL_KEYS:
            rows.append((f"final {key}", ours_final[key], ref[key][0]))
        crop_ref = []
        for side, b in enumerate((batch_l, batch_r)):  # the estimator's lhand_bbox / rhand_bbox
            c, s = b["bbox_center"].flatten(0, 1)[0], b["bbox_scale"].flatten(0, 1)[0]
            crop_ref.append(torch.cat([c - s / 2, c + s / 2]))
        rows.append(("hand boxes xyxy", h.boxes_xyxy, record["boxes"][0]))
        rows.append(("hand crop boxes xyxy", h.crop_boxes_xyxy, torch.stack(crop_ref)))
        for side, (name, hand_ref) in enumerate((("left", l_out["mhr_hand"]), ("right", r_out["mhr_hand"]))):
            for key in HAND_KEYS:
                rows.append((f"{name} hand pass {key}", hands[key][side], hand_ref[key][0]))
        print(f"  {'output':34s} {'shape':>14s} {'max abs err':>12s} {'rel err':>10s}")
        for name, got, want in rows:
            abs_err, rel = relative_error(got, want)
            worst = max(worst, rel)
            print(f"  {name:34s} {str(tuple(torch.as_tensor(want).shape)):>14s} {abs_err:12.3e} {rel:10.3e}")
        golden_cases[case] = {
            "checks": dict(overrides), "hand_camera": None if hand_camera is None else list(hand_camera),
            "outputs": {name: torch.as_tensor(want).float().clone() for name, _, want in rows},
            "accepted": torch.as_tensor(h.accepted), "body_rerun": h.body_rerun,
            "prompts_used": h.prompts_used,
        }
    print(f"\nworst relative error {worst:.3e} (tolerance {args.tol:g})")
    accepted = {case: g["accepted"].tolist() for case, g in golden_cases.items()}
    print(f"hands accepted per case: {accepted}")

    if args.golden_out:
        golden = {
            "seed": args.seed, "state_fingerprint": state_fingerprint(state),
            "rig_fingerprint": state_fingerprint(dict(model.mhr.named_buffers())),
            "box": boxes[0].tolist(), "torch": str(torch.__version__), "cases": golden_cases,
        }
        args.golden_out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(golden, args.golden_out)
        print(f"golden fixture written to {args.golden_out} ({args.golden_out.stat().st_size / 1024:.0f} KiB)")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
