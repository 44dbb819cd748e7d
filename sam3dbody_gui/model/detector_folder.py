"""Reading a person-detector folder: the layout of the Hugging Face repository `PekingU/rtdetr_v2_r18vd`.

    <folder>/config.json               RTDetrV2Config (model_type "rt_detr_v2", COCO id2label)
    <folder>/preprocessor_config.json  RTDetrImageProcessor settings: resize to 640x640, rescale 1/255
    <folder>/model.safetensors         the weights

The network is `transformers`' RTDetrV2ForObjectDetection, built from config.json alone: its
ResNet backbone is transformers' own (no timm), and nothing in it needs torchvision. Only the
files in the folder are read (local_files_only): nothing is fetched. transformers is an optional
package (the `detect` extra), imported here, inside the functions, so the rest of the app runs
without it. The image processor is not used: transformers' default one for RT-DETR needs
torchvision, and its settings are three numbers we apply ourselves (detector.py).

Every problem is one ModelFolderError naming the file and what to do, never a stack trace.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ModelFolderError, UserError, describe_os_error, first_line
from .file_checks import require_folder

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILE = "model.safetensors"
DETECTOR_FILES = (CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE)
MODEL_TYPE = "rt_detr_v2"
ARCHITECTURE = "RTDetrV2ForObjectDetection"
PERSON_LABEL = "person"
SYNTHETIC_MARKER = "SYNTHETIC.txt"  # as the synthetic SAM 3D Body folders: the weights are random
MIN_TRANSFORMERS = "4.49"  # the first release with RT-DETRv2
INSTALL_HINT = "pip install 'sam3dbody-gui[detect]' (or: pip install 'transformers>=4.49')"
_REDOWNLOAD = "download it again (sam3dbody-gui download --detector)"


class DetectorUnavailable(UserError):
    """transformers (the `detect` extra) is not installed, or too old for RT-DETRv2."""


@dataclass(frozen=True)
class Preprocess:
    """What preprocessor_config.json asks for, as applied to a photo before the network."""

    size_hw: tuple[int, int]  # the whole photo is resized (stretched) to this
    resample: int  # PIL's filter number (2: bilinear)
    rescale: Optional[float]  # pixel values times this (1/255), or None
    mean: Optional[tuple[float, float, float]]  # then (x - mean) / std, when normalising
    std: Optional[tuple[float, float, float]]


@dataclass(frozen=True)
class DetectorFolder:
    folder: Path
    config: dict
    preprocess: Preprocess
    person_id: int
    synthetic: bool


def _problem(path: Path) -> Optional[str]:
    """Why `path` is not a readable file, or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return "is missing" if exc.errno == errno.ENOENT and not path.is_symlink() else describe_os_error(exc)
    if not stat.S_ISREG(st.st_mode):
        return "is not a file"
    if not os.access(path, os.R_OK):
        return "cannot be read: permission denied"
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path} is not valid JSON ({first_line(exc)}): {_REDOWNLOAD}") from None
    except OSError as exc:
        raise ModelFolderError(f"{path} cannot be read: {describe_os_error(exc)}") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} is not a JSON object: {_REDOWNLOAD}")
    return data


def _person_id(config: dict, path: Path) -> int:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict):
        raise ModelFolderError(f"{path} has no id2label: not a COCO detector config; {_REDOWNLOAD}")
    ids = [k for k, v in id2label.items() if str(v).strip().lower() == PERSON_LABEL]
    if len(ids) != 1:
        raise ModelFolderError(f"{path} has {'no' if not ids else 'more than one'} '{PERSON_LABEL}' class in "
                               "id2label: this detector cannot find people")
    try:
        return int(ids[0])
    except ValueError:
        raise ModelFolderError(f"{path}: id2label key {ids[0]!r} is not a class number") from None


def _preprocess(data: dict, path: Path) -> Preprocess:
    if data.get("do_pad"):
        raise ModelFolderError(f"{path} asks for padding (do_pad), which this app does not do; "
                               f"expected the settings of {ARCHITECTURE}'s published repositories")
    size = data.get("size") or {}
    try:
        size_hw = (int(size["height"]), int(size["width"])) if data.get("do_resize", True) else None
    except (KeyError, TypeError, ValueError):
        size_hw = None
    if size_hw is None or min(size_hw) < 32 or max(size_hw) > 4096:
        raise ModelFolderError(f"{path}: expected a fixed resize ('size': {{'height': 640, 'width': 640}}), "
                               f"got {size!r}")
    try:
        rescale = float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else None
        mean = std = None
        if data.get("do_normalize", False):
            mean = tuple(float(v) for v in data["image_mean"])
            std = tuple(float(v) for v in data["image_std"])
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError("image_mean and image_std need 3 values, std above 0")
        resample = int(data.get("resample", 2))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"{path}: unusable image settings ({first_line(exc)})") from None
    return Preprocess(size_hw, resample, rescale, mean, std)


