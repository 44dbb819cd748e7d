"""What a batch run computes, and its fingerprint.

The fingerprint covers everything that changes an output file or a manifest line: the model
(its config's content and its files' sizes: hashing a 2-GB checkpoint on every run would cost
more than it saves, and a retrained checkpoint of the very same size is not a case we meet),
the detector likewise, how people are found, the mode, the backbone backend and precision, the
mesh frame and the formats. The device is left out: the same settings on another GPU, or the
CPU, give the same people to float rounding, and a job done on one need not be redone on
another. A rerun with the same fingerprint skips every photo already done; another fingerprint
recomputes them into other folders, so earlier outputs are never overwritten by different ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..export.mesh_file import FRAMES, MESH_FORMATS
from ..runtime.choices import MODES

MESH_KINDS = tuple(MESH_FORMATS.values())  # obj, ply, glb, stl
FORMATS = MESH_KINDS + ("json",)  # json: the person's params.json (parameters, keypoints, camera)
PEOPLE = ("whole", "detect")  # the photo as one person, or the detector's people


def parse_formats(text: str) -> tuple[str, ...]:
    names = [t.strip().lower().lstrip(".") for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UserError(f"unknown output format {', '.join(unknown) or repr(text)}: use a comma list of "
                        f"{', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))  # each once, in the order given


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_identity(model_dir: Path) -> dict:
    from ..model.model_folder import find_model_files

    files = find_model_files(model_dir)  # ModelFolderError (one line) before anything runs
    return {"config_sha256": _file_sha256(files.config), "checkpoint_bytes": files.checkpoint.stat().st_size,
            "rig_bytes": files.mhr_rig.stat().st_size}


def detector_identity(folder: Path) -> dict:
    from ..model.detector_folder import CONFIG_FILE, WEIGHTS_FILE, read_detector_folder

    read_detector_folder(folder)  # a broken folder fails now, not on the first photo
    return {"config_sha256": _file_sha256(folder / CONFIG_FILE),
            "weights_bytes": (folder / WEIGHTS_FILE).stat().st_size}


@dataclass(frozen=True)
class BatchSettings:
    model_dir: Path
    formats: tuple[str, ...] = ("obj",)
    frame: str = "camera"
    mode: str = "body"
    people: str = "whole"
    detector_dir: Optional[Path] = None
    min_score: float = 0.5
    max_people: int = 20
    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    # Filled by `checked()`: the identities that go into the fingerprint.
    identities: dict = field(default_factory=dict, compare=False)

    def checked(self) -> "BatchSettings":
        """These settings with the model's (and detector's) identity, every choice validated:
        each mistake is one UserError before a model loads."""
        if self.frame not in FRAMES:
            raise UserError(f"unknown mesh frame {self.frame!r}: use {' or '.join(FRAMES)}")
        if self.mode not in MODES:
            raise UserError(f"unknown mode {self.mode!r}: use {' or '.join(MODES)}")
        if self.people not in PEOPLE:
            raise UserError(f"unknown way to find people {self.people!r}: use {' or '.join(PEOPLE)}")
        parse_formats(",".join(self.formats))
        ids = {"model": model_identity(self.model_dir)}
        if self.people == "detect":
            if self.detector_dir is None:
                raise UserError("no person detector: download it with `sam3dbody-gui download --detector`, or give "
                                "--detector DIR (or leave out --detect: each photo is then one person)")
            if self.max_people < 1:
                raise UserError("--max-people must be at least 1")
            if not 0.0 <= self.min_score <= 1.0:
                raise UserError("--min-score must be between 0 and 1")
            ids["detector"] = detector_identity(self.detector_dir)
        return BatchSettings(**{**asdict(self), "identities": ids})

    def computed(self) -> dict:
        """What changes the outputs (see the module notes), as plain JSON values."""
        values = {"formats": list(self.formats), "frame": self.frame, "mode": self.mode, "people": self.people,
                  "backend": self.backend, "precision": self.precision, "model": self.identities.get("model")}
        if self.people == "detect":
            values.update(detector=self.identities.get("detector"), min_score=self.min_score,
                          max_people=self.max_people)
        return values

    def fingerprint(self) -> str:
        if not self.identities:
            raise ValueError("fingerprint() needs checked() settings")
        text = json.dumps(self.computed(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_settings(out_dir: Path, settings: BatchSettings) -> Path:
    """OUTDIR/settings/<fingerprint>.json: what a fingerprint in the manifest stands for."""
    from ..atomic_file import write_bytes_atomic

    dest = Path(out_dir) / "settings" / f"{settings.fingerprint()}.json"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        values = {**settings.computed(), "model_dir": str(settings.model_dir),
                  "detector_dir": str(settings.detector_dir) if settings.detector_dir else None}
        write_bytes_atomic(dest, json.dumps(values, indent=1, sort_keys=True).encode("utf-8"))
    return dest
