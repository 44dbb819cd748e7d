"""Checking a model folder before use, cheaply, with a report a person can read.

`verify_model_folder` runs the checks `load_model_folder` relies on, without loading ~1 B
parameters: the files are there and readable (or why not: permission denied, a symlink loop,
...); model_config.yaml passes the schema; the checkpoint is read with mmap (tensor data stays
on disk) and every key and shape is compared with the architecture the config describes, built
on the meta device; the MHR rig is looked at inside (a TorchScript archive, which file
operations its code calls) without running it; backbone exports, if any, are complete.

The MHR rig is code: it is loaded and run (one rest-pose call against the checkpoint's mesh
size) only with `run_rig=True`, i.e. once the user chose the folder, after its SHA-256 was
compared with the Hub's record and the published hash. `deep=True` also reads every byte: all
weights finite, and every file's SHA-256 shown against the Hub's when the folder came from the
Hub. Every outcome is a line of the report, never a stack trace; `cancel` stops between steps.
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import UserError

OK, INFO, WARNING, ERROR = "ok", "info", "warning", "error"


@dataclass
class Check:
    name: str
    level: str  # ok | info | warning | error
    detail: str


@dataclass
class VerifyReport:
    folder: Path
    checks: list[Check] = field(default_factory=list)
    rig_run: bool = False  # the MHR rig was loaded and called
    deep: bool = False
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not any(c.level == ERROR for c in self.checks)

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.level == ERROR]

    def add(self, name: str, level: str, detail: str) -> None:
        self.checks.append(Check(name, level, detail))

    def text(self) -> str:
        marks = {OK: "ok  ", INFO: "info", WARNING: "warn", ERROR: "FAIL"}
        verdict = "NOT usable" if not self.ok else "usable" if self.rig_run else \
            "usable as far as checked; the MHR rig (code) was not run"
        lines = [f"model folder {self.folder}: {verdict}"]
        lines += [f"  {marks[c.level]}  {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def first_error(self) -> str:
        e = self.errors
        return f"{e[0].name}: {e[0].detail}" if e else ""


def _size(path: Path) -> str:
    from ..units import format_size

    try:
        return format_size(path.stat().st_size)
    except OSError:
        return "?"


def verify_model_folder(folder: Path, deep: bool = False, run_rig: Optional[bool] = None,
                        cancel: Optional[threading.Event] = None,
                        progress: Optional[Callable[[str], None]] = None) -> VerifyReport:
    """`run_rig` (default: `deep`) loads and calls the MHR rig: only for a folder the user chose."""
    from .file_checks import Cancelled

    run_rig = deep if run_rig is None else run_rig
    report = VerifyReport(Path(folder).expanduser(), rig_run=False, deep=deep)
    try:
        _verify(report, deep, run_rig, cancel, progress or (lambda text: None))
    except Cancelled:
        report.cancelled = True
        report.add("verification", ERROR, "cancelled before it finished")
    return report


def _verify(report: VerifyReport, deep: bool, run_rig: bool, cancel, say: Callable[[str], None]) -> None:
    import torch

    from .checkpoint_file import read_checkpoint
    from .config import load_model_config
    from .file_checks import Cancelled
    from .meta_build import meta_model_building
    from .model_folder import _mesh_size, check_state, find_model_files
    from .sam3d_body import SAM3DBody

    def checkpoint_stop() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()

    folder = report.folder
    checkpoint_stop()
    say("checking the files")
    try:
        files = find_model_files(folder)
    except UserError as exc:
        report.add("files", ERROR, str(exc))
        return
    report.add("files", OK, f"model.ckpt ({_size(files.checkpoint)}), {files.config.name}, "
                            f"assets/mhr_model.pt ({_size(files.mhr_rig)})")

    try:
        config = load_model_config(files.config)
        report.add("config", OK, f"{config.backbone_type} backbone, decoder depth {config.decoder.depth}, "
                                 f"{config.crop_size}px crops")
    except UserError as exc:
        report.add("config", ERROR, str(exc))
        config = None
    except Exception as exc:  # noqa: BLE001
        report.add("config", ERROR, f"{files.config} could not be read ({type(exc).__name__}: {exc})")
        config = None

    checkpoint_stop()
    say("reading the checkpoint's tensor names and shapes")
    num_vertices, state = None, None
    try:
        contents = read_checkpoint(files.checkpoint)  # mmap: the tensor data is not read
        state = contents.state_dict
        num_vertices, num_faces = _mesh_size(state)
        if config is not None:
            with meta_model_building():
                model = SAM3DBody(config, num_vertices, num_faces, with_backbone=True)
            checked = check_state(model.state_dict(), state, config)
            if not checked.ok:
                report.add("checkpoint", ERROR, checked.message().removeprefix("checkpoint "))
            else:
                ignored = checked.foreign + checked.rig
                note = (f"; {len(ignored)} tensors under prefixes the model does not have, ignored "
                        f"(e.g. {ignored[0]})") if ignored else ""
                report.add("checkpoint", WARNING if ignored else OK,
                           f"{len(state)} tensors, every key and shape matches ({num_vertices} vertices){note}")
        if contents.needed_inert_loading:
            report.add("checkpoint objects", INFO, "non-tensor objects in the file are read as inert placeholders")
    except UserError as exc:
        report.add("checkpoint", ERROR, str(exc))
    except Exception as exc:  # noqa: BLE001
        report.add("checkpoint", ERROR, f"{files.checkpoint} could not be read ({type(exc).__name__}: {exc})")

    if deep and state is not None:
        _check_finite(report, state, checkpoint_stop, say)
    rig_digest = _check_rig(report, files, num_vertices, run_rig, cancel, say)
    _check_exports(report, files)
    if deep:
        _check_hashes(report, files, {files.mhr_rig: rig_digest}, cancel, say)
    from .model_folder import is_synthetic

    if is_synthetic(folder):
        report.add("weights", WARNING, "a synthetic demo model: its weights are random")


def _check_finite(report: VerifyReport, state: dict, checkpoint_stop, say) -> None:
    """Read every weight (deep only): a NaN or inf in the file poisons every result."""
    import torch

    say("checking that every weight is finite")
    bad = []
    for key, value in state.items():
        checkpoint_stop()
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            bad.append(key)
    if bad:
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        report.add("weights finite", ERROR, f"model.ckpt has non-finite values (NaN or inf) in {bad[0]}{more}")
    else:
        report.add("weights finite", OK, f"all {len(state)} tensors hold finite values")


def _hash(path: Path, cancel, say) -> str:
    from .file_checks import sha256_file

    def step(done: int, total: int) -> None:
        say(f"SHA-256 of {path.name}: {_format(done)} of {_format(total)}")

    return sha256_file(path, cancel, step)


def _format(n: int) -> str:
    from ..units import format_size

    return format_size(n)


def _check_rig(report: VerifyReport, files, num_vertices, run_rig: bool, cancel, say) -> Optional[str]:
    """Inspect the rig without running it; with `run_rig`, hash, compare, then load and call it.
    Returns its SHA-256 when it was computed."""
    from . import mhr_rig
    from .file_checks import hub_record, inspect_torchscript
    from .model_folder import RIG_PATH

    path = files.mhr_rig
    say("looking inside the MHR rig (without running it)")
    info = inspect_torchscript(path)
    if info.problem:
        report.add("MHR rig", ERROR, f"{path} {info.problem}")
        return None
    plural = "s" if info.code_files != 1 else ""
    level, notes = OK, [f"TorchScript archive ({info.code_files} code file{plural})"]
    if info.file_ops:
        level = WARNING
        notes.append(f"its code calls {', '.join(info.file_ops)}: it can read or write files when run; "
                     "use it only if you trust where it came from")
    if not run_rig or num_vertices is None:
        notes.append("not run: a rig is code, it runs only once you use this folder")
        report.add("MHR rig", level, "; ".join(notes))
        return None

    digest = _hash(path, cancel, say)
    record = hub_record(files.folder, RIG_PATH.as_posix())
    if record is not None and record.digest != digest:
        report.add("MHR rig", ERROR, f"SHA-256 {digest} differs from the Hub's ({record.digest}, from "
                                     f"{record.where}): the file changed after the download; it was not run")
        return digest
    if record is not None:
        notes.append(f"SHA-256 {digest} matches the Hub's ({record.where})")
    published = mhr_rig.PUBLISHED_MHR_RIG_SHA256
    if published is None:
        notes.append(("" if record is not None else f"SHA-256 {digest}: ")
                     + "unverified (this app knows no published SHA-256 of the released rig)")
    elif digest == published:
        notes.append(f"SHA-256 {digest} is the published one of {mhr_rig.RIG_REPO_FILE}")
    else:
        level = WARNING
        notes.append(f"SHA-256 {digest} differs from the published {published} of {mhr_rig.RIG_REPO_FILE}: "
                     "not the released rig")
    say("loading and running the MHR rig once (rest pose)")
    try:
        mhr_rig.check_mhr_rig(mhr_rig.load_mhr_rig(path, "cpu"), num_vertices, "cpu")
    except UserError as exc:
        report.add("MHR rig", ERROR, str(exc))
        return digest
    except Exception as exc:  # noqa: BLE001
        report.add("MHR rig", ERROR, f"{type(exc).__name__}: {exc}")
        return digest
    report.rig_run = True
    notes.append(f"loads; {num_vertices} vertices like the checkpoint")
    report.add("MHR rig", level, "; ".join(notes))
    return digest


def _check_hashes(report: VerifyReport, files, known: dict, cancel, say) -> None:
    """Deep only: every file's SHA-256, against the Hub's where huggingface_hub recorded it."""
    from .model_folder import ONNX_CANDIDATES, PT2_CANDIDATES, find_backbone_file
    from .file_checks import hub_record, matches_record

    paths = [files.checkpoint, files.config, files.mhr_rig]
    for found in (find_backbone_file(files, ONNX_CANDIDATES), find_backbone_file(files, PT2_CANDIDATES)):
        if found is not None:
            paths.append(found)
            data = found.with_name(found.name + ".data")
            if data.is_file():
                paths.append(data)
    for path in paths:
        rel = path.relative_to(files.folder).as_posix() if path.is_relative_to(files.folder) else str(path)
        name = f"SHA-256 {rel}"
        try:
            digest = known.get(path) or _hash(path, cancel, say)
        except OSError as exc:
            from ..errors import describe_os_error

            report.add(name, ERROR, f"cannot be read: {describe_os_error(exc)}")
            continue
        record = hub_record(files.folder, rel)
        if record is None:
            report.add(name, INFO, f"{digest} (not from the Hub: no record to compare with)")
        elif matches_record(path, record, digest):
            report.add(name, OK, f"{digest} matches the Hub's ({record.where})")
        else:
            report.add(name, ERROR, f"{digest} differs from the Hub's {record.algorithm} {record.digest} "
                                    f"({record.where}): the file changed after the download")


def _check_exports(report: VerifyReport, files) -> None:
    from .model_folder import ONNX_CANDIDATES, PT2_CANDIDATES, find_backbone_file
    from .file_checks import file_problem

    onnx = find_backbone_file(files, ONNX_CANDIDATES)
    if onnx is None:
        report.add("backbone ONNX", INFO, "none (optional: the TensorRT backend needs it)")
    else:
        data = onnx.with_name(onnx.name + ".data")
        if onnx.name.startswith("embedl") and not data.is_file():
            report.add("backbone ONNX", ERROR, f"{onnx.name} is there but its weights {data.name} are not")
        else:
            extra = f" + {data.name} ({_size(data)})" if data.is_file() else ""
            report.add("backbone ONNX", OK, f"{onnx.name} ({_size(onnx)}){extra}")
    pt2 = find_backbone_file(files, PT2_CANDIDATES)
    if pt2 is None:
        report.add("backbone .pt2", INFO, "none (optional: the pt2 backend needs it)")
    elif file_problem(pt2) is not None:
        report.add("backbone .pt2", ERROR, f"{pt2.name} {file_problem(pt2)}")
    elif not zipfile.is_zipfile(pt2):
        report.add("backbone .pt2", ERROR, f"{pt2.name} is not a .pt2 archive (truncated or corrupt?)")
    else:
        report.add("backbone .pt2", OK, f"{pt2.name} ({_size(pt2)})")
