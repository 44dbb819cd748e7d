"""Our SAM 3D Body against the released checkpoint format and against upstream's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam3dbody_gui.model.crop_camera import CropCamera
from sam3dbody_gui.model.model_folder import load_model_folder
from sam3dbody_gui.model.sam3d_body import SAM3DBody
from sam3dbody_gui.synthetic.make import released_state_dict, synthetic_config
from sam3dbody_gui.synthetic.fingerprint import fingerprint_differences, state_fingerprint

FIXTURES = Path(__file__).parent / "fixtures"
DECODER_GOLDEN = FIXTURES / "decoder_tiny_golden.pt"
DTYPES = {"float16": torch.float16, "float32": torch.float32, "int64": torch.int64}


def released_keys() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    keys = {}
    for line in (FIXTURES / "sam3dbody_checkpoint_keys.txt").read_text().splitlines():
        name, rest = line.split(" ", 1)
        shape, dtype = rest.rsplit(" ", 1)
        keys[name] = (tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), DTYPES[dtype])
    return keys


def test_full_model_has_exactly_the_released_checkpoint_tensors():
    """Every key of the real model.ckpt, with its shape and dtype, and nothing else."""
    with torch.device("meta"):
        model = SAM3DBody(synthetic_config("full"))
    ours = {k: (tuple(v.shape), v.dtype) for k, v in released_state_dict(model).items()}
    real = released_keys()
    assert len(real) == 1130
    assert sorted(set(real) - set(ours)) == []
    assert sorted(set(ours) - set(real)) == []
    mismatched = {k: (ours[k], real[k]) for k in real if ours[k] != real[k]}
    assert mismatched == {}


def test_tiny_folder_loads_every_tensor(tiny_model_dir, tiny_loaded):
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)["state_dict"]
    report = tiny_loaded.report
    assert report.tensors_loaded == report.tensors_in_file == len(state)
    assert report.unexpected == [] and report.backbone_skipped == 0
    assert report.hand_only > 0  # the *_hand twins: loaded, used by full mode only


def test_loading_without_backbone_skips_only_backbone_tensors(tiny_model_dir):
    loaded = load_model_folder(tiny_model_dir, with_backbone=False)
    assert not hasattr(loaded.model, "backbone")
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)["state_dict"]
    assert loaded.report.backbone_skipped == sum(1 for k in state if k.startswith("backbone."))
    assert loaded.report.tensors_loaded == len(state) - loaded.report.backbone_skipped


def _golden():
    if not DECODER_GOLDEN.exists():
        pytest.skip("decoder golden not made yet: run tools/parity/decoder_parity.py --golden-out ...")
    return torch.load(DECODER_GOLDEN, weights_only=True)


def test_golden_fixture_was_made_from_these_synthetic_weights(tiny_model_dir, tiny_loaded):
    golden = _golden()
    state = torch.load(tiny_model_dir / "model.ckpt", weights_only=True)["state_dict"]
    # Numerically, not by checksum: the rig's geometry rounds differently per CPU instruction set.
    assert not fingerprint_differences(state_fingerprint(state), golden["state_fingerprint"]), \
        "synthetic generator changed: regenerate the golden"
    assert not fingerprint_differences(state_fingerprint(dict(tiny_loaded.model.mhr.named_buffers())),
                                       golden["rig_fingerprint"])


def test_decoder_matches_upstream_golden(tiny_loaded):
    """Body pass from the oracle's feature map and camera: upstream's outputs within 1e-4."""
    golden = _golden()
    cam = CropCamera(crop_size=golden["crop_size"], **golden["camera"])
    with torch.no_grad():
        out = tiny_loaded.model.decode_body(golden["features"], cam)
    for key, expected in golden["outputs"].items():
        got = out[key].float()
        rel = (got - expected).abs().max() / expected.abs().max().clamp(min=1e-12)
        assert rel <= 1e-4, f"{key}: relative error {rel:.2e}"


def test_decoder_runs_in_bf16_close_to_fp32(tiny_model_dir, tiny_loaded):
    torch.manual_seed(0)
    features = torch.randn(1, tiny_loaded.model.feature_dim, 32, 32)
    cam = CropCamera(
        box_center=torch.tensor([[300.0, 350.0]]), box_size=torch.tensor([800.0]),
        affine=torch.tensor([[[0.64, 0.0, 64.0], [0.0, 0.64, 32.0]]]),
        intrinsics=torch.tensor([[[1000.0, 0, 320], [0, 1000.0, 360], [0, 0, 1]]]), crop_size=512,
    )
    half = load_model_folder(tiny_model_dir, decoder_dtype=torch.bfloat16, backbone_dtype=torch.bfloat16)
    with torch.no_grad():
        ref = tiny_loaded.model.decode_body(features, cam)
        got = half.model.decode_body(features, cam)
    assert got["pred_vertices"].dtype == torch.float32  # the rig runs in fp32 whatever the decoder
    deviation_mm = (got["pred_vertices"] - ref["pred_vertices"]).norm(dim=-1).mean() * 1000
    assert torch.isfinite(got["pred_vertices"]).all()
    assert deviation_mm < 20.0


def test_bilinear_sampling_equals_grid_sample_inside_and_outside_the_map():
    import torch.nn.functional as F

    from sam3dbody_gui.model.sam3d_body import sample_bilinear

    torch.manual_seed(0)
    feature_map = torch.randn(2, 16, 32, 32)
    points = torch.rand(2, 70, 2) * 1.6 - 0.8  # about a third fall partly or fully outside
    want = F.grid_sample(feature_map, (2 * points)[:, :, None, :], mode="bilinear", padding_mode="zeros",
                         align_corners=False).squeeze(3).transpose(1, 2)
    assert (sample_bilinear(feature_map, points) - want).abs().max() < 1e-5
    odd = torch.tensor([[[float("nan"), 0.0], [float("inf"), 0.1], [-1e9, 0.0]]])
    assert torch.equal(sample_bilinear(feature_map[:1], odd), torch.zeros(1, 3, 16))


def test_bilinear_sampling_in_bf16_reads_the_right_cells():
    """A bf16 decoder samples a bf16 map: cell indices must not be formed in bf16 (which rounds
    31 * 32 + 31 = 1023 to 1024: a wrong cell, or past the end, a device assert on GPUs)."""
    import torch.nn.functional as F

    from sam3dbody_gui.model.sam3d_body import sample_bilinear

    feature_map = torch.randn(1, 8, 32, 32, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    points = torch.tensor([[[0.49, 0.49], [0.3, 0.45], [-0.4, 0.2], [0.0, 0.0]]]).to(torch.bfloat16)
    want = F.grid_sample(feature_map.float(), 2 * points.float()[:, :, None], mode="bilinear",
                         padding_mode="zeros", align_corners=False)[:, :, :, 0].transpose(1, 2)
    got = sample_bilinear(feature_map, points).float()
    assert (got - want).abs().max() < 0.05 * want.abs().max()
