"""Small building blocks: a label that fits its width, a titled panel frame and an inline
message banner."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from . import icons, style

LEVEL_ICONS = {"error": ("error", style.ERROR), "warning": ("warning", style.WARNING), "info": ("info", style.MESH)}


class FittedLabel(QLabel):
    """A label showing the first of its variants that fits its width, else the last one elided
    ("…"); it never asks for width, so a narrow place shortens it instead of growing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._variants: list[str] = [" "]
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def set_variants(self, *variants: str) -> None:
        self._variants = [v for v in variants if v] or [" "]
        self._fit()

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._fit()

    def _fit(self) -> None:
        fm = self.fontMetrics()
        room = self.contentsRect().width()
        chosen = next((v for v in self._variants if fm.horizontalAdvance(v) <= room), None)
        if chosen is None:
            chosen = fm.elidedText(self._variants[-1], Qt.TextElideMode.ElideRight, max(room, 0)) or " "
        if chosen != self.text():
            self.setText(chosen)

    def fits(self) -> bool:
        """The text shown is one of the variants, whole (not elided)."""
        return self.text() in self._variants and \
            self.fontMetrics().horizontalAdvance(self.text()) <= self.contentsRect().width()


class FittedBadge(FittedLabel):
    """A FittedLabel for a pill: as wide as its whole text where there is room, shortened ("…")
    where there is not, never widening its panel (a longer status must not shift the layout)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def full_text(self) -> str:
        return self._variants[0]

    def sizeHint(self) -> QSize:
        chrome = self.width() - self.contentsRect().width()  # frame, margins and the style's padding
        return QSize(self.fontMetrics().horizontalAdvance(self._variants[0]) + chrome + 2, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())


class Panel(QFrame):
    """A rounded frame with a header (title, subtitle, tools on the right) and a body."""

    def __init__(self, title: str, body: QWidget, subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        self.header = QFrame(self)
        self.header.setObjectName("panelHeader")
        self.title = QLabel(title, self.header)
        self.title.setObjectName("panelTitle")
        self.subtitle = FittedLabel(self.header)  # shortened ("…") where the tools leave no room
        self.subtitle.set_variants(subtitle)
        self.subtitle.setObjectName("panelSubtitle")
        self.tools = QHBoxLayout()
        self.tools.setSpacing(4)
        row = QHBoxLayout(self.header)
        row.setContentsMargins(10, 5, 6, 5)
        row.setSpacing(8)
        row.addWidget(self.title)
        row.addWidget(self.subtitle, 1)
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
        self.subtitle.set_variants(text)


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
        self.icon.setFixedSize(18, 18)
        self.icon.setAccessibleName("level")
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.text.setOpenExternalLinks(True)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(6)
        self.close_button = QToolButton(self)
        self.close_button.setIcon(icons.icon("close", "#c3cad6"))
        self.close_button.setAccessibleName("Dismiss")
        self.close_button.setToolTip("Dismiss (Esc)")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.setSpacing(10)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
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
        # Drawn, not a glyph: "⛔" is missing from common fonts (an empty box on DejaVu).
        name, colour = LEVEL_ICONS.get(level, LEVEL_ICONS["info"])
        self.icon.setPixmap(icons.pixmap(name, colour, 18))
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
