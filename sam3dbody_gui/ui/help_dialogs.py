"""What the window tells the user about itself: the Help menu's boxes and the texts of the
model banners (where the real weights are, what the demo model is)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

HF_URL = "https://huggingface.co/facebook/sam-3d-body-dinov3"
HF_LINK = f"<a href='{HF_URL}'>facebook/sam-3d-body-dinov3</a>"

NO_MODEL_TEXT = (
    "<b>No model yet.</b> SAM 3D Body's weights are on Hugging Face, gated: accept the SAM License on "
    f"{HF_LINK}, then <b>Get the model…</b> downloads them "
    "(or choose a folder you already have). The demo model shows how the app works, but its weights are "
    "<b>random</b>."
)
DEMO_MODEL_TEXT = ("<b>Demo model:</b> its weights are <b>random</b>, so the mesh does not fit the person. "
                   f"For real results get {HF_LINK} and choose it in Settings.")


def model_problem_text(problem: str) -> str:
    return (f"<b>The model could not be loaded:</b> {problem}<br>"
            f"Real weights: {HF_LINK} (gated; SAM License). Or try the demo model (random weights).")


KEYS_HELP = """Photo (click it or Alt+1 to focus):
  drag on empty space: draw the person box
  drag inside the box: move it · drag a handle: resize
  arrows: move the box 1 px (Shift: 10 px)
  Ctrl+arrows: move the right / bottom edge (resize)
  Delete: no box (the whole image) · Esc: cancel a drag

3-D mesh (click it or Alt+3 to focus):
  drag: orbit · Shift/Ctrl-drag or middle-drag: pan
  wheel or right-drag: zoom · arrows: orbit · Shift+arrows: pan · +/-: zoom
  1 / 2 / 3: front / side / three-quarter view · R: reset

Everywhere:
  Ctrl+O open · Ctrl+Shift+O sample · F5 run · Ctrl+B type the box
  Ctrl+E export mesh · Ctrl+Shift+E export overlay · Ctrl+Shift+J export JSON
  K keypoints · [ / ] overlay opacity · Ctrl+1/2/3/0 3-D views · Ctrl+, settings"""

MODEL_HELP = (
    "SAM 3D Body's weights are published by Meta on Hugging Face as "
    f"{HF_LINK}. They are <b>gated</b>: sign in, accept the "
    "SAM License, then download the files (model.ckpt, model_config.yaml, assets/mhr_model.pt) with "
    "Model ▸ Models… or, in a terminal, <code>sam3dbody-gui download</code>: the app then finds them "
    "by itself. A folder you already have is chosen in Model ▸ Models… too."
    "<br><br>The <b>demo model</b> has the same layout with "
    "<b>random weights</b>: it exercises every part of the app, but its mesh is not a prediction.")

ABOUT = ("<b>sam3dbody-gui</b><br>Point-and-click 3-D human mesh recovery with "
         "Meta's SAM 3D Body. Our own PyTorch implementation; Apache-2.0 code, "
         "model weights under the SAM License.")


def show_model_help(parent: QWidget) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("Getting the model")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(MODEL_HELP)
    box.exec()


def show_keys_help(parent: QWidget) -> None:
    QMessageBox.information(parent, "Keyboard and mouse", KEYS_HELP)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About", ABOUT)
