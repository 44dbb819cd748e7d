"""The Models dialog's folder check: model/verify.py's `verify_model_folder` (files, config,
checkpoint keys and shapes against the architecture, the MHR rig loaded and run once, and with
`deep` every byte hashed) on a superqt worker, so the window never freezes.

The rig is TorchScript, i.e. code: a `Verifier` is only started on a folder the user chose
(Use / Verify), never while merely listing files. One check at a time; each has an id, and a
result whose check was given up (cancelled, dialog closed) is dropped when it arrives.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from .models_download import emit_safely

_IDS = itertools.count(1)


class _Relay(QObject):
    """Carries a check's progress and result from the pool thread (queued signals: the
    worker never touches a widget)."""

    progress = Signal(int, str)  # check id, what it is doing
    done = Signal(int, object, str)  # check id, VerifyReport | None, error


class Verifier(QObject):
    progress = Signal(str)
    finished = Signal(object, str)  # VerifyReport | None (the check itself failed), error

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._id = 0  # the running check's id (0: none)
        self._cancel: Optional[threading.Event] = None
        self.then: Optional[Callable[[object], None]] = None  # what the dialog does with the report
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.done.connect(self._on_done)

    @property
    def running(self) -> bool:
        return self._id != 0

    def start(self, folder: Path, deep: bool = False, then: Optional[Callable[[object], None]] = None) -> bool:
        """Check `folder` (its rig is run: only for a folder the user chose); False if one runs."""
        if self.running:
            return False
        from ..model.verify import verify_model_folder

        vid = self._id = next(_IDS)
        cancel = self._cancel = threading.Event()
        self.then = then
        relay, folder = self._relay, Path(folder)

        def say(text: str) -> None:
            emit_safely(relay.progress, vid, text)

        def run() -> None:
            try:
                report = verify_model_folder(folder, deep=deep, run_rig=True, cancel=cancel, progress=say)
                emit_safely(relay.done, vid, report, "")
            except Exception as exc:  # noqa: BLE001 - shown in the dialog, never a crash
                emit_safely(relay.done, vid, None, f"verification failed: {type(exc).__name__}: {exc}")

        create_worker(run, _start_thread=True)
        return True

    def cancel(self) -> None:
        """Ask the check to stop; it reports a cancelled report when it does."""
        if self._cancel is not None:
            self._cancel.set()

    def abandon(self) -> None:
        """Stop listening: the running check ends by itself on its pool thread."""
        self.cancel()
        self._id, self._cancel, self.then = 0, None, None

    def _on_progress(self, vid: int, text: str) -> None:
        if vid == self._id:
            self.progress.emit(text)

    def _on_done(self, vid: int, report, error: str) -> None:
        if vid != self._id:
            return  # a check the dialog gave up on
        self._id, self._cancel = 0, None
        self.finished.emit(report, error)
