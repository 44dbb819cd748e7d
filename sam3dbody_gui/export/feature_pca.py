"""The classic view of ViT features: the first three principal components of the patch
features, one per RGB channel. Patches with similar features get similar colours, so the
person, background and body parts separate visually."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
# A component whose variance is below this fraction of the first one's is rounding noise
# (features of rank < 3); stretching it to 0..255 would paint speckle, so it is left flat.
NEGLIGIBLE_VARIANCE = 1e-5


def feature_pca_rgb(features: np.ndarray) -> np.ndarray:
    """(C, h, w) features → (h, w, 3) uint8."""
    c, h, w = features.shape
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).reshape(c, h * w).T
    x = x - x.mean(0, keepdim=True)
    # Only the top three components are needed: a randomised SVD (fixed seed, so the picture is
    # the same every run) costs ~60 ms on 1280×1024 features where a full eigensolve costs ~400.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        u, singular, _ = torch.svd_lowrank(x, q=min(8, *x.shape), niter=3)
    top = u[:, :3]  # (hw, 3), largest component first
    variances = singular[:3] ** 2
    variances = torch.where(variances > NEGLIGIBLE_VARIANCE * variances[0], variances, 0.0)
    scores = top * variances.sqrt()
    # An eigenvector's sign is arbitrary; fix it (positive skew) so colours are stable.
    skew = (scores**3).sum(0)
    scores = scores * torch.where(skew < 0, -1.0, 1.0)
    out = np.empty((h * w, 3), dtype=np.uint8)
    for i in range(3):
        s = scores[:, i].numpy()
        lo, hi = np.percentile(s, [LOW_PERCENTILE, HIGH_PERCENTILE])
        out[:, i] = np.clip((s - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).round().astype(np.uint8)
    return out.reshape(h, w, 3)


def feature_pca_image(features: np.ndarray, size: int = 512) -> Image.Image:
    """PCA colours upscaled with nearest neighbour, so each patch stays a visible square."""
    return Image.fromarray(feature_pca_rgb(features)).resize((size, size), Image.NEAREST)
