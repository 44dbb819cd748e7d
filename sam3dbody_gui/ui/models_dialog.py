"""Model ▸ Models…: what is installed, downloading it from Hugging Face, or choosing a folder.

Lists every file of the two repositories (present or missing, size, where), downloads the
missing ones on a worker thread (progress, cancel: the partial file of a large download is kept
and the next download resumes it), points at an existing folder, or picks the demo model. A
folder is verified (files, config, checkpoint keys and shapes against the architecture, the MHR
rig loaded and run once) before it is used, on a worker thread so the window never freezes,
and the report is shown instead of a stack trace. The rig is TorchScript, i.e. code: it is
loaded only for a folder the user chose (Use / Verify), never while merely listing files.

The dialog only says what to use (`chosen`); the main window applies it.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QFileDialog, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QRadioButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from .. import hub
from ..errors import UserError
from . import style
from .state import Settings

_ORPHANS: list = []  # download threads still finishing after their dialog closed
_VERIFY_IDS = itertools.count(1)
SAFETY_NOTE = ("<b>Safety:</b> the MHR body rig (<code>assets/mhr_model.pt</code>) is TorchScript, which is "
               "<b>code</b>, not just data: loading and running it can read and write files on this computer. "
               "The app loads a rig only from a folder you chose or downloaded; use rigs only from "
               f"<a href='{hub.MODEL_PAGE}'>{hub.MODEL_REPO}</a> or from someone you trust. (<code>model.ckpt</code> "
               "is read without running any code from it.)")
_URL = re.compile(r"(https://[^\s,;()]+[^\s,;().])")
PROGRESS_INTERVAL_S = 0.1


def _emit(signal, *args) -> None:
    """Emit from a worker thread; the dialog (and the relay with it) may be gone by then."""
    try:
        signal.emit(*args)
    except RuntimeError:  # the C++ object was deleted: nobody is listening any more
        pass


def linkify(text: str) -> str:
    """Plain text → rich text with clickable addresses."""
    return _URL.sub(r"<a href='\1'>\1</a>", html.escape(text, quote=False))


class DownloadWorker(QObject):
    """Runs hub.download on its thread; reports throttled progress, then the result and a
    verification report of the model folder (or the error)."""

    progress = Signal(object)  # hub.DownloadProgress
    finished = Signal(object, object)  # hub.DownloadResult, VerifyReport | None
    failed = Signal(str, bool)  # message, cancelled

    def __init__(self, files, options: hub.HubOptions, cancel: threading.Event) -> None:
        super().__init__()
        self.files, self.options, self.cancel = list(files), options, cancel
        self._last = 0.0

    def _report(self, p) -> None:
        now = time.monotonic()
        if p.phase != "downloading" or now - self._last >= PROGRESS_INTERVAL_S or p.done == p.total:
            self._last = now
            self.progress.emit(p)

    @Slot()
    def run(self) -> None:
        try:
            result = hub.download(self.files, self.options, self._report, self.cancel)
            report = None
            if result.folder is not None:
                from ..model.verify import verify_model_folder

                report = verify_model_folder(result.folder)
            self.finished.emit(result, report)
        except hub.DownloadCancelled as exc:
            self.failed.emit(str(exc), True)
        except UserError as exc:
            self.failed.emit(str(exc), False)
        except Exception as exc:  # noqa: BLE001 - shown in the dialog, never a crash
            self.failed.emit(f"{type(exc).__name__}: {exc}", False)


class _VerifyRelay(QObject):
    """Carries a verification's progress and result from the pool thread to the dialog (queued
    signals: the worker never touches a widget)."""

    progress = Signal(int, str)  # verification id, what it is doing
    done = Signal(int, object, str)  # verification id, VerifyReport | None, error


class ModelsDialog(QDialog):
    downloadFinished = Signal(object)  # hub.DownloadResult
    downloadFailed = Signal(str, bool)  # message, cancelled
    verificationFinished = Signal(object)  # VerifyReport (None when verification itself failed)
    _session_token = ""  # a pasted token, kept in memory for this session only (never saved)

    COLUMNS = ("File", "Repository", "Status", "Size", "Where")

    def __init__(self, settings: Settings, parent: Optional[QWidget] = None,
                 options: Optional[hub.HubOptions] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setMinimumSize(860, 560)
        self.settings = settings
        self.base = options or hub.HubOptions()
        self.chosen: Optional[tuple[str, Optional[Path]]] = None  # ("folder", path) | ("demo", None)
        self.resolution: Optional[hub.Resolution] = None
        self.last_report = None
        self._thread: Optional[QThread] = None
        self._worker: Optional[DownloadWorker] = None
        self._cancel: Optional[threading.Event] = None
        self._verify_id = 0  # the running verification's id (0: none); older results are dropped
        self._verify_cancel: Optional[threading.Event] = None
        self._verify_then = None
        self._relay = _VerifyRelay(self)
        self._relay.progress.connect(self._on_verify_progress)
        self._relay.done.connect(self._on_verified)

        intro = QLabel(
            "SAM 3D Body needs Meta's weights from "
            f"<a href='{hub.MODEL_PAGE}'>{hub.MODEL_REPO}</a>. The repository is <b>gated</b>: sign in to "
            "Hugging Face, open the page and accept the <b>SAM License</b>, then download here with a token "
            f"(paste one from <a href='{hub.TOKENS_PAGE}'>your settings</a>, or run <code>hf auth login</code> once). "
            f"The int8 backbone exports of <a href='{hub.BACKBONE_PAGE}'>{hub.BACKBONE_REPO}</a> are optional: "
            "they serve the TensorRT and .pt2 backends.", self)
        intro.setWordWrap(True)
        intro.setOpenExternalLinks(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        self.safety = QLabel(SAFETY_NOTE, self)
        self.safety.setWordWrap(True)
        self.safety.setOpenExternalLinks(True)
        self.safety.setTextFormat(Qt.TextFormat.RichText)

        self.to_cache = QRadioButton(f"Hugging Face cache ({self.base.cache()})", self)
        self.to_folder = QRadioButton("Folder:", self)
        self.folder_edit = QLineEdit(self)
        self.folder_edit.setPlaceholderText("a folder to download into (the files keep the repositories' layout)")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_dest)
        group = QButtonGroup(self)
        group.addButton(self.to_cache)
        group.addButton(self.to_folder)
        self.to_cache.setChecked(True)
        self.to_cache.toggled.connect(self.refresh)
        self.folder_edit.editingFinished.connect(self._folder_edited)

        self.table = QTreeWidget(self)
        self.table.setColumnCount(len(self.COLUMNS))
        self.table.setHeaderLabels(list(self.COLUMNS))
        self.table.setRootIsDecorated(False)
        self.table.setAlternatingRowColors(False)
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.header().setStretchLastSection(True)
        self.table.setMinimumHeight(200)

        self.token = QLineEdit(self)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setText(ModelsDialog._session_token)
        self.token.setPlaceholderText("hf_… (empty: HF_TOKEN or the login saved by `hf auth login`)")
        self.token.textChanged.connect(self._update_token_note)
        self.token_note = QLabel(self)
        self.token_note.setObjectName("dim")
        self.backbone = QCheckBox("Also download the int8 backbone exports (embedl/sam-3d-body, over 3.4 GB: "
                                  "TensorRT and .pt2 backends)", self)
        self.backbone.setChecked(False)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setOpenExternalLinks(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                            | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 3 + 4)  # room for an error
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(130)
        self.report.setPlaceholderText("Verification reports appear here.")

        self.download_button = QPushButton("&Download", self)
        self.download_button.setObjectName("primary")
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel download", self)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.cancel_button.setEnabled(False)
        self.folder_button = QPushButton("Use an existing &folder…", self)
        self.folder_button.clicked.connect(self._choose_folder)
        self.demo_button = QPushButton("Use the d&emo model (random weights)", self)
        self.demo_button.clicked.connect(self.use_demo)
        self.verify_button = QPushButton("&Verify", self)
        self.verify_button.clicked.connect(self.verify_current)
        self.deep_check = QCheckBox("Deep check (reads every byte: SHA-256 against the Hub's, finite weights)", self)
        self.deep_check.setToolTip("Slower: hashes every file (several GB) and reads every weight.")
        self.use_button = QPushButton("&Use this model", self)
        self.use_button.clicked.connect(self.use_current)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)

        dest = QGridLayout()
        dest.addWidget(QLabel("<b>Download into</b>", self), 0, 0, 1, 3)
        dest.addWidget(self.to_cache, 1, 0, 1, 3)
        dest.addWidget(self.to_folder, 2, 0)
        dest.addWidget(self.folder_edit, 2, 1)
        dest.addWidget(browse, 2, 2)
        token_row = QHBoxLayout()
        token_label = QLabel("&Token:", self)
        token_label.setBuddy(self.token)
        token_row.addWidget(token_label)
        token_row.addWidget(self.token, 1)
        row1 = QHBoxLayout()
        row1.addWidget(self.download_button)
        row1.addWidget(self.cancel_button)
        row1.addStretch(1)
        row1.addWidget(self.folder_button)
        row1.addWidget(self.demo_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.verify_button)
        row2.addWidget(self.deep_check)
        row2.addStretch(1)
        row2.addWidget(self.use_button)
        row2.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.safety)
        layout.addLayout(dest)
        layout.addWidget(self.table, 1)
        layout.addLayout(token_row)
        layout.addWidget(self.token_note)
        layout.addWidget(self.backbone)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.report)
        layout.addLayout(row1)
        layout.addLayout(row2)
        self._update_token_note()
        self.refresh()

    # ------------------------------------------------------------------ what is there ---
    def options(self) -> hub.HubOptions:
        from dataclasses import replace

        local = Path(self.folder_edit.text().strip()).expanduser() if self.to_folder.isChecked() and \
            self.folder_edit.text().strip() else None
        return replace(self.base, local_dir=local, token=self.token.text().strip() or self.base.token)

    def refresh(self) -> None:
        """Re-read the disk (no network) and fill the table."""
        opts = self.options()
        try:
            self.resolution = hub.resolve_model_folder(opts)
            statuses = self.resolution.statuses
        except UserError as exc:
            self.resolution = None
            statuses = hub.local_status(hub.ALL_FILES, opts)
            self._set_status(str(exc), "error")
        partials = {} if opts.local_dir else {r: hub.cached_partials(opts, r) for r in (hub.MODEL_REPO,
                                                                                          hub.BACKBONE_REPO)}
        self.table.clear()
        for st in statuses:
            item = QTreeWidgetItem([st.file.filename, st.file.repo_id, "", "", ""])
            if st.present:
                item.setText(2, "present")
                item.setForeground(2, QColor(style.OK))
                item.setText(3, hub.format_size(st.size))
                item.setText(4, str(st.path))
                item.setToolTip(4, str(st.path))
            else:
                optional = st.file.kind == "backbone"
                text = "missing (optional)" if optional else "missing"
                if st.partial:
                    text += f", {hub.format_size(st.partial)} downloaded: resumes"
                item.setText(2, text)
                item.setForeground(2, QColor(style.TEXT_DIM if optional else style.WARNING))
                item.setText(4, "—")
            item.setToolTip(0, st.file.what)
            item.setToolTip(1, f"{hub.HF_SITE}/{st.file.repo_id}")
            self.table.addTopLevelItem(item)
        kept = sum(partials.values())
        folder = self.resolution.folder if self.resolution else None
        self.use_button.setEnabled(folder is not None and not self.busy)
        self.verify_button.setEnabled(folder is not None and not self.busy)
        if not self.busy:
            if folder is not None:
                self._set_status(f"The model is installed; the app loads it from {folder}.", "ok")
            elif hub.is_offline():
                self._set_status("HF_HUB_OFFLINE=1 is set: nothing can be downloaded; only what is on disk is used.",
                                 "warning")
            elif kept:
                self._set_status(f"{hub.format_size(kept)} of an interrupted download are kept in the cache: "
                                 "Download resumes it.", "info")
            else:
                self._set_status("The model is not installed yet.", "info")
        self.download_button.setEnabled(not self.busy and not hub.is_offline())

    def rows(self) -> dict[str, tuple[str, str, str]]:
        """{filename: (status, size, where)}, for tests and accessibility checks."""
        out = {}
        for i in range(self.table.topLevelItemCount()):
            it = self.table.topLevelItem(i)
            out[it.text(0)] = (it.text(2), it.text(3), it.text(4))
        return out

    def _update_token_note(self) -> None:
        src = hub.token_source(self.options())
        if self.token.text().strip():
            self.token_note.setText("The token above is used for this session; it is not saved.")
        elif src:
            self.token_note.setText(f"A token is found ({src}); it will be sent to Hugging Face.")
        else:
            self.token_note.setText("No token found: the gated repository needs one (paste it above, or run "
                                    "`hf auth login`).")

    def _set_status(self, text: str, level: str = "info", rich: bool = False) -> None:
        colour = {"error": style.ERROR, "warning": style.WARNING, "ok": style.OK}.get(level, style.TEXT)
        body = text if rich else linkify(text)
        self.status.setText(f"<span style='color:{colour}'>{body}</span>")
        self.status_level = level
        self.status_text = text

    def _browse_dest(self) -> None:
        start = self.folder_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Download into", start)
        if folder:
            self.folder_edit.setText(folder)
            self.to_folder.setChecked(True)
            self.refresh()

    def _folder_edited(self) -> None:
        if self.folder_edit.text().strip():
            self.to_folder.setChecked(True)
        self.refresh()

    # ---------------------------------------------------------------------- download ---
    @property
    def downloading(self) -> bool:
        return self._thread is not None

    @property
    def verifying(self) -> bool:
        return self._verify_id != 0

    @property
    def busy(self) -> bool:
        return self.downloading or self.verifying

    def start_download(self) -> bool:
        if self.busy:
            return False
        opts = self.options()
        if self.to_folder.isChecked() and opts.local_dir is None:
            self._set_status("Choose the folder to download into first.", "error")
            return False
        ModelsDialog._session_token = self.token.text().strip()
        files = hub.select_files(model=True, backbone=self.backbone.isChecked())
        self._cancel = threading.Event()
        self._worker = DownloadWorker(files, opts, self._cancel)
        self._thread = QThread()
        self._thread.setObjectName("sam3dbody-download")
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self.progress.setValue(0)
        self.progress.setFormat("checking…")
        self.report.clear()
        self._set_status(f"Checking {len(files)} files on Hugging Face…")
        self._set_busy(True)
        self._thread.start()
        return True

    def cancel_download(self) -> None:
        if self.verifying and self._verify_cancel is not None:
            self._verify_cancel.set()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling the verification…", "warning")
            return
        if self._cancel is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling…", "warning")

    def _set_busy(self, busy: bool) -> None:
        for w in (self.download_button, self.folder_button, self.demo_button, self.verify_button, self.use_button,
                  self.to_cache, self.to_folder, self.folder_edit, self.token, self.backbone, self.deep_check):
            w.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _on_progress(self, p) -> None:
        if p.phase == "checking":
            self.progress.setFormat(f"checking {p.index}/{p.count}")
            self._set_status(f"Checking {p.file} on Hugging Face…")
            return
        if p.overall_total:
            self.progress.setValue(round(1000 * p.overall_done / p.overall_total))
            self.progress.setFormat(f"{hub.format_size(p.overall_done)} of {hub.format_size(p.overall_total)}")
        if p.file is not None:
            verb = "Checking the SHA-256 of" if p.phase == "verifying" else "Downloading"
            self._set_status(f"{verb} {p.file.filename} ({p.index} of {p.count}): "
                             f"{hub.format_size(p.done)} of {hub.format_size(p.total)}")

    def _finish_thread(self) -> None:
        thread, self._thread, self._worker = self._thread, None, None
        if thread is not None:
            thread.quit()
            thread.wait(5000)
        self._set_busy(False)

    def _on_finished(self, result, report) -> None:
        self._finish_thread()
        self.progress.setValue(1000)
        self.progress.setFormat("done")
        self.last_report = report
        self.refresh()
        got = f"{len(result.downloaded)} files downloaded ({hub.format_size(result.bytes_downloaded)})" \
            if result.downloaded else "nothing to download: every file was already there"
        kept = "".join(f" Kept your {f.filename}: {why}." for f, why in result.kept)
        if report is not None:
            self.report.setPlainText(report.text())
        if report is not None and report.ok:
            self._set_status(f"Done: {got}.{kept} The model is verified; press Use this model.", "ok")
        elif report is not None:
            self._set_status(f"Downloaded, but the folder is not usable: {report.first_error()}.{kept}", "error")
        else:
            self._set_status(f"Done: {got}.{kept}", "ok")
        self.downloadFinished.emit(result)

    def _on_failed(self, message: str, cancelled: bool) -> None:
        self._finish_thread()
        self.progress.setFormat("cancelled" if cancelled else "failed")
        self.refresh()
        if cancelled:
            self._set_status("Download cancelled. What arrived of the large files is kept: Download resumes it.",
                             "warning")
        else:
            self._set_status(message, "error")
        self.downloadFailed.emit(message, cancelled)

    # --------------------------------------------------------------------- choosing ---
    def verify_folder(self, folder: Path, then=None) -> bool:
        """Verify `folder` on a pool thread (the rig is loaded and run once: only call this for a
        folder the user chose); `then(report)` runs on the UI thread when it is done. False if
        a download or another verification is running."""
        if self.busy:
            return False
        from superqt.utils import create_worker

        from ..model.verify import verify_model_folder

        vid = self._verify_id = next(_VERIFY_IDS)
        cancel = self._verify_cancel = threading.Event()
        self._verify_then = then
        relay, deep, folder = self._relay, self.deep_check.isChecked(), Path(folder)

        def say(text: str) -> None:
            _emit(relay.progress, vid, text)

        def run() -> None:
            try:
                report = verify_model_folder(folder, deep=deep, run_rig=True, cancel=cancel, progress=say)
                _emit(relay.done, vid, report, "")
            except Exception as exc:  # noqa: BLE001 - shown in the dialog, never a crash
                _emit(relay.done, vid, None, f"verification failed: {type(exc).__name__}: {exc}")

        self.report.clear()
        self.progress.setRange(0, 0)  # busy indicator: the steps have no common unit
        self.progress.setFormat("verifying…")
        self._set_status(f"Verifying {folder}…")
        self._set_busy(True)
        self.cancel_button.setText("Cancel verification")
        create_worker(run, _start_thread=True)
        return True

    def _on_verify_progress(self, vid: int, text: str) -> None:
        if vid == self._verify_id:
            self._set_status(f"Verifying: {text}…")

    def _on_verified(self, vid: int, report, error: str) -> None:
        if vid != self._verify_id:
            return  # a verification the dialog gave up on (closed, cancelled)
        then, self._verify_then = self._verify_then, None
        self._verify_id, self._verify_cancel = 0, None
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        self._set_busy(False)
        self.cancel_button.setText("Cancel download")
        self.refresh()
        self.last_report = report
        if report is None:
            self._set_status(error, "error")
        else:
            self.report.setPlainText(report.text())
            if then is not None:
                then(report)
        self.verificationFinished.emit(report)

    def verify_current(self) -> bool:
        """Verify the installed model (Verify button); False if nothing is installed or busy."""
        if self.resolution is None or self.resolution.folder is None:
            return False

        def show(report) -> None:
            self._set_status("Verified: the model is usable." if report.ok else f"Not usable: {report.first_error()}",
                             "ok" if report.ok else "error")
        return self.verify_folder(self.resolution.folder, show)

    def use_folder(self, folder: Path) -> bool:
        """Verify `folder`, then use it if it passes, else show why not (when verification
        finishes: see `verificationFinished`). False if it could not start."""
        def decide(report) -> None:
            if report.cancelled:
                self._set_status("Verification cancelled: the folder was not used.", "warning")
            elif not report.ok:
                self._set_status(f"This folder cannot be used: {report.first_error()}", "error")
            else:
                self.chosen = ("folder", Path(folder))
                self.accept()
        return self.verify_folder(folder, decide)

    def use_current(self) -> bool:
        if self.resolution is None or self.resolution.folder is None:
            return False
        return self.use_folder(self.resolution.folder)

    def use_demo(self) -> None:
        self.chosen = ("demo", None)
        self.accept()

    def _choose_folder(self) -> None:
        start = self.settings.model_dir or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Model folder (model.ckpt, model_config.yaml, assets/)", start)
        if folder:
            self.use_folder(Path(folder))

    # ------------------------------------------------------------------------ closing ---
    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a running download and wait for its thread; False if it still runs (then it
        is kept alive, unowned, until it ends: destroying a running QThread aborts). A running
        verification is cancelled and its result dropped (its pool thread ends by itself)."""
        if self._verify_cancel is not None:
            self._verify_cancel.set()
        self._verify_id, self._verify_cancel, self._verify_then = 0, None, None
        if self._thread is None:
            return True
        self._cancel.set()
        thread, worker = self._thread, self._worker
        for sig, slot in ((worker.progress, self._on_progress), (worker.finished, self._on_finished),
                          (worker.failed, self._on_failed)):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        thread.quit()
        self._thread = self._worker = None
        if thread.wait(timeout_ms):
            return True
        _ORPHANS.append((thread, worker))
        return False

    def done(self, code: int) -> None:  # accept / reject / close
        self.shutdown()
        super().done(code)
