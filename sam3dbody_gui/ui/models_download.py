"""The Models dialog's download: SAM 3D Body's files (and, when asked, the person detector's)
fetched by hub.py on a superqt worker, then the model folder verified, all off the UI thread.

A `DownloadJob` is one download. It reports throttled progress, then `finished` or `failed`
(as one line); `cancel()` asks hub.download to stop (a large file's partial download is kept,
and the next download resumes it). The work itself gets only plain values: the dialog (and
the job with it) may be closed and deleted while a transfer still runs; the transfer then
stops at its next check of the cancel event and its result goes nowhere.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Optional

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from .. import hub
from ..errors import UserError

PROGRESS_INTERVAL_S = 0.1


def emit_safely(signal, *args) -> None:
    """Emit from a pool thread; the receiving dialog may be gone by then."""
    try:
        signal.emit(*args)
    except RuntimeError:  # the C++ object was deleted: nobody is listening any more
        pass


@dataclass
class DownloadOutcome:
    result: Optional[hub.DownloadResult] = None  # the model's files
    report: object = None  # VerifyReport of the model folder, None if it is incomplete
    detector: Optional[hub.DownloadResult] = None  # the detector's files, when asked for
    error: str = ""
    cancelled: bool = False


def describe_progress(p) -> tuple[Optional[int], str, str]:
    """(bar value of 1000 or None, bar text, status line) for a hub.DownloadProgress."""
    if p.phase == "checking":
        return None, f"checking {p.index}/{p.count}", f"Checking {p.file} on Hugging Face…"
    value, shown, status = None, "", ""
    if p.overall_total:
        value = round(1000 * p.overall_done / p.overall_total)
        shown = f"{hub.format_size(p.overall_done)} of {hub.format_size(p.overall_total)}"
    if p.file is not None:
        verb = "Checking the SHA-256 of" if p.phase == "verifying" else "Downloading"
        status = (f"{verb} {p.file.filename} ({p.index} of {p.count}): "
                  f"{hub.format_size(p.done)} of {hub.format_size(p.total)}")
    return value, shown, status


def describe_outcome(outcome: "DownloadOutcome") -> tuple[str, str]:
    """(status line, level) once a download ended without an error."""
    result, report = outcome.result, outcome.report
    got = f"{len(result.downloaded)} files downloaded ({hub.format_size(result.bytes_downloaded)})" \
        if result.downloaded else "nothing to download: every file was already there"
    kept = "".join(f" Kept your {f.filename}: {why}." for f, why in result.kept)
    if outcome.detector is not None:
        kept += " The person detector is installed." if outcome.detector.folder else \
            " The person detector is still incomplete."
    if report is not None and report.ok:
        return f"Done: {got}.{kept} The model is verified; press Use this model.", "ok"
    if report is not None:
        return f"Downloaded, but the folder is not usable: {report.first_error()}.{kept}", "error"
    return f"Done: {got}.{kept}", "ok"


class _Relay(QObject):
    progress = Signal(object)  # hub.DownloadProgress


def run_download(files, options: hub.HubOptions, detector_options: Optional[hub.HubOptions],
                 cancel: threading.Event, report) -> DownloadOutcome:
    """The worker's whole job (plain Python; `report(progress)` is throttled by the caller)."""
    try:
        result = hub.download(files, options, report, cancel)
        verified = None
        if result.folder is not None:
            from ..model.verify import verify_model_folder

            verified = verify_model_folder(result.folder)
        detector = None
        if detector_options is not None:
            from ..hub_detector import download_detector

            detector = download_detector(detector_options, report, cancel)
        return DownloadOutcome(result, verified, detector)
    except hub.DownloadCancelled as exc:
        return DownloadOutcome(error=str(exc), cancelled=True)
    except UserError as exc:
        return DownloadOutcome(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - shown in the dialog, never a crash
        return DownloadOutcome(error=f"{type(exc).__name__}: {exc}")


class DownloadJob(QObject):
    progress = Signal(object)  # hub.DownloadProgress
    finished = Signal(object)  # DownloadOutcome without error
    failed = Signal(str, bool)  # message, cancelled

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay(self)
        self._relay.progress.connect(self.progress)
        self._cancel: Optional[threading.Event] = None
        self._ended = threading.Event()
        self._ended.set()

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def start(self, files, options: hub.HubOptions, detector: bool = False) -> None:
        """Fetch `files` into `options`' place; with `detector`, also the person detector, into
        the Hugging Face cache (where the app looks for it) whatever folder the model goes to."""
        cancel = self._cancel = threading.Event()
        ended = self._ended
        ended.clear()
        relay, files = self._relay, list(files)
        detector_options = replace(options, local_dir=None) if detector else None
        last = [0.0]

        def report(p) -> None:
            now = time.monotonic()
            if p.phase != "downloading" or now - last[0] >= PROGRESS_INTERVAL_S or p.done == p.total:
                last[0] = now
                emit_safely(relay.progress, p)

        def work() -> DownloadOutcome:
            try:
                return run_download(files, options, detector_options, cancel, report)
            finally:
                ended.set()

        create_worker(work, _connect={"returned": self._on_done}, _start_thread=True)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def abandon(self, timeout_ms: int = 5000) -> bool:
        """Cancel, stop reporting, and wait up to `timeout_ms` for the transfer to stop; False if
        it still runs (it then ends by itself on its pool thread, reporting to no one)."""
        self.cancel()
        for signal in (self.progress, self.finished, self.failed):
            try:
                signal.disconnect()
            except (RuntimeError, TypeError):
                pass
        return self._ended.wait(timeout_ms / 1000)

    def _on_done(self, outcome: DownloadOutcome) -> None:
        if outcome.error:
            self.failed.emit(outcome.error, outcome.cancelled)
        else:
            self.finished.emit(outcome)
