"""Our DINOv3 backbone: checkpoint naming, shapes, dtypes, export, and agreement with an oracle.

Everything runs on the CPU with the tiny architecture; the full ViT-H+/16 is built on the meta
device only, to check names and shapes against the real checkpoint's key list.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch

from sam3dbody_gui.errors import ModelFolderError
from sam3dbody_gui.model.backbone import (
    DinoV3Backbone,
    backbone_arch,
)
from sam3dbody_gui.synthetic.random_source import RandomSource
from sam3dbody_gui.synthetic.random_weights import init_backbone_random_

FIXTURES = Path(__file__).parent / "fixtures"
CHECKPOINT_KEYS = FIXTURES / "sam3dbody_checkpoint_keys.txt"
GOLDEN = FIXTURES / "backbone_tiny_golden.pt"
ENCODER_PREFIX = "backbone.encoder."


def tiny_backbone(seed: int = 0) -> DinoV3Backbone:
    model = DinoV3Backbone(backbone_arch("sam3dbody_gui_tiny"))
    return init_backbone_random_(model, RandomSource(seed)).eval()


def random_images(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max|actual - expected| / max|expected|."""
    actual, expected = actual.float(), expected.float()
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def checkpoint_encoder_shapes() -> dict[str, tuple[int, ...]]:
    """`name (d0, d1, ...) dtype` lines of the key list, prefix stripped."""
    shapes = {}
    for line in CHECKPOINT_KEYS.read_text().splitlines():
        if line.startswith(ENCODER_PREFIX):
            name, dims = re.fullmatch(r"(\S+) \(([\d, ]*)\) \S+", line).groups()
            shapes[name[len(ENCODER_PREFIX) :]] = tuple(int(d) for d in dims.split(",") if d.strip())
    return shapes


def test_full_architecture_state_dict_matches_checkpoint_keys():
    with torch.device("meta"):
        model = DinoV3Backbone(backbone_arch("dinov3_vith16plus"))
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    expected = checkpoint_encoder_shapes()
    assert len(expected) == 552
    assert ours == expected


def test_unknown_architecture_is_a_model_folder_error():
    with pytest.raises(ModelFolderError, match="Unknown backbone architecture 'vit_nope'.*dinov3_vith16plus"):
        backbone_arch("vit_nope")


@pytest.mark.parametrize(("height", "width", "expected"), [(512, 512, (1, 64, 32, 32)), (64, 96, (1, 64, 4, 6))])
def test_output_shape(height, width, expected):
    model = tiny_backbone()
    assert (model.embed_dim, model.patch_size) == (64, 16)
    with torch.no_grad():
        features = model(random_images(1, 3, height, width))
    assert features.shape == expected


def test_random_init_is_deterministic_finite_and_not_degenerate():
    a, b, c = tiny_backbone(seed=0), tiny_backbone(seed=0), tiny_backbone(seed=1)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), name
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    assert all(0.1 <= g.min() and g.max() <= 1.0 for g in (a.blocks[0].ls1.gamma, a.blocks[1].ls2.gamma))

    with torch.no_grad():
        features = a(random_images(2, 3, 64, 96))
    assert torch.isfinite(features).all()
    assert features.std() > 0.5  # final LayerNorm output, unit scale when not degenerate
    assert (features[0] - features[1]).abs().max() > 0.1  # depends on the image


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_low_precision_weights_agree_with_fp32(dtype, tolerance):
    model = tiny_backbone()
    images = random_images(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(images)
        low = model.to(dtype)(images)  # fp32 input: the backbone casts it to its weights' dtype
    assert low.dtype == dtype
    assert relative_error(low, reference) < tolerance


def test_rope_periods_stay_fp32_when_the_model_is_cast():
    model = tiny_backbone()
    periods = model.rope_embed.periods.clone()
    model.to(torch.bfloat16)
    assert model.rope_embed.periods.dtype == torch.float32
    assert torch.equal(model.rope_embed.periods, periods)
    assert model.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert "rope_embed.periods" in model.state_dict()  # still a persistent buffer


def test_rope_periods_follow_dinov3_base_schedule():
    periods = tiny_backbone().rope_embed.periods
    head_dim = 32  # 64 / 2 heads
    expected = 100.0 ** (2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2))
    assert torch.equal(periods, expected)


def test_bias_mask_removes_the_key_bias_only():
    model = tiny_backbone()
    images = random_images(1, 3, 64, 96)
    qkv = model.blocks[0].attn.qkv
    third = qkv.out_features // 3
    assert qkv.bias_mask[:third].eq(1).all() and qkv.bias_mask[third : 2 * third].eq(0).all()
    assert qkv.bias_mask[2 * third :].eq(1).all()
    with torch.no_grad():
        reference = model(images)
        qkv.bias[third : 2 * third] += 5.0  # key bias: masked out, no effect
        assert torch.equal(model(images), reference)
        qkv.bias[:third] += 5.0  # query bias: used
        assert not torch.allclose(model(images), reference)


def test_torch_export_round_trip_gives_the_same_output():
    model = tiny_backbone()
    images = random_images(1, 3, 512, 512)
    exported = torch.export.export(model, (images,))
    buffer = io.BytesIO()
    torch.export.save(exported, buffer)
    buffer.seek(0)
    reloaded = torch.export.load(buffer).module()
    with torch.no_grad():
        expected = model(images)
        actual = reloaded(images)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter: no onnxscript needed
def test_onnx_export_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = tiny_backbone()
    images = random_images(1, 3, 512, 512)
    path = tmp_path / "backbone.onnx"
    torch.onnx.export(model, (images,), str(path), opset_version=17, dynamo=False,
                      input_names=["image"], output_names=["features"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"image": images.numpy()})
    with torch.no_grad():
        expected = model(images)
    assert relative_error(torch.from_numpy(actual), expected) < 1e-5


def load_golden() -> dict:
    if not GOLDEN.exists():
        pytest.skip(
            f"{GOLDEN.name} not made yet: run `python tools/parity/backbone_parity.py "
            f"--golden-out tests/fixtures/{GOLDEN.name}` where timm is installed"
        )
    return torch.load(GOLDEN, weights_only=True)


def test_matches_oracle_golden_output():
    golden = load_golden()
    model = DinoV3Backbone(backbone_arch(golden["arch"]))
    model.load_state_dict(golden["state_dict"], strict=True)
    with torch.no_grad():
        features = model.eval()(golden["input"])
    # The golden may come from another device and torch build: allow fp32 reduction-order noise.
    assert relative_error(features, golden["output"]) < 1e-4, golden["oracle"]


def test_golden_weights_are_reproduced_from_its_seed():
    golden = load_golden()
    model = init_backbone_random_(DinoV3Backbone(backbone_arch(golden["arch"])), RandomSource(golden["seed"]))
    for name, tensor in model.state_dict().items():
        # Weights are drawn bit for bit on every CPU; the RoPE periods come from torch's pow,
        # which may round its last bit differently per instruction set.
        torch.testing.assert_close(tensor, golden["state_dict"][name], rtol=1e-6, atol=0, msg=name)
