"""Files that ship inside the package: the sample photo (a public-domain NASA portrait) and the
person box that frames it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_IMAGE = "sample_astronaut.jpg"
SAMPLE_BOX = (20.0, 10.0, 370.0, 512.0)


def sample_image_path() -> Path:
    return Path(str(resources.files("sam3dbody_gui") / "resources" / SAMPLE_IMAGE))
