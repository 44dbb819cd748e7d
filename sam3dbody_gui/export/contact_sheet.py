"""The model card's contact sheet: the crop the model saw, the mesh over it, a ¾ view and a side
view, side by side with captions (one PNG)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..pipeline.preprocess import warp_crop_uint8
from ..pipeline.result import MeshResult
from .overlay import render_overlay
from .turnaround import BACKGROUND, render_turned

PANEL = 512
CAPTION_HEIGHT = 28
CAPTIONS = ("input crop", "mesh overlay", "3/4 view", "side view")  # ASCII: any font has the glyphs


def contact_sheet(image: np.ndarray, result: MeshResult, opacity: float = 0.7) -> Image.Image:
    """(H, W, 3) uint8 photo + its result → RGB image of 4 panels of PANEL px, captions below."""
    crop = warp_crop_uint8(image, result.crop)  # what the backbone saw, before normalisation
    overlay = np.asarray(render_overlay(image, result, opacity, show_keypoints=False, draw_box=False))
    overlay_crop = warp_crop_uint8(overlay, result.crop)  # the same region, with the mesh
    panels = [crop, overlay_crop, render_turned(result.vertices_camera, result.faces, 45.0, PANEL),
              render_turned(result.vertices_camera, result.faces, 90.0, PANEL)]
    sheet = Image.new("RGB", (PANEL * len(panels), PANEL + CAPTION_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for i, (panel, caption) in enumerate(zip(panels, CAPTIONS)):
        tile = Image.fromarray(panel).convert("RGB")
        if tile.size != (PANEL, PANEL):
            tile = tile.resize((PANEL, PANEL), Image.Resampling.BILINEAR)
        sheet.paste(tile, (i * PANEL, 0))
        width = draw.textlength(caption, font=font)
        draw.text((i * PANEL + (PANEL - width) / 2, PANEL + 5), caption, fill=(220, 224, 230), font=font)
    return sheet
