"""The slow exports, on a superqt worker: Export all (mesh + overlay + PCA map + parameters
JSON), the contact sheet, the turntable (GIF / MP4), the rigged body (GLB) and its skeleton's
motion (BVH). Fitting the rig's skeleton can take seconds (40 s for the full-size rig on two
CPU cores, then cached), rendering a turntable a few.

Each job is a plain function of plain values (the photo, its result, the rig): it never
touches a widget. Its files are written atomically (export/output_set.py's `publish`, or the
exporters' own atomic writers), after `check_outputs` found what it can before any work: a
missing folder, a read-only file, an output on the photo itself. It reports progress as short
sentences and ends with one line: what it wrote, or the one problem. One job at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from ..errors import UserError

Say = Callable[[str], None]


@dataclass
class ExportInput:
    """What a job needs, captured on the UI thread."""

    image: object  # (H, W, 3) uint8: the photo
    result: object  # MeshResult: the selected person's (the per-person pictures: turntable, PCA)
    image_path: Optional[Path] = None  # protected: no output may replace the photo
    frame: str = "camera"
    rig: object = None  # the MHR rig (pipeline.model.mhr): rigged GLB and BVH only
    box_given: bool = True
    results: tuple = ()  # every person's MeshResult (default: `result` alone)
    sources: tuple = ()  # per person: "user", "detector", "whole image", …
    scores: tuple = ()  # per person: the detector's score or None

    def __post_init__(self) -> None:
        if not self.results:
            self.results = (self.result,)
        if not self.sources:
            self.sources = ("box" if self.box_given else "whole image",) * len(self.results)
        if not self.scores:
            self.scores = (None,) * len(self.results)


def _check(paths: dict, inp: ExportInput, replace: bool = True) -> None:
    from ..export.output_set import Output, check_outputs

    inputs = [Output(inp.image_path, "photo")] if inp.image_path is not None else []
    check_outputs([Output(Path(p), what) for what, p in paths.items()], inputs=inputs, replace=replace)


def all_paths(folder: Path, stem: str) -> dict[str, Path]:
    """Export all's files in `folder`, by what they are."""
    folder = Path(folder)
    return {"mesh": folder / f"{stem}_mesh.obj", "overlay": folder / f"{stem}_overlay.png",
            "PCA image": folder / f"{stem}_pca.png", "JSON": folder / f"{stem}_params.json"}


def write_all(inp: ExportInput, folder: Path, stem: str, replace: bool, say: Say) -> str:
    from ..export.output_set import publish
    from ..export.service import OutputRequest, plan_writers

    paths = all_paths(folder, stem)
    request = OutputRequest(mesh=paths["mesh"], overlay=paths["overlay"], pca=paths["PCA image"],
                            json=paths["JSON"], frame=inp.frame)
    inputs = [inp.image_path] if inp.image_path is not None else []
    _check(paths, inp, replace)
    say("drawing the overlay and the feature map")
    writers, _report = plan_writers(request, inp.image, list(inp.results), list(inp.results), list(inp.sources),
                                    list(inp.scores), progress=say)
    say("writing the files")
    publish(writers, inputs=inputs, replace=replace)
    return f"Exported 4 files to {folder}: {', '.join(p.name for p in paths.values())} ({inp.frame} frame)"


def write_sheet(inp: ExportInput, path: Path, say: Say) -> str:
    from ..export.service import OutputRequest

    _check({"contact sheet": path}, inp)
    request = OutputRequest(sheet=Path(path))
    request.check_suffixes(len(inp.results))
    _write_through_service(inp, request, say)
    return f"Contact sheet saved: {path}"


def write_turntable(inp: ExportInput, path: Path, say: Say) -> str:
    from ..export.turntable_file import check_turntable_suffix, save_turntable

    check_turntable_suffix(Path(path))
    _check({"turntable": path}, inp)
    frames = []

    def progress(done: int, total: int) -> None:
        frames.append(total)
        if done == 1 or done % 6 == 0 or done == total:
            say(f"drawing the turntable: frame {done} of {total}")

    save_turntable(Path(path), inp.result.vertices_camera, inp.result.faces, progress=progress)
    return f"Turntable saved: {path} ({frames[-1] if frames else 0} frames, one full turn)"


