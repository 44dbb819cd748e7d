"""Getting the person detector from Hugging Face: `PekingU/rtdetr_v2_r18vd` (RT-DETRv2-R18, Apache-2.0).

The detector is one more repository for hub.py's machinery, used as it is: the same cache (or a
`local_dir` folder), token, endpoint, HF_HUB_OFFLINE, the check of every file before any
transfer, the kept partial file that the next download resumes (model.safetensors is ~81 MB, over
hub.RESUMABLE_MIN_BYTES), SHA-256 verification, progress callbacks, cancelling and the messages.
Only where the files end up differs from the SAM 3D Body model: the repository is a loadable
folder as it is (config.json, preprocessor_config.json and model.safetensors side by side), so the
cache's snapshot folder is used directly, with no folder of links.

Found, in order: the place `options` names (the HF cache by default, or its local_dir), then the
app's own folder (`detector_app_folder()`), where a copy can be put by hand for a machine
without network.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from . import hub
from .app_paths import data_dir
from .hub import DownloadResult, FileStatus, HubOptions, ProgressFn, RepoFile
from .model.detector_folder import DETECTOR_FILES as _NAMES, INSTALL_HINT

DETECTOR_REPO = "PekingU/rtdetr_v2_r18vd"
DETECTOR_PAGE = f"{hub.HF_SITE}/{DETECTOR_REPO}"
DETECTOR_LICENSE = "Apache-2.0"
DETECTOR_TITLE = "RT-DETRv2-R18 person detector"
_WHAT = {"config.json": "detector architecture and COCO classes",
         "preprocessor_config.json": "detector image settings (640x640)",
         "model.safetensors": "detector weights (~81 MB)"}
DETECTOR_FILES = tuple(RepoFile(DETECTOR_REPO, name, _WHAT[name]) for name in _NAMES)


def detector_app_folder() -> Path:
    """The app's own detector folder (files put there by hand are used when the cache has none)."""
    return data_dir("models", "rtdetr_v2_r18vd")


def _complete_folder(statuses: Sequence[FileStatus]) -> Optional[Path]:
    """The folder holding every file, when they are all present side by side."""
    if not statuses or not all(s.present for s in statuses):
        return None
    parents = {s.path.parent for s in statuses}  # one snapshot (cache) or the local_dir
    return parents.pop() if len(parents) == 1 else None


def find_installed_detector(options: HubOptions = HubOptions()) -> Optional[Path]:
    """A complete detector folder on disk, or None. No network; never raises (a start-up probe)."""
    try:
        folder = _complete_folder(hub.local_status(DETECTOR_FILES, options))
        if folder is None:
            folder = _complete_folder(hub.local_status(DETECTOR_FILES, HubOptions(local_dir=detector_app_folder())))
        return folder
    except Exception:  # noqa: BLE001 - any problem means "none found"
        return None


def transformers_problem() -> Optional[str]:
    """Why the detector cannot run on this install (transformers missing), or None. Imports nothing."""
    if importlib.util.find_spec("transformers") is None:
        return f"needs the transformers package: {INSTALL_HINT}"
    return None


@dataclass
class DetectorStatus:
    """What the Models dialog's detector row and `download --detector` say."""

    folder: Optional[Path]  # a complete detector folder, or None
    statuses: list[FileStatus]
    partial: int  # bytes of an interrupted download that the next one resumes
    problem: Optional[str]  # the detector cannot run here (no transformers), or None

    @property
    def installed(self) -> bool:
        return self.folder is not None

    def describe(self) -> str:
        if self.installed:
            size = sum(s.size or 0 for s in self.statuses if s.present)
            text = f"{DETECTOR_TITLE} ({DETECTOR_LICENSE}, {hub.format_size(size)}): {self.folder}"
        else:
            have = sum(s.present for s in self.statuses)
            text = (f"{DETECTOR_TITLE} ({DETECTOR_REPO}, {DETECTOR_LICENSE}): not downloaded"
                    + (f" ({have} of {len(self.statuses)} files)" if have else "")
                    + (f", {hub.format_size(self.partial)} of an interrupted download will be resumed"
                       if self.partial else "")
                    + "; get it with: sam3dbody-gui download --detector")
        return text + (f"; {self.problem}" if self.problem else "")


def detector_status(options: HubOptions = HubOptions()) -> DetectorStatus:
    """What is on disk (no network, works with HF_HUB_OFFLINE=1)."""
    statuses = hub.local_status(DETECTOR_FILES, options)
    folder = _complete_folder(statuses)
    if folder is None and options.local_dir is None:
        app = hub.local_status(DETECTOR_FILES, HubOptions(local_dir=detector_app_folder()))
        if _complete_folder(app) is not None:
            statuses, folder = app, _complete_folder(app)
    if options.local_dir is not None:
        partial = sum(s.partial for s in statuses)
    else:
        partial = hub.cached_partials(options, DETECTOR_REPO)
    return DetectorStatus(folder, statuses, partial, transformers_problem())


def download_detector(options: HubOptions = HubOptions(), progress: Optional[ProgressFn] = None,
                      cancel: Optional[threading.Event] = None) -> DownloadResult:
    """Fetch the detector's missing files with hub.download; `result.folder` is the detector folder
    (None while a file is missing), `result.statuses` the detector's three files."""
    result = hub.download(DETECTOR_FILES, options, progress, cancel)
    # hub.download describes the SAM 3D Body model folder; say where the detector is instead.
    result.statuses = hub.local_status(DETECTOR_FILES, options)
    result.folder = _complete_folder(result.statuses)
    return result


def cli_download_detector(dest: Optional[Path] = None, token: Optional[str] = None, out=None,
                          endpoint: Optional[str] = None) -> Path:
    """`sam3dbody-gui download --detector [--dest DIR]`: one progress bar on stderr, a summary on stdout.
    `endpoint`: another Hub address (default: HF_ENDPOINT or huggingface.co)."""
    from huggingface_hub.utils import logging as hf_logging
    from tqdm.std import tqdm as std_tqdm

    out = out or sys.stdout
    hf_logging.set_verbosity_error()
    options = HubOptions(local_dir=Path(dest).expanduser().resolve() if dest else None, token=token, endpoint=endpoint)
    print(f"{DETECTOR_TITLE}: {len(DETECTOR_FILES)} files from {DETECTOR_PAGE} ({DETECTOR_LICENSE}); "
          f"destination: the {options.where()}", file=out, flush=True)
    bars: dict[RepoFile, std_tqdm] = {}

    def show(p: hub.DownloadProgress) -> None:
        if p.phase not in ("downloading", "verifying") or p.file is None:
            return
        if p.file not in bars:
            for other in bars.values():
                other.close()
            bars[p.file] = std_tqdm(total=p.total, unit="B", unit_scale=True, unit_divisor=1024,
                                    desc=f"[{p.index}/{p.count}] {p.file.filename}", file=sys.stderr)
        bars[p.file].update(max(0, p.done - bars[p.file].n))

    try:
        result = download_detector(options, show)
    finally:
        for bar in bars.values():
            bar.close()
    hub.print_download_summary(result, out)
    if result.folder is None:
        raise hub.HubError("the detector's files are still incomplete: "
                           + ", ".join(str(m) for m in hub.missing_files(result.statuses)))
    print(f"detector folder: {result.folder}", file=out)
    if transformers_problem():
        print(f"note: the detector {transformers_problem()}", file=out)
    return result.folder
