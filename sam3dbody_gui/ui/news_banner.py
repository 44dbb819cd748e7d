"""The banner above the panels, knowing what kind of news it shows, so that each piece of news
goes when what it was about is over (a good box hides "box outside the photo", a loaded model
hides "no model"). Kinds: "model" (none / failed), "demo" (random weights), "inference",
"export", "box" (a refused box) and "error" (an unreadable photo)."""

from __future__ import annotations

from typing import Callable

from .help_dialogs import DEMO_MODEL_TEXT, NO_MODEL_TEXT, model_problem_text
from .widgets import Banner

Offer = tuple[str, Callable[[], object]]  # a button: its label, what it does


class NewsBanner(Banner):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kind = ""

    def show_news(self, kind: str, text: str, level: str = "error", offers: list[Offer] | None = None,
                  closable: bool = True) -> None:
        self.show_message(text, level, offers, closable=closable)
        self.kind = kind

    def dismiss_kinds(self, *kinds: str) -> None:
        """Hide the banner if it shows news of one of these kinds."""
        if self.isVisible() and self.kind in kinds:
            self.hide()
            self.kind = ""

    def show_no_model(self, offers: list[Offer], problem: str = "", cancelled: bool = False) -> None:
        """Why there is no model (`problem`: why the load failed) and how to get one."""
        if problem:
            text, level = model_problem_text(problem), "error"
        else:
            text, level = ("<b>Model loading cancelled.</b> " if cancelled else "") + NO_MODEL_TEXT, "warning"
        self.show_news("model", text, level, offers)

    def show_demo_model(self, choose_folder: Callable[[], object]) -> None:
        self.show_news("demo", DEMO_MODEL_TEXT, "warning", [("Choose model folder…", choose_folder)])
