"""Batch-size buckets for the captured body pass: padding, slicing and chunking are exact.

On the CPU the captured graph is replaced by the eager pass run on the padded batch, so what is
checked is the bucket logic; the real CUDA graphs are checked on a GPU (second test)."""

from __future__ import annotations

import pytest
import torch

from sam3dbody_gui.model.crop_camera import CropCamera
from sam3dbody_gui.runtime.decoders import decoder_buckets
from sam3dbody_gui.runtime.decoders.decoder_buckets import BucketedBodyDecoder, bucket_for


def _inputs(model, n: int, device="cpu"):
    g = torch.Generator().manual_seed(n)
    features = torch.randn(n, model.feature_dim, 32, 32, generator=g).to(device)
    centre = torch.rand(n, 2, generator=g) * 300 + 100
    side = torch.rand(n, generator=g) * 200 + 200
    scale = 512 / side
    affine = torch.zeros(n, 2, 3)
    affine[:, 0, 0] = affine[:, 1, 1] = scale
    affine[:, :, 2] = 256 - centre * scale[:, None]
    k = torch.tensor([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]]).expand(n, 3, 3)
    return features, CropCamera(centre, side, affine, k, 512).to(device)


def test_bucket_sizes():
    assert [bucket_for(n) for n in (1, 2, 3, 4, 5, 9, 16, 40)] == [2, 2, 4, 4, 8, 16, 16, 16]


def test_padded_buckets_and_chunks_give_each_row_its_own_result(tiny_loaded, monkeypatch):
    model = tiny_loaded.model
    seen = []

    class EagerStandIn:  # what the captured graph computes, without a GPU
        def __init__(self, model, feature_shape, *args):
            seen.append(feature_shape[0])

        def __call__(self, features, camera):
            return model.decode_body(features, camera)

    monkeypatch.setattr(decoder_buckets, "GraphedBodyDecoder", EagerStandIn)
    batched = BucketedBodyDecoder(model, 512, torch.device("cpu"), buckets=(2, 4))
    features, cam = _inputs(model, 7)
    with torch.no_grad():
        got = batched(features, cam)  # 7 rows: chunks of 4 and 3 (padded to 4)
        want = model.decode_body(features, cam)
    assert seen == [4]  # one bucket, captured once, reused for both chunks
    for key in ("pred_vertices", "pred_keypoints_2d", "pred_cam_t", "body_pose"):
        assert got[key].shape[0] == 7
        # Rows are independent; only the batch size of the products (reduction order) differs.
        err = ((got[key] - want[key]).abs().max() / want[key].abs().max()).item()
        assert err < 1e-5, (key, err)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_captured_buckets_match_the_eager_pass_on_a_gpu(tiny_model_dir):
    from sam3dbody_gui.model.model_folder import load_model_folder

    loaded = load_model_folder(tiny_model_dir, device="cuda")
    batched = BucketedBodyDecoder(loaded.model, 512, torch.device("cuda"))
    for n in (1, 3, 5, 16, 19):
        features, cam = _inputs(loaded.model, n, "cuda")
        with torch.no_grad():
            got, want = batched(features, cam), loaded.model.decode_body(features, cam)
        for key in ("pred_vertices", "pred_cam_t"):
            err = ((got[key] - want[key]).abs().max() / want[key].abs().max()).item()
            assert err < 1e-4, (n, key, err)


def test_the_checks_eager_reference_decodes_a_few_rows_at_a_time_and_keeps_each_rows_result(tiny_loaded, monkeypatch):
    """A bucket of 16 is checked against the eager pass; run on all 16 rows at once its
    intermediates set the fast path's peak GPU memory (H200, session 9). Chunks of 4 rows give
    the same rows (each with its own camera) with the intermediates of 4."""
    model = tiny_loaded.model
    features, cam = _inputs(model, 10)
    rows_seen = []
    real = model.decode_body
    monkeypatch.setattr(model, "decode_body", lambda f, c: rows_seen.append(f.shape[0]) or real(f, c))
    with torch.no_grad():
        got = decoder_buckets.eager_reference(model, features, cam)
        want = real(features, cam)
    assert rows_seen == [4, 4, 2]
    for key in want:
        assert got[key].shape == want[key].shape, key
        err = ((got[key].float() - want[key].float()).abs().max() / want[key].float().abs().max().clamp(min=1e-12)).item()
        assert err < 1e-5, (key, err)
