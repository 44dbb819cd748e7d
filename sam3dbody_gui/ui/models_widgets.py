"""The Models dialog's pieces that hold no logic: its texts, a rich-text label, and the table of
the repositories' files (present or missing, size, where)."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QWidget

from .. import hub
from . import style

INTRO = ("SAM 3D Body needs Meta's weights from "
         f"<a href='{hub.MODEL_PAGE}'>{hub.MODEL_REPO}</a>. The repository is <b>gated</b>: sign in to "
         "Hugging Face, open the page and accept the <b>SAM License</b>, then download here with a token "
         f"(paste one from <a href='{hub.TOKENS_PAGE}'>your settings</a>, or run <code>hf auth login</code> once). "
         f"The int8 backbone exports of <a href='{hub.BACKBONE_PAGE}'>{hub.BACKBONE_REPO}</a> are optional: "
         "they serve the TensorRT and .pt2 backends.")
SAFETY_NOTE = ("<b>Safety:</b> the MHR body rig (<code>assets/mhr_model.pt</code>) is TorchScript, which is "
               "<b>code</b>, not just data: loading and running it can read and write files on this computer. "
               "The app loads a rig only from a folder you chose or downloaded; use rigs only from "
               f"<a href='{hub.MODEL_PAGE}'>{hub.MODEL_REPO}</a> or from someone you trust. (<code>model.ckpt</code> "
               "is read without running any code from it.)")
_URL = re.compile(r"(https://[^\s,;()]+[^\s,;().])")


def linkify(text: str) -> str:
    """Plain text → rich text with clickable addresses."""
    return _URL.sub(r"<a href='\1'>\1</a>", html.escape(text, quote=False))


def rich_label(text: str, parent: QWidget, selectable: bool = False) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setOpenExternalLinks(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                      | Qt.TextInteractionFlag.LinksAccessibleByMouse)
    return label


def row_of(*widgets) -> QHBoxLayout:
    """A row of widgets; None is a stretch."""
    row = QHBoxLayout()
    for w in widgets:
        if w is None:
            row.addStretch(1)
        else:
            row.addWidget(w)
    return row


def dim_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setObjectName("dim")
    label.setWordWrap(True)
    return label


class FilesTable(QTreeWidget):
    COLUMNS = ("File", "Repository", "Status", "Size", "Where")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(self.COLUMNS))
        self.setHeaderLabels(list(self.COLUMNS))
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(False)
        self.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.header().setStretchLastSection(True)
        self.setMinimumHeight(180)

    def fill(self, statuses) -> None:
        self.clear()
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
            self.addTopLevelItem(item)

    def rows(self) -> dict[str, tuple[str, str, str]]:
        """{filename: (status, size, where)}."""
        out = {}
        for i in range(self.topLevelItemCount()):
            it = self.topLevelItem(i)
            out[it.text(0)] = (it.text(2), it.text(3), it.text(4))
        return out
