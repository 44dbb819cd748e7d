"""What a clip's work file is keyed on, besides the clip and the pass options (`pass_settings`):
the model and its runtime, the detector, and where the work is kept. The command line and the
window build the key with these functions, so a clip started in one resumes in the other."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

WORK_FOLDER = "video-work"  # under the user cache


def default_work_dir() -> Path:
    from ..app_paths import cache_dir

    return cache_dir(WORK_FOLDER)


def model_settings(model_dir: Path, pipe, precision: str) -> dict:
    """The model's files (name, size, modification time), its backbone and decoder, its device
    and the precision asked for (`--precision`, "auto" by default)."""
    from ..model.model_folder import find_model_files

    files = find_model_files(model_dir)
    stamp = []
    for f in (files.checkpoint, files.config, files.mhr_rig):
        st = f.stat()
        stamp.append([f.name, st.st_size, st.st_mtime_ns])
    return {"folder": str(Path(model_dir).resolve()), "files": stamp, "backbone": pipe.backbone.info.label(),
            "decoder": pipe.decoder_label, "device": str(pipe.device), "precision": precision}


def detector_settings(folder: Optional[Path]) -> Optional[dict]:
    return None if folder is None else {"folder": str(Path(folder).resolve())}
