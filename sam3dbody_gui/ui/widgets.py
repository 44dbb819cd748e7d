"""Small building blocks: a titled panel frame and an inline message banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget


class Panel(QFrame):
    """A rounded frame with a header (title, subtitle, tools on the right) and a body."""

    def __init__(self, title: str, body: QWidget, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self.header = QFrame(self)
        self.header.setObjectName("panelHeader")
        self.title = QLabel(title, self.header)
        self.title.setObjectName("panelTitle")
        self.subtitle = QLabel(subtitle, self.header)
        self.subtitle.setObjectName("panelSubtitle")
        self.tools = QHBoxLayout()
        self.tools.setSpacing(4)
        row = QHBoxLayout(self.header)
        row.setContentsMargins(10, 5, 6, 5)
        row.setSpacing(8)
        row.addWidget(self.title)
        row.addWidget(self.subtitle)
        row.addStretch(1)
        row.addLayout(self.tools)
        self.body = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(body, 1)
        self.setAccessibleName(title)

    def add_tool(self, widget: QWidget) -> QWidget:
        self.tools.addWidget(widget)
        return widget

    def set_subtitle(self, text: str) -> None:
        self.subtitle.setText(text)


def tool_button(text: str, tooltip: str, checkable: bool = False, parent: QWidget | None = None) -> QToolButton:
    b = QToolButton(parent)
    b.setText(text)
    b.setToolTip(tooltip)
    b.setCheckable(checkable)
    b.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    b.setAutoRaise(True)
    return b


class Banner(QFrame):
    """One line of news above the panels: an error, a warning (e.g. no model) or info, with
    optional action buttons and a close button. Never modal: the window keeps working."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setProperty("level", "info")
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.text.setOpenExternalLinks(True)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(6)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss (Esc)")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.setSpacing(10)
        row.addWidget(self.icon)
        row.addWidget(self.text, 1)
        row.addLayout(self.buttons)
        row.addWidget(self.close_button)
        self._button_widgets: list[QPushButton] = []
        self.level = "info"
        self.hide()

    def show_message(self, text: str, level: str = "info", actions: list[tuple[str, object]] | None = None,
                     closable: bool = True) -> None:
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.icon.setText({"error": "⛔", "warning": "⚠", "info": "ℹ"}.get(level, ""))
        self.text.setText(text)
        for b in self._button_widgets:
            b.hide()
            self.buttons.removeWidget(b)
            b.deleteLater()
        self._button_widgets = []
        for i, (label, slot) in enumerate(actions or []):
            b = QPushButton(label, self)
            if i == 0:
                b.setObjectName("primary")
            b.clicked.connect(slot)
            self.buttons.addWidget(b)
            self._button_widgets.append(b)
        self.close_button.setVisible(closable)
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()