def _write_through_service(inp: ExportInput, request, say: Say = lambda m: None, everyone: bool = True) -> str:
    """One file planned by the export service (as `infer` and Export all write it), of every
    person (`everyone`) or the selected one, published atomically; returns the service's report
    line for it."""
    from ..export.output_set import publish
    from ..export.service import plan_writers

    if everyone:
        results, sources, scores = list(inp.results), list(inp.sources), list(inp.scores)
    else:
        results, sources, scores = [inp.result], ["box" if inp.box_given else "whole image"], [None]
    writers, report = plan_writers(request, inp.image, results, results, sources, scores, progress=say, rig=inp.rig)
    say("writing the file")
    publish(writers, inputs=[inp.image_path] if inp.image_path else [])
    return report[0].split(": ", 1)[1]


def write_mesh(inp: ExportInput, path: Path, say: Say = lambda m: None) -> str:
    """The mesh file: one person's mesh, or with several a scene with an object per person."""
    from ..export.service import OutputRequest

    request = OutputRequest(mesh=Path(path), frame=inp.frame)
    request.check_suffixes(len(inp.results))
    _check({"mesh": path}, inp)
    return _write_through_service(inp, request, say)


def write_json(inp: ExportInput, path: Path, say: Say = lambda m: None) -> str:
    """The parameters JSON: one person's, or with several `"people": [...]`."""
    from ..export.service import OutputRequest

    request = OutputRequest(json=Path(path))
    request.check_suffixes(len(inp.results))
    _check({"JSON": path}, inp)
    return _write_through_service(inp, request, say)


def write_rigged(inp: ExportInput, path: Path, say: Say) -> str:
    from ..export.service import OutputRequest

    request = OutputRequest(mesh=Path(path), rigged=True)
    request.check_suffixes(len(inp.results))
    if inp.rig is None:
        raise UserError("a rigged export needs the loaded model's MHR rig: load a model first")
    _check({"rigged body": path}, inp)
    return f"Rigged body saved: {_write_through_service(inp, request, say)}"


def write_bvh(inp: ExportInput, path: Path, say: Say) -> str:
    from ..export.service import OutputRequest

    request = OutputRequest(bvh=Path(path))
    request.check_suffixes(1)
    if inp.rig is None:
        raise UserError("a rigged export needs the loaded model's MHR rig: load a model first")
    _check({"BVH motion": path}, inp)
    return f"Skeleton motion saved: {_write_through_service(inp, request, say, everyone=False)}"


class _Relay(QObject):
    progress = Signal(int, str)  # job id, sentence


class ExportJobs(QObject):
    """Runs one export job at a time on a pool thread; all its methods run on the UI thread."""

    progress = Signal(str)  # what the running job does, as a sentence
    finished = Signal(str)  # what it wrote
    failed = Signal(str)  # the one problem
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._id = 0
        self.running = False

    def start(self, job: Callable[..., str], *args) -> bool:
        """Run `job(*args, say)` on a worker; False (and a message) if one already runs."""
        if self.running:
            self.failed.emit("Another export is still running: wait for it to finish")
            return False
        from .worker import describe_error

        self._id += 1
        jid, relay = self._id, self._relay

        def say(text: str) -> None:
            try:
                relay.progress.emit(jid, text)
            except RuntimeError:  # the window is gone
                pass

        def work() -> tuple[bool, str]:
            try:
                return True, job(*args, say)
            except BaseException as exc:  # noqa: BLE001 - every failure becomes one message
                return False, describe_error(exc)[0]

        self.running = True
        self.busyChanged.emit(True)
        create_worker(work, _connect={"returned": self._on_done}, _start_thread=True)
        return True

    def _on_progress(self, jid: int, text: str) -> None:
        if jid == self._id and self.running:
            self.progress.emit(text[:1].upper() + text[1:] + "…")

    def _on_done(self, outcome: tuple[bool, str]) -> None:
        self.running = False
        self.busyChanged.emit(False)
        ok, text = outcome
        (self.finished if ok else self.failed).emit(text)
