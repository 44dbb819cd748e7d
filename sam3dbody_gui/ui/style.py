"""A calm dark theme (Fusion + palette + a small style sheet) and the colours the views share."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

WINDOW = "#16191e"
PANEL = "#1f232a"
PANEL_HEADER = "#252a33"
BORDER = "#313845"
TEXT = "#e4e7ec"
TEXT_DIM = "#9aa3b2"
ACCENT = "#ffc43d"  # the person box
MESH = "#7db0ff"  # the mesh (overlay and 3-D)
KEYPOINT = "#ff5a3c"
ERROR = "#ff6b6b"
WARNING = "#ffb347"
OK = "#5fd38d"
STAGE_COLOURS = {"preprocess": "#56c2e6", "backbone": "#ffb347", "decoder+MHR": "#b48cff", "total": "#e4e7ec",
                 # full mode's extra stages
                 "hand crops": "#7fd6c2", "hand backbone": "#ffd27f", "hand decoder": "#ff8fb1",
                 "body re-run": "#9dd67f"}
STAGE_NAMES = {"preprocess": "Preprocess", "backbone": "Backbone", "decoder+MHR": "Decoder + MHR", "total": "Total",
               "hand crops": "Hand crops", "hand backbone": "Hand backbone", "hand decoder": "Hand decoder",
               "body re-run": "Body re-run"}

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QFrame#panel {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QFrame#panelHeader {{ background: {PANEL_HEADER}; border: none; border-bottom: 1px solid {BORDER};
    border-top-left-radius: 6px; border-top-right-radius: 6px; }}
QLabel#panelTitle {{ color: {TEXT}; font-weight: 600; font-size: 10.5pt; }}
QLabel#panelSubtitle, QLabel#dim {{ color: {TEXT_DIM}; }}
QLabel#stageName {{ color: {TEXT_DIM}; font-size: 8.5pt; }}
QLabel#stageValue {{ color: {TEXT}; font-size: 17pt; font-weight: 600; }}
QLabel#stageValueSmall {{ color: {TEXT}; font-size: 12pt; font-weight: 600; }}
QLabel#stageStat {{ color: {TEXT_DIM}; font-size: 8pt; }}
QFrame#stageTile {{ background: {PANEL_HEADER}; border: 1px solid {BORDER}; border-radius: 5px; }}
QLabel#badge {{ background: #2d3440; color: {TEXT}; border-radius: 4px; padding: 2px 7px; }}
QLabel#warnBadge {{ background: #4a3413; color: {WARNING}; border-radius: 4px; padding: 2px 7px; font-weight: 600; }}
QFrame#banner {{ border-radius: 5px; }}
QFrame#banner[level="error"] {{ background: #3f1d22; border: 1px solid #7a2d36; }}
QFrame#banner[level="warning"] {{ background: #3b2f16; border: 1px solid #7a5a1c; }}
QFrame#banner[level="info"] {{ background: #1d2c40; border: 1px solid #2f4f7a; }}
QToolButton {{ color: {TEXT}; padding: 3px 8px; border-radius: 4px; border: 1px solid transparent; }}
QToolButton:hover {{ background: #2f3642; border-color: {BORDER}; }}
QToolButton:checked {{ background: #33415a; border-color: #4a6390; }}
QToolButton:focus {{ border-color: {MESH}; }}
QPushButton {{ color: {TEXT}; background: #2b313c; border: 1px solid {BORDER}; border-radius: 4px; padding: 4px 12px; }}
QPushButton:hover {{ background: #343b48; }}
QPushButton:focus {{ border-color: {MESH}; }}
QPushButton#primary {{ background: #2f5fa8; border-color: #3f73c4; font-weight: 600; }}
QPushButton#primary:hover {{ background: #3a6dbb; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5d6573; }}
QStatusBar {{ background: {WINDOW}; color: {TEXT_DIM}; }}
QStatusBar QLabel {{ color: {TEXT_DIM}; padding: 0 6px; }}
QSplitter::handle {{ background: {WINDOW}; }}
QToolBar {{ background: {WINDOW}; border: none; spacing: 4px; padding: 3px 6px; }}
QToolTip {{ color: {TEXT}; background: #2b313c; border: 1px solid {BORDER}; }}
QFileDialog QToolButton {{ padding: 3px; }}
"""


def apply_theme(app: QApplication) -> None:
    from .dark_style import DarkStyle

    app._dark_style = DarkStyle(TEXT)  # Fusion with visible check boxes, radio buttons, file-dialog icons
    app.setStyle(app._dark_style)
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: WINDOW, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: "#12151a", QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: "#2b313c",
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.Highlight: "#3f73c4",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2b313c",
        QPalette.ColorRole.ToolTipText: TEXT, QPalette.ColorRole.PlaceholderText: TEXT_DIM,
        QPalette.ColorRole.Link: MESH, QPalette.ColorRole.Mid: BORDER, QPalette.ColorRole.Dark: "#101216",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d6573"))
    app.setPalette(p)
    app.setStyleSheet(STYLE_SHEET)
