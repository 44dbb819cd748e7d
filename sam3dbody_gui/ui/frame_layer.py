"""A video frame and its people, ready to draw: what the video panel's frame view shows, made on
a worker thread (the mesh layer is the slow part). Qt-free.

Each person's mesh is drawn in the colour of their track id (export/mesh_render's
`person_colour(id - 1)`, so id 1 has the photo's mesh colour), in one z-buffer, as a transparent
RGBA layer at most MAX_LAYER_SIDE on its longer side; the view composites it over the frame, so
the keypoint switch needs no new layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..export.mesh_render import person_colour, render_people_layer

MAX_LAYER_SIDE = 1280


def colour_key(track_id: int) -> int:
    """The person_colour index of a track id (ids start at 1)."""
    return max(int(track_id) - 1, 0)


def id_colour(track_id: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in person_colour(colour_key(track_id)))


@dataclass
class ShownFrame:
    index: int
    rgb: np.ndarray  # (H, W, 3) uint8, as decoded
    people: list = field(default_factory=list)  # [(track id, MeshResult)]
    layer: Optional[np.ndarray] = None  # (h, w, 4) uint8 RGBA, or None without people
    time_s: float = 0.0
    note: str = ""  # e.g. "does not decode"

    @property
    def ids(self) -> list[int]:
        return [pid for pid, _ in self.people]


def shown_frame(index: int, rgb: np.ndarray, people: Sequence[tuple[int, object]], time_s: float = 0.0,
                max_side: int = MAX_LAYER_SIDE) -> ShownFrame:
    """The frame with its people's mesh layer (run on a worker)."""
    people = list(people)
    layer = None
    if people:
        layer, _ = render_people_layer([r for _, r in people], max_side=max_side,
                                       colours=[colour_key(pid) for pid, _ in people])
    return ShownFrame(index, rgb, people, layer, time_s)
