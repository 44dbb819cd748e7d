"""The photo with the mesh over it, the person box and the 2-D keypoints, at the photo's
resolution: what the photo panel shows and what File ▸ Export overlay and `infer --overlay` write.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..pipeline.result import MeshResult
from .mesh_render import person_colour, render_people_layer

KEYPOINT_COLOUR = (255, 70, 40)
BOX_COLOUR = (255, 196, 61)


def render_overlay(image: np.ndarray, result: MeshResult | Sequence[MeshResult], opacity: float = 0.7,
                   show_keypoints: bool = True, draw_box: bool = True,
                   mesh_layer: Optional[np.ndarray] = None, colours: Optional[Sequence[int]] = None) -> Image.Image:
    """(H, W, 3) uint8 photo → RGB overlay image at the photo's resolution, with one person's or
    several people's meshes (one z-buffer). `mesh_layer`: an RGBA layer from `render_people_layer`
    already made at full resolution (the window keeps one). `colours`: each person's colour index
    (default: their order)."""
    results = [result] if isinstance(result, MeshResult) else list(result)
    colours = list(range(len(results))) if colours is None else list(colours)
    photo = Image.fromarray(image).convert("RGBA")
    if mesh_layer is None or mesh_layer.shape[:2] != image.shape[:2]:
        mesh_layer, _ = render_people_layer(results, colours=colours)
    layer = Image.fromarray(mesh_layer, "RGBA")
    alpha = np.asarray(layer.getchannel("A"), dtype=np.float32) * float(np.clip(opacity, 0.0, 1.0))
    layer.putalpha(Image.fromarray(alpha.round().astype(np.uint8), "L"))
    out = Image.alpha_composite(photo, layer)
    draw = ImageDraw.Draw(out)
    for index, person in zip(colours, results):
        if draw_box:
            colour = BOX_COLOUR if len(results) == 1 else tuple(int(c) for c in person_colour(index))
            x1, y1, x2, y2 = person.crop.bbox_xyxy
            draw.rectangle([x1, y1, x2, y2], outline=colour + (255,), width=max(1, photo.size[0] // 400))
        if show_keypoints:
            r = max(2.0, photo.size[0] / 300)
            for x, y in person.keypoints_2d:
                if np.isfinite(x) and np.isfinite(y):
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=KEYPOINT_COLOUR + (255,))
    return out.convert("RGB")
