"""The model load's progress dialog: shown while a ModelController load runs (after 400 ms,
so a quick load never flashes it), its Cancel cancels the load."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

from .model_controller import ModelController


class LoadProgress(QObject):
    def __init__(self, models: ModelController, parent: QWidget) -> None:
        super().__init__(parent)
        self.models, self.window = models, parent
        self.dialog: Optional[QProgressDialog] = None  # while a load runs
        models.loadStarted.connect(self.show)
        models.loadProgress.connect(self._say)
        models.loadEnded.connect(self.close)

    def show(self, text: str) -> None:
        if self.dialog is None:
            dlg = QProgressDialog(text, "Cancel", 0, 0, self.window)
            dlg.setWindowTitle("Loading model")
            dlg.setWindowModality(Qt.WindowModality.WindowModal)
            dlg.setMinimumDuration(400)
            dlg.setAutoClose(False)
            dlg.setAutoReset(False)
            dlg.canceled.connect(self.models.cancel_load)
            self.dialog = dlg
        self.dialog.setLabelText(text)
        self.dialog.setValue(0)

    def _say(self, text: str) -> None:
        if self.dialog is not None:
            self.dialog.setLabelText(text)

    def close(self) -> None:
        if self.dialog is not None:
            dlg, self.dialog = self.dialog, None
            dlg.canceled.disconnect(self.models.cancel_load)
            dlg.reset()
            dlg.hide()
            dlg.deleteLater()
