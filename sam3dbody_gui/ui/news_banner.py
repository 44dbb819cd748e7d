"""The banner above the panels, knowing what kind of news it holds, so that each piece of news
goes when what it was about is over (a good box hides "box outside the photo", a loaded model
hides "no model"). Kinds: "startup" (a problem with the command line: a missing photo, a
--bbox outside it), "error" (an unreadable photo), "model" (none / failed), "inference",
"export", "box" (a refused box) and "demo" (random weights).

It shows one piece of news at a time, one row, so the panels below never move by more than
that row; the others wait (a "+1 more" says so). The most important shows first (the order
above), the newest among equals. Closing it (✕ or Esc) shows the next: a start-up problem
stays until the user has seen and closed it, whatever arrives after it.
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtWidgets import QLabel

from .help_dialogs import DEMO_MODEL_TEXT, NO_MODEL_TEXT, model_problem_text
from .widgets import Banner

Offer = tuple[str, Callable[[], object]]  # a button: its label, what it does
PRIORITY = {"startup": 5, "error": 4, "model": 3, "inference": 2, "export": 2, "box": 2, "demo": 1}


@dataclass
class News:
    kind: str
    text: str
    level: str
    offers: list = field(default_factory=list)
    closable: bool = True
    order: int = 0


class NewsBanner(Banner):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kind = ""  # what is shown ("" when hidden)
        self.news: dict[str, News] = {}
        self._order = itertools.count()
        self._shown: News | None = None
        self.more = QLabel(self)
        self.more.setObjectName("dim")
        self.more.setToolTip("More news waits behind this one: close it (✕ or Esc) to see the next")
        self.buttons.insertWidget(0, self.more)
        self.more.hide()

    def show_news(self, kind: str, text: str, level: str = "error", offers: list[Offer] | None = None,
                  closable: bool = True) -> None:
        self.news[kind] = News(kind, text, level, list(offers or []), closable, next(self._order))
        self._show_top()

    def dismiss_kinds(self, *kinds: str) -> None:
        """Forget the news of these kinds (shown or waiting)."""
        if any([self.news.pop(k, None) is not None for k in kinds]):
            self._show_top()

    def dismiss(self) -> None:
        """The user closed the news shown: the next one (if any) takes its place."""
        self.news.pop(self.kind, None)
        self._show_top()
        self.closed.emit()

    def waiting(self) -> list[str]:
        """The kinds held but not shown, most important first."""
        return [n.kind for n in self._ranked()[1:]]

    def _ranked(self) -> list[News]:
        return sorted(self.news.values(), key=lambda n: (PRIORITY.get(n.kind, 2), n.order), reverse=True)

    def _show_top(self) -> None:
        ranked = self._ranked()
        if not ranked:
            self.kind, self._shown = "", None
            self.hide()
            return
        top = ranked[0]
        if top is not self._shown:
            self.show_message(top.text, top.level, top.offers, closable=top.closable)
            self.kind, self._shown = top.kind, top
        self.more.setText(f"+{len(ranked) - 1} more")
        self.more.setVisible(len(ranked) > 1)

    def show_no_model(self, offers: list[Offer], problem: str = "", cancelled: bool = False) -> None:
        """Why there is no model (`problem`: why the load failed) and how to get one."""
        if problem:
            text, level = model_problem_text(problem), "error"
        else:
            text, level = ("<b>Model loading cancelled.</b> " if cancelled else "") + NO_MODEL_TEXT, "warning"
        self.show_news("model", text, level, offers)

    def show_demo_model(self, choose_folder: Callable[[], object]) -> None:
        self.show_news("demo", DEMO_MODEL_TEXT, "warning", [("Choose model folder…", choose_folder)])


def print_problem(text: str) -> None:
    """A start-up problem, for the terminal that started the window too (the banner's text, plain)."""
    plain = re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    print(f"sam3dbody-gui: {plain}", file=sys.stderr, flush=True)
