"""The window's model, kept apart from its Qt views (napari's split of state from views).

`AppState` holds everything the window shows: the photo, the person box, the latest result,
the settings, what model is loaded and the latency history. Views never talk to each other:
they read the state and listen to its signals; user actions go through the main window,
which changes the state and asks the inference controller for work. No heavy work happens
here (the worker thread does it), so every method is quick and runs on the UI thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:  # the pipeline imports torch: the UI imports it lazily, on the worker
    from ..pipeline.result import MeshResult

Box = tuple[float, float, float, float]
HISTORY_LENGTH = 60
UNDO_LENGTH = 100


class BoxHistory:
    """Undo and redo of the person box, Qt-free: the boxes before each edit (None: the whole
    photo). The window records one step per edit: a whole drag is one, so is each key nudge."""

    def __init__(self, limit: int = UNDO_LENGTH) -> None:
        self.limit = limit
        self._undo: list[Optional[Box]] = []
        self._redo: list[Optional[Box]] = []

    def record(self, before: Optional[Box], after: Optional[Box]) -> None:
        if before == after:
            return
        self._undo.append(before)
        del self._undo[:-self.limit]
        self._redo.clear()

    def undo(self, current: Optional[Box]) -> tuple[bool, Optional[Box]]:
        """(whether there was a step, the box to go back to)."""
        if not self._undo:
            return False, current
        self._redo.append(current)
        return True, self._undo.pop()

    def redo(self, current: Optional[Box]) -> tuple[bool, Optional[Box]]:
        if not self._redo:
            return False, current
        self._undo.append(current)
        return True, self._redo.pop()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()


@dataclass(frozen=True)
class Settings:
    """What the Settings dialog edits; remembered with QSettings (see settings_store)."""

    model_dir: str = ""  # "" = none chosen
    use_demo_model: bool = False  # the synthetic random-weight model in the user cache
    backend: str = "auto"  # auto | tensorrt | pt2 | pytorch | compiled (runtime/choices.py)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (PyTorch backbones)
    device: str = "auto"  # auto | cpu | cuda
    mode: str = "body"  # body | full (+ hand refinement; live box dragging always runs body mode)
    mesh_frame: str = "camera"  # camera | upright (mesh export)
    overlay_opacity: float = 0.7
    show_keypoints: bool = True

    def model_key(self) -> tuple:
        """The fields whose change needs a model (re)load (not the mode: one pipeline runs both)."""
        return (self.model_dir, self.use_demo_model, self.backend, self.precision, self.device)


@dataclass
class ModelStatus:
    """What is loaded (or why nothing is)."""

    folder: Optional[Path] = None
    synthetic: bool = False  # random weights: say so everywhere
    loading: bool = False
    loaded: bool = False
    backend_label: str = ""  # e.g. "pytorch fp32 on cpu"
    backend: str = ""
    precision: str = ""
    device: str = ""
    decoder: str = ""  # "eager" or "CUDA graph"
    load_seconds: float = 0.0
    problem: str = ""  # why no model is usable (shown with how to get one)

    @property
    def short_name(self) -> str:
        if self.folder is None:
            return "no model"
        return "demo model (random weights)" if self.synthetic else self.folder.name


@dataclass
class ResultBundle:
    """One finished inference, with what the views need already computed on the worker."""

    request_id: int
    result: "MeshResult"
    box: Optional[Box]  # the box it was run with (None = whole image)
    image_id: int  # which photo (AppState.image_id) it belongs to
    mesh_layer: np.ndarray  # (h, w, 4) uint8 RGBA: shaded mesh, transparent elsewhere
    layer_scale: float  # mesh_layer pixels per photo pixel (<= 1 for very large photos)
    pca_rgb: np.ndarray  # (h, w, 3) uint8 PCA of the backbone features
    display_vertices: np.ndarray  # (V, 3) float32: centred, Z up (pyqtgraph's world)
    display_normals: np.ndarray  # (V, 3) float32 unit vertex normals
    faces: np.ndarray  # (F, 3) uint32
    extent: np.ndarray  # (3,) size of the mesh's bounding box in metres
    postprocess_ms: float = 0.0
    submitted_at: float = 0.0  # time.perf_counter() when the request was made
    shown_ms: float = 0.0  # request → shown on screen


class AppState(QObject):
    imageChanged = Signal()
    boxChanged = Signal()
    resultChanged = Signal()
    settingsChanged = Signal()
    modelChanged = Signal()
    busyChanged = Signal(bool)
    historyChanged = Signal()
    message = Signal(str, str)  # text, level: "info" | "warning" | "error"

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.image: Optional[np.ndarray] = None  # (H, W, 3) uint8 RGB, never modified in place
        self.image_path: Optional[Path] = None
        self.image_id = 0
        self.box: Optional[Box] = None  # None = the whole image
        self.box_history = BoxHistory()  # a new photo starts a new history
        self.bundle: Optional[ResultBundle] = None
        self.settings = settings or Settings()
        self.model = ModelStatus()
        self.busy = False
        self.history: deque[dict[str, float]] = deque(maxlen=HISTORY_LENGTH)
        self.runs = 0
        self.stale_dropped = 0
        self.last_message: tuple[str, str] = ("", "info")

    # -- photo and box -------------------------------------------------------------------
    @property
    def image_hw(self) -> Optional[tuple[int, int]]:
        return None if self.image is None else (int(self.image.shape[0]), int(self.image.shape[1]))

    def set_image(self, image: np.ndarray, path: Optional[Path]) -> None:
        self.image = image
        self.image_path = Path(path) if path is not None else None
        self.image_id += 1
        self.box = None
        self.box_history.clear()
        self.bundle = None
        self.imageChanged.emit()
        self.boxChanged.emit()
        self.resultChanged.emit()

    def set_box(self, box: Optional[Box]) -> bool:
        """Set the person box (None = whole image). A box that is empty or misses the photo is
        refused with a message; returns whether it was accepted."""
        if self.image is None:
            return False
        if box is not None:
            from ..errors import UserError

            try:
                box = check_box(box, self.image_hw)
            except UserError as exc:
                self.post(str(exc), "error")
                return False
        if box == self.box:
            return True
        self.box = box
        self.boxChanged.emit()
        return True

    # -- results -------------------------------------------------------------------------
    def set_result(self, bundle: ResultBundle) -> None:
        self.bundle = bundle
        self.runs += 1
        timings = dict(bundle.result.timings_ms)
        timings["display"] = bundle.postprocess_ms
        self.history.append(timings)
        self.resultChanged.emit()
        self.historyChanged.emit()

    def clear_history(self) -> None:
        self.history.clear()
        self.historyChanged.emit()

    # -- settings and model --------------------------------------------------------------
    def set_settings(self, settings: Settings) -> None:
        if settings != self.settings:
            self.settings = settings
            self.settingsChanged.emit()

    def update_settings(self, **changes) -> None:
        self.set_settings(replace(self.settings, **changes))

    def set_model(self, status: ModelStatus) -> None:
        self.model = status
        self.modelChanged.emit()

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)

    def post(self, text: str, level: str = "info") -> None:
        self.last_message = (text, level)
        self.message.emit(text, level)


def check_box(box, image_hw: tuple[int, int]) -> Box:
    """The pipeline's own box rules (validate_box; torch-free, fine on the UI thread)."""
    from ..pipeline.box import validate_box

    x1, y1, x2, y2 = validate_box(box, image_hw)
    return (float(x1), float(y1), float(x2), float(y2))


@dataclass
class BackendChoice:
    key: str
    label: str
    available: bool
    reason: str = ""  # why it is unavailable


@dataclass
class DeviceChoice:
    key: str
    label: str
    available: bool
    reason: str = ""


@dataclass
class Choices:
    backends: list[BackendChoice] = field(default_factory=list)
    devices: list[DeviceChoice] = field(default_factory=list)