def read_detector_folder(folder: Path) -> DetectorFolder:
    """Check the files and read both JSON files (no transformers, no weights yet)."""
    folder = require_folder(folder, "detector folder")
    problems = [(name, _problem(folder / name)) for name in DETECTOR_FILES]
    bad = [f"{name} {why}" for name, why in problems if why]
    if bad:
        raise ModelFolderError(
            f"detector folder {folder}: {'; '.join(bad)} (expected the files of PekingU/rtdetr_v2_r18vd: "
            f"{', '.join(DETECTOR_FILES)}; sam3dbody-gui download --detector fetches them)")
    config_path = folder / CONFIG_FILE
    config = _read_json(config_path)
    if config.get("model_type") != MODEL_TYPE:
        raise ModelFolderError(
            f"{config_path} is for model_type {config.get('model_type')!r}, not {MODEL_TYPE!r}: this folder is "
            f"not an RT-DETRv2 detector (expected PekingU/rtdetr_v2_r18vd or another {ARCHITECTURE})")
    architectures = config.get("architectures") or [ARCHITECTURE]
    if ARCHITECTURE not in architectures:
        raise ModelFolderError(f"{config_path} is for {architectures}, not {ARCHITECTURE}")
    person_id = _person_id(config, config_path)
    preprocess = _preprocess(_read_json(folder / PREPROCESSOR_FILE), folder / PREPROCESSOR_FILE)
    return DetectorFolder(folder, config, preprocess, person_id, (folder / SYNTHETIC_MARKER).is_file())


def import_transformers():
    """The transformers classes for RT-DETRv2, or DetectorUnavailable saying how to install them."""
    try:
        import transformers
    except ImportError as exc:
        raise DetectorUnavailable(f"person detection needs the transformers package, which is not installed "
                                  f"({first_line(exc)}): {INSTALL_HINT}") from None
    try:
        from transformers import RTDetrV2Config, RTDetrV2ForObjectDetection
    except ImportError:
        raise DetectorUnavailable(f"transformers {transformers.__version__} has no RT-DETRv2 (it came in "
                                  f"{MIN_TRANSFORMERS}): pip install -U 'transformers>={MIN_TRANSFORMERS}'") from None
    return transformers, RTDetrV2Config, RTDetrV2ForObjectDetection


class _Quiet:
    """transformers' warnings and its "Loading weights" bar off while we load (our messages say
    what matters); the caller's settings back afterwards."""

    def __init__(self, transformers) -> None:
        self.log = transformers.utils.logging

    def __enter__(self):
        self.level, self.bar = self.log.get_verbosity(), self.log.is_progress_bar_enabled()
        self.log.set_verbosity_error()
        self.log.disable_progress_bar()

    def __exit__(self, *exc) -> None:
        self.log.set_verbosity(self.level)
        if self.bar:
            self.log.enable_progress_bar()


def build_detector(found: DetectorFolder):
    """The network with the folder's weights, in eval mode on the CPU, float32."""
    transformers, config_class, model_class = import_transformers()
    folder = found.folder
    with _Quiet(transformers):
        try:
            config = config_class.from_dict(dict(found.config))
        except Exception as exc:  # noqa: BLE001 - transformers' validation errors have many types
            raise ModelFolderError(f"{folder / CONFIG_FILE} is not a valid RT-DETRv2 config "
                                   f"({first_line(exc)}); {_REDOWNLOAD}") from None
        try:
            model, info = model_class.from_pretrained(str(folder), config=config, local_files_only=True,
                                                      output_loading_info=True)
        except Exception as exc:  # noqa: BLE001 - a truncated file, a shape mismatch, ...
            text = first_line(exc)
            why = ("its tensors do not fit config.json (shape mismatch)" if "mismatch" in text.lower()
                   else f"it cannot be read ({text})")
            raise ModelFolderError(f"{folder / WEIGHTS_FILE}: {why}; {_REDOWNLOAD}") from None
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(info.get("mismatched_keys") or ())
    if missing or mismatched:
        names = missing or [str(m) for m in mismatched]
        raise ModelFolderError(
            f"{folder / WEIGHTS_FILE} does not hold the weights config.json describes "
            f"({len(missing)} missing, {len(mismatched)} misshapen, e.g. {names[0]}); {_REDOWNLOAD}")
    return model.eval()
