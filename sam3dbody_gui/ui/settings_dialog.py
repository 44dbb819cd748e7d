"""The Settings dialog: model folder, backend, precision, device, mode.

Choices that cannot run here stay visible but disabled, with the reason next to them (and in
the tooltip), so the user learns what exists and what it would take.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from .backends import (MODE_NOTE, MODES, PRECISIONS, auto_precision_note, backend_choices, device_choices,
                       fp8_unavailable_reason)
from .file_dialogs import existing_folder
from .state import Settings

DEMO_TEXT = "Demo model (random weights; made in the user cache)"


def _disable_item(combo: QComboBox, index: int, reason: str) -> None:
    model = combo.model()
    if isinstance(model, QStandardItemModel):
        item = model.item(index)
        item.setEnabled(False)
        item.setToolTip(reason)


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.initial = settings

        self.demo = QCheckBox(DEMO_TEXT, self)
        self.demo.setChecked(settings.use_demo_model)
        self.folder = QLineEdit(settings.model_dir, self)
        self.folder.setPlaceholderText("folder with model.ckpt, model_config.yaml, assets/mhr_model.pt")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.folder_note = QLabel(
            "Real weights: <b>facebook/sam-3d-body-dinov3</b> on Hugging Face (gated: accept the SAM License, "
            "then download the folder).", self)
        self.folder_note.setObjectName("dim")
        self.folder_note.setWordWrap(True)

        self.backend = QComboBox(self)
        self.backend_note = QLabel(self)
        self.backend_note.setObjectName("dim")
        self.backend_note.setWordWrap(True)
        self.precision = QComboBox(self)
        for key, label in PRECISIONS:
            reason = fp8_unavailable_reason() if key == "fp8" else ""
            self.precision.addItem(f"{label} — unavailable" if reason else label, key)
            if reason:
                _disable_item(self.precision, self.precision.count() - 1, reason)
        self.precision.setCurrentIndex(max(0, self.precision.findData(settings.precision)))
        self.precision_note = QLabel(self)  # what Auto picks here, and why (the CPU's units)
        self.precision_note.setObjectName("dim")
        self.precision_note.setWordWrap(True)
        self.device = QComboBox(self)
        self.device_note = QLabel(self)
        self.device_note.setObjectName("dim")
        self.device_note.setWordWrap(True)
        for choice in device_choices():
            self.device.addItem(choice.label if choice.available else f"{choice.label} — unavailable", choice.key)
            if not choice.available:
                _disable_item(self.device, self.device.count() - 1, choice.reason)
                self.device_note.setText(f"CUDA: {choice.reason}.")
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        self.mode = QComboBox(self)
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.mode.setCurrentIndex(max(0, self.mode.findData(settings.mode)))
        self.mode.setToolTip(MODE_NOTE)
        self.mode_note = QLabel(MODE_NOTE, self)
        self.mode_note.setObjectName("dim")
        self.mode_note.setWordWrap(True)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        folder_label = QLabel("&Model folder:", self)
        folder_label.setBuddy(self.folder)
        form.addRow(folder_label, folder_row)
        form.addRow("", self.demo)
        form.addRow("", self.folder_note)
        form.addRow("&Backend:", self.backend)
        form.addRow("", self.backend_note)
        form.addRow("&Precision:", self.precision)
        form.addRow("", self.precision_note)
        form.addRow("&Device:", self.device)
        form.addRow("", self.device_note)
        form.addRow("M&ode:", self.mode)
        form.addRow("", self.mode_note)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

        self.demo.toggled.connect(self._update_enabled)
        self.folder.editingFinished.connect(self._fill_backends)
        self.backend.currentIndexChanged.connect(self._update_backend_note)
        self.device.currentIndexChanged.connect(self._update_precision_note)
        self._update_precision_note()
        self._fill_backends(settings.backend)
        self._update_enabled()

    def _browse(self) -> None:
        start = self.folder.text() or str(Path.home())
        folder = existing_folder(self, "Model folder", start)
        if folder:
            self.folder.setText(folder)
            self.demo.setChecked(False)
            self._fill_backends()

    def _update_enabled(self) -> None:
        self.folder.setEnabled(not self.demo.isChecked())
        self._fill_backends()

    def _model_dir(self) -> Path | None:
        if self.demo.isChecked() or not self.folder.text().strip():
            return None
        return Path(self.folder.text().strip()).expanduser()

    def _fill_backends(self, selected: str | None = None) -> None:
        selected = selected or self.backend.currentData() or self.initial.backend
        self.backend.blockSignals(True)
        self.backend.clear()
        self.reasons = {}
        for choice in backend_choices(self._model_dir()):
            self.backend.addItem(choice.label if choice.available else f"{choice.label} — unavailable", choice.key)
            if not choice.available:
                _disable_item(self.backend, self.backend.count() - 1, choice.reason)
                self.reasons[choice.key] = choice.reason
        index = self.backend.findData(selected)
        if index < 0 or selected in self.reasons:
            index = 0
        self.backend.setCurrentIndex(index)
        self.backend.blockSignals(False)
        self._update_backend_note()

    def _update_backend_note(self) -> None:
        lines = [f"{self.backend.itemText(self.backend.findData(k)).split(' — ')[0]}: {r}"
                 for k, r in self.reasons.items()]
        self.backend_note.setText("\n".join(lines))

    def _update_precision_note(self) -> None:
        self.precision_note.setText(auto_precision_note(self.device.currentData() or "auto"))

    def result_settings(self) -> Settings:
        return replace(
            self.initial,
            model_dir=self.folder.text().strip(),
            use_demo_model=self.demo.isChecked(),
            backend=self.backend.currentData() or "auto",
            precision=self.precision.currentData() or "auto",
            device=self.device.currentData() or "auto",
            mode=self.mode.currentData() or "body",
        )

