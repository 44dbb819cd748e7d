"""Model ▸ Models…: what is installed, downloading it from Hugging Face, or choosing a folder.

Lists every file of the two repositories (present or missing, size, where), downloads the
missing ones (and, if asked, the optional person detector) on a worker (models_download.py:
progress, cancel; the partial file of a large download is kept and the next download resumes
it), points at an existing folder, or picks the demo model. A folder is verified before it is
used, on a worker (models_verify.py), and the report is shown instead of a stack trace.

The dialog only says what to use (`chosen`); the main window applies it. A pasted token lives
in memory only: the window passes it in (`token`) and reads it back (`session_token`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from .. import hub
from ..errors import UserError
from ..hub_detector import DETECTOR_LICENSE, DETECTOR_REPO, DETECTOR_TITLE, detector_status
from . import file_dialogs, style
from .models_download import DownloadJob, describe_outcome, describe_progress
from .models_verify import Verifier
from .models_widgets import INTRO, SAFETY_NOTE, FilesTable, dim_label, linkify, rich_label, row_of
from .state import Settings


class ModelsDialog(QDialog):
    downloadFinished = Signal(object)  # hub.DownloadResult
    downloadFailed = Signal(str, bool)  # message, cancelled
    verificationFinished = Signal(object)  # VerifyReport (None when verification itself failed)

    def __init__(self, settings: Settings, parent: Optional[QWidget] = None,
                 options: Optional[hub.HubOptions] = None, token: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setMinimumSize(860, 560)
        self.settings = settings
        self.base = options or hub.HubOptions()
        self.session_token = token  # pasted this session; never saved
        self.chosen: Optional[tuple[str, Optional[Path]]] = None  # ("folder", path) | ("demo", None)
        self.resolution: Optional[hub.Resolution] = None
        self.last_report = None
        self.last_detector: Optional[hub.DownloadResult] = None
        self.detector_status = None
        self.downloading = False
        self._job = DownloadJob(self)
        self._job.progress.connect(self._on_progress)
        self._job.finished.connect(self._on_finished)
        self._job.failed.connect(self._on_failed)
        self._verifier = Verifier(self)
        self._verifier.progress.connect(lambda text: self._set_status(f"Verifying: {text}…"))
        self._verifier.finished.connect(self._on_verified)

        intro = rich_label(INTRO, self)
        self.safety = rich_label(SAFETY_NOTE, self)

        self.to_cache = QRadioButton(f"Hugging Face cache ({self.base.cache()})", self)
        self.to_folder = QRadioButton("Folder:", self)
        self.folder_edit = QLineEdit(self)
        self.folder_edit.setPlaceholderText("a folder to download into (the files keep the repositories' layout)")
        browse = self.browse_button = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_dest)
        group = QButtonGroup(self)
        group.addButton(self.to_cache)
        group.addButton(self.to_folder)
        self.to_cache.setChecked(True)
        self.to_cache.toggled.connect(self.refresh)
        self.folder_edit.editingFinished.connect(self._folder_edited)

        self.table = FilesTable(self)

        self.token = QLineEdit(self)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setText(self.session_token)
        self.token.setPlaceholderText("hf_… (empty: HF_TOKEN or the login saved by `hf auth login`)")
        self.token.textChanged.connect(self._update_token_note)
        self.token_note = dim_label(self)
        self.backbone = QCheckBox("Also download the int8 backbone exports (embedl/sam-3d-body, over 3.4 GB: "
                                  "TensorRT and .pt2 backends)", self)
        self.backbone.setChecked(False)
        self.detector = QCheckBox(f"Also download the person detector ({DETECTOR_REPO}, {DETECTOR_LICENSE}, "
                                  "~81 MB; optional)", self)
        self.detector.setToolTip(f"{DETECTOR_TITLE}: finds the people in a photo. It goes into the Hugging Face "
                                 "cache, where the app looks for it, whichever folder the model goes to. The app "
                                 "works without it: you draw the box yourself.")
        self.detector_note = dim_label(self)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        self.progress.setVisible(False)  # only while something runs (no empty strip at rest)
        self.status = rich_label("", self, selectable=True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 2 + 4)  # room for an error
        self.report = QPlainTextEdit(self)
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(130)
        self.report.setPlaceholderText("Verification reports appear here.")

        b = self._button
        self.download_button = b("&Download", self.start_download, primary=True)
        self.cancel_button = b("Cancel download", self.cancel_download)
        self.cancel_button.setEnabled(False)
        self.folder_button = b("Use an existing &folder…", self.choose_folder)
        self.demo_button = b("Use the d&emo model (random weights)", self.use_demo)
        self.verify_button = b("&Verify", self.verify_current)
        self.deep_check = QCheckBox("Deep check (reads every byte: SHA-256 against the Hub's, finite weights)", self)
        self.deep_check.setToolTip("Slower: hashes every file (several GB) and reads every weight.")
        self.use_button = b("&Use this model", self.use_current)
        self.close_button = b("Close", self.reject)

        dest = QGridLayout()
        dest.setVerticalSpacing(4)
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
        row1 = row_of(self.download_button, self.cancel_button, None, self.folder_button, self.demo_button)
        row2 = row_of(self.verify_button, self.deep_check, None, self.use_button, self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.safety)
        layout.addLayout(dest)
        layout.addWidget(self.table, 1)
        layout.addLayout(token_row)
        layout.addWidget(self.token_note)
        layout.addWidget(self.backbone)
        layout.addWidget(self.detector)
        layout.addWidget(self.detector_note)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.report)
        layout.addLayout(row1)
        layout.addLayout(row2)
        self._update_token_note()
        self.refresh()

    def _button(self, text: str, slot, primary: bool = False) -> QPushButton:
        button = QPushButton(text, self)
        if primary:
            button.setObjectName("primary")
        button.clicked.connect(slot)
        return button

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
        self.table.fill(statuses)
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
        self._show_detector()

    def _show_detector(self) -> None:
        from dataclasses import replace

        status = detector_status(replace(self.options(), local_dir=None))
        self.detector_status = status
        colour = style.OK if status.installed else style.TEXT_DIM
        self.detector_note.setText(f"<span style='color:{colour}'>{html.escape(status.describe())}</span>")
        if status.installed and not self.busy:
            self.detector.setChecked(False)
        self.detector.setEnabled(not status.installed and not self.busy)

    def rows(self) -> dict[str, tuple[str, str, str]]:
        """{filename: (status, size, where)}, for tests and accessibility checks."""
        return self.table.rows()

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
        folder = file_dialogs.existing_folder(self, "Download into", start)
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
    def verifying(self) -> bool:
        return self._verifier.running

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
        self.session_token = self.token.text().strip()
        files = hub.select_files(model=True, backbone=self.backbone.isChecked())
        detector = self.detector.isChecked() and self.detector.isEnabled()
        self.progress.setValue(0)
        self.progress.setFormat("checking…")
        self.report.clear()
        self._set_status(f"Checking {len(files) + (3 if detector else 0)} files on Hugging Face…")
        self.downloading = True
        self._set_busy(True)
        self._job.start(files, opts, detector=detector)
        return True

    def cancel_download(self) -> None:
        """The one Cancel button: stops a verification or a download, whichever runs."""
        if self.verifying:
            self._verifier.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling the verification…", "warning")
        elif self.downloading:
            self._job.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling…", "warning")

    def _set_busy(self, busy: bool) -> None:
        for w in (self.download_button, self.folder_button, self.demo_button, self.verify_button, self.use_button,
                  self.to_cache, self.to_folder, self.folder_edit, self.browse_button, self.token, self.backbone,
                  self.detector, self.deep_check):
            w.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy or self.progress.format() in ("done", "failed", "cancelled"))

    def _on_progress(self, p) -> None:
        value, shown, status = describe_progress(p)
        if value is not None:
            self.progress.setValue(value)
        self.progress.setFormat(shown or self.progress.format())
        if status:
            self._set_status(status)

    def _end_download(self, outcome_format: str) -> None:
        self.downloading = False
        self.progress.setFormat(outcome_format)
        self._set_busy(False)
        self.refresh()

    def _on_finished(self, outcome) -> None:
        result, report = outcome.result, outcome.report
        self.progress.setValue(1000)
        self.last_report, self.last_detector = report, outcome.detector
        self._end_download("done")
        if report is not None:
            self.report.setPlainText(report.text())
        self._set_status(*describe_outcome(outcome))
        self.downloadFinished.emit(result)

    def _on_failed(self, message: str, cancelled: bool) -> None:
        self._end_download("cancelled" if cancelled else "failed")
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
        if self.busy or not self._verifier.start(Path(folder), self.deep_check.isChecked(), then):
            return False
        self.report.clear()
        self.progress.setRange(0, 0)  # busy indicator: the steps have no common unit
        self.progress.setFormat("verifying…")
        self._set_status(f"Verifying {folder}…")
        self._set_busy(True)
        self.cancel_button.setText("Cancel verification")
        return True

    def _on_verified(self, report, error: str) -> None:
        then, self._verifier.then = self._verifier.then, None
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

    def choose_folder(self) -> None:
        start = self.settings.model_dir or str(Path.home())
        folder = file_dialogs.existing_folder(self, "Model folder (model.ckpt, model_config.yaml, assets/)", start)
        if folder:
            self.use_folder(Path(folder))

    # ------------------------------------------------------------------------ closing ---
    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel a running download and wait up to `timeout_ms` for it to stop; False if it
        still runs (it ends by itself on its pool thread, reporting to no one). A running
        verification is cancelled and its result dropped."""
        self._verifier.abandon()
        if not self.downloading:
            return True
        self.downloading = False
        return self._job.abandon(timeout_ms)

    def done(self, code: int) -> None:  # accept / reject / close
        self.shutdown()
        super().done(code)
