"""Box ▸ Set box numerically…: the person box's corners typed in pixels."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QWidget

from .state import Box


def ask_box(parent: QWidget, box: Optional[Box], image_hw: tuple[int, int]) -> Optional[Box]:
    """The corners the user typed (None if cancelled), starting from `box` (None: the whole
    photo). Values a little outside the photo are allowed here; the state checks the box."""
    h, w = image_hw
    box = box or (0.0, 0.0, float(w), float(h))
    dialog = QDialog(parent)
    dialog.setWindowTitle("Person box")
    form = QFormLayout(dialog)
    spins = []
    for label, value, limit in (("x1 (left)", box[0], w), ("y1 (top)", box[1], h),
                                ("x2 (right)", box[2], w), ("y2 (bottom)", box[3], h)):
        spin = QDoubleSpinBox(dialog)
        spin.setRange(-limit, 2 * limit)
        spin.setDecimals(1)
        spin.setValue(value)
        form.addRow(label, spin)
        spins.append(spin)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return tuple(spin.value() for spin in spins)
