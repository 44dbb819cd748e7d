"""The model's life cycle in the window: which folder, loading, reloading, the demo model,
cancelling, and what the settings change means for it.

Qt-free apart from signals: it keeps AppState's model status and messages current and tells
the window what to show (a progress dialog, the no-model banner) through signals. The slow part
(making the demo model, reading the checkpoint, building engines) runs in the
InferenceController's background jobs, never here.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from .settings_store import save_settings
from .state import AppState, ModelStatus, Settings
from .worker import InferenceController, LoadedPipeline


FAST_PATH_POLL_MS = 500


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "…"


class ModelController(QObject):
    loadStarted = Signal(str)  # what is being loaded, for a progress dialog
    loadProgress = Signal(str)  # the load's current step, as a sentence
    loadEnded = Signal()  # loaded, failed or cancelled: the progress dialog goes
    modelReady = Signal(object)  # LoadedPipeline
    modelFailed = Signal(str)  # why, one line for the user
    noModel = Signal(bool)  # nothing loaded and nothing loading (True: because the user cancelled)
    rerunWanted = Signal()  # the same model, another mode or a path replaced: run the photo again

    def __init__(self, state: AppState, store: QSettings, inference: InferenceController,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.store, self.inference = state, store, inference
        inference.modelLoaded.connect(self._on_loaded)
        inference.modelFailed.connect(self._on_failed)
        inference.loadProgress.connect(self._on_progress)
        # The fast path building in the background (pipeline/warm_start.py): its status polled
        # here (it lives on the pipeline, not in a Qt object) until it is swapped in or failed.
        self._fast_path_of = None  # the pipeline whose background build is watched
        self._fast_path_timer = QTimer(self)
        self._fast_path_timer.setInterval(FAST_PATH_POLL_MS)
        self._fast_path_timer.timeout.connect(self._poll_fast_path)

    # -- choosing ------------------------------------------------------------------------
    def choose_at_start(self, model_dir: Optional[Path] = None, backend: Optional[str] = None) -> None:
        """The command line's choices (for this session); with none and nothing chosen before,
        the model in $SAM3DBODY_GUI_MODEL, else one already in the Hugging Face cache."""
        if backend:
            self.state.update_settings(backend=backend)
        if model_dir is not None:
            self.state.update_settings(model_dir=str(model_dir), use_demo_model=False)
        elif not self.state.settings.model_dir and not self.state.settings.use_demo_model:
            from ..app_paths import MODEL_ENV

            env = os.environ.get(MODEL_ENV)
            if env:
                self.state.update_settings(model_dir=env)
            else:
                self._use_installed_model()

    def _use_installed_model(self) -> None:
        """First start with nothing chosen: a model already in the Hugging Face cache (e.g. from
        `sam3dbody-gui download` or `hf download`) is used, for this session."""
        from ..hub import find_installed_model

        found = find_installed_model()
        if found is not None:
            self.state.update_settings(model_dir=str(found))
            self.state.post(f"Using the model found in the Hugging Face cache ({found})")

    def use_demo_model(self) -> None:
        self.apply_settings(replace(self.state.settings, use_demo_model=True))

    def use_folder(self, folder) -> None:
        self.apply_settings(replace(self.state.settings, model_dir=str(folder), use_demo_model=False))

    def apply_model_choice(self, chosen) -> None:
        """("folder", path) or ("demo", None), as the Models dialog chose."""
        if not chosen:
            return
        kind, folder = chosen
        if kind == "demo":
            self.use_demo_model()
        else:
            self.use_folder(folder)

    def apply_settings(self, settings: Settings, persist: bool = True) -> None:
        reload = settings.model_key() != self.state.settings.model_key() or not self.inference.has_model
        mode_changed = settings.mode != self.state.settings.mode
        self.state.set_settings(settings)
        if persist:
            save_settings(self.store, settings)
        if reload:
            self.load_model()
        elif mode_changed and self.state.image is not None:
            self.rerunWanted.emit()  # the same model runs both modes: show the photo in the new one

    # -- loading -------------------------------------------------------------------------
    def load_model(self) -> None:
        s = self.state.settings
        if not s.use_demo_model and not s.model_dir:
            self.noModel.emit(False)
            return
        self.inference.load_model(s)
        folder = None if s.use_demo_model else Path(s.model_dir).expanduser()
        self.state.set_model(replace(self.state.model, loading=True, synthetic=s.use_demo_model))
        self.loadStarted.emit("Loading the demo model (random weights)…" if s.use_demo_model
                              else f"Loading the model from {folder}…")

    def cancel_load(self) -> None:
        self.loadEnded.emit()
        self.inference.cancel_load()
        self.state.set_model(replace(self.state.model, loading=False))
        what = f"still using {self.state.model.short_name}" if self.inference.has_model else "no model loaded"
        self.state.post(f"Model loading cancelled ({what})", "warning")
        if not self.inference.has_model:
            self.noModel.emit(True)

    def _on_progress(self, message: str) -> None:
        self.loadProgress.emit(_sentence(message))
        self.state.post(_sentence(message))

    def _on_loaded(self, loaded: LoadedPipeline) -> None:
        self.loadEnded.emit()
        info = loaded.pipeline.backbone.info
        fast_path = str(getattr(loaded.pipeline, "fast_path_status", "") or "")
        self.state.set_model(ModelStatus(
            folder=loaded.model_dir, synthetic=loaded.synthetic, loaded=True, backend_label=loaded.label,
            backend=info.name, precision=info.precision, device=info.device, decoder=loaded.decoder,
            fast_path=fast_path))
        previous = getattr(self._fast_path_of, "fast_path", None)
        if previous is not None and self._fast_path_of is not loaded.pipeline:
            previous.cancel()  # the model it was building for is gone
        self._fast_path_of = loaded.pipeline
        if fast_path and getattr(loaded.pipeline, "fast_path", None) is not None:
            self._fast_path_timer.start()
        else:
            self._fast_path_timer.stop()
        note = " — RANDOM WEIGHTS: the mesh is not a real prediction" if loaded.synthetic else ""
        self.state.post(f"Model loaded: {loaded.model_dir} ({loaded.label}){note}",
                        "warning" if loaded.synthetic else "info")
        self.modelReady.emit(loaded)

    def _poll_fast_path(self) -> None:
        """Show the background build's progress; once it is swapped in, the backend it swapped."""
        pipeline = self._fast_path_of
        if pipeline is None or not self.state.model.loaded:
            self._fast_path_timer.stop()
            return
        status = str(getattr(pipeline, "fast_path_status", "") or "")
        if status == self.state.model.fast_path:
            return
        info = pipeline.backbone.info
        decoder = getattr(pipeline, "decoder_label", self.state.model.decoder)
        shown_precision = self.state.model.precision
        self.state.set_model(replace(self.state.model, fast_path=status, backend_label=info.label(), backend=info.name,
                                     precision=info.precision, device=info.device, decoder=decoder))
        fast_path = getattr(pipeline, "fast_path", None)
        if fast_path is not None and fast_path.done:
            self._fast_path_timer.stop()
            failed = status.startswith(("failed", "not built"))
            self.state.post(f"Fast path {status}", "warning" if failed else "info")
            if info.precision != shown_precision and failed and self.state.image is not None:
                # The eager fast path missed its check and fp32 replaced it: what is on screen
                # came from the path that missed, so the photo runs again.
                self.rerunWanted.emit()

    def _on_failed(self, message: str, user_error: bool) -> None:
        self.loadEnded.emit()
        self.state.set_model(replace(self.state.model, loading=False, problem=message))
        text = message if user_error else f"Unexpected error while loading the model: {message}"
        self.modelFailed.emit(text)
