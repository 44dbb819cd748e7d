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

from .people import Box, People, Person, free_colour  # noqa: F401 - Box is the window's name

HISTORY_LENGTH = 60
UNDO_LENGTH = 100


class BoxHistory:
    """Undo and redo of the people's boxes, Qt-free: the (people, selected id) snapshots before
    each edit. The window records one step per edit: a whole drag is one, so is each key nudge,
    a deletion or a detection."""

    def __init__(self, limit: int = UNDO_LENGTH) -> None:
        self.limit = limit
        self._undo: list = []
        self._redo: list = []

    def record(self, before, after) -> None:
        if before == after:
            return
        self._undo.append(before)
        del self._undo[:-self.limit]
        self._redo.clear()

    def undo(self, current):
        """(whether there was a step, the snapshot to go back to)."""
        if not self._undo:
            return False, current
        self._redo.append(current)
        return True, self._undo.pop()

    def redo(self, current):
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
    fast_path: str = ""  # the background build's status (pipeline/warm_start.py); "" when none ran
    load_seconds: float = 0.0
    problem: str = ""  # why no model is usable (shown with how to get one)

    @property
    def short_name(self) -> str:
        if self.folder is None:
            return "no model"
        return "demo model (random weights)" if self.synthetic else self.folder.name


@dataclass
class PersonShown:
    """One person's result in a bundle, with what the views draw of it alone."""

    person_id: int
    key: tuple  # people.result_key it was run with (box, mode, prompts)
    result: "MeshResult"
    colour: int  # index into the person colours
    pca_rgb: np.ndarray  # (h, w, 3) uint8 PCA of this person's backbone features
    ran_ms: float = 0.0  # the model time of the run that made it (kept results keep theirs)
    warnings: tuple = ()  # what looks wrong (pipeline/person_warnings.py), beside them in the list

    @property
    def box(self) -> Optional[Box]:
        return self.key[0]


@dataclass
class ResultBundle:
    """The photo's finished inference: every person's result (those this request ran and those it
    kept from before), with what the views need already computed on the worker."""

    request_id: int
    people: dict  # person id → PersonShown, in the list's order
    image_id: int  # which photo (AppState.image_id) it belongs to
    mesh_layer: np.ndarray  # (h, w, 4) uint8 RGBA: every person's shaded mesh, one z-buffer
    layer_scale: float  # mesh_layer pixels per photo pixel (<= 1 for very large photos)
    display_vertices: np.ndarray  # (V, 3) float32: all people, camera frame made Z up, centred
    display_normals: np.ndarray  # (V, 3) float32 unit vertex normals
    display_colours: np.ndarray  # (V, 4) float32 RGBA per vertex (each person's colour)
    faces: np.ndarray  # (F, 3) uint32 into display_vertices
    extent: np.ndarray  # (3,) size of the people's bounding box in metres
    camera_position: np.ndarray  # (3,) the photo's camera in the same (centred) display frame
    ran: tuple = ()  # ids this request ran (the others were kept)
    selected: int = 0  # whose result `result`, `box` and `pca_rgb` are
    timings_ms: dict = field(default_factory=dict)  # this request's stages (empty: nothing ran)
    postprocess_ms: float = 0.0
    submitted_at: float = 0.0  # time.perf_counter() when the request was made
    shown_ms: float = 0.0  # request → shown on screen

    @property
    def shown(self) -> PersonShown:
        """The selected person's entry, or the first one's."""
        return self.people.get(self.selected) or next(iter(self.people.values()))

    @property
    def result(self) -> "MeshResult":
        return self.shown.result

    @property
    def box(self) -> Optional[Box]:
        return self.shown.box

    @property
    def pca_rgb(self) -> np.ndarray:
        return self.shown.pca_rgb

    @property
    def results(self) -> list:
        """Every person's MeshResult, in the list's order (exports of the whole photo)."""
        return [p.result for p in self.people.values()]


class AppState(QObject):
    imageChanged = Signal()
    boxChanged = Signal()  # the people (their boxes, the list) or the selection changed
    cameraChanged = Signal()  # the photo's camera (a field of view typed in)
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
        self.camera = None  # pipeline.photo_camera.PhotoCamera of the photo (EXIF, default or the user's)
        self.people: People = ()  # none: the whole photo is run as one person
        self.selected: Optional[int] = None  # the person the box tools edit
        self._next_id = 1
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

    def set_image(self, image: np.ndarray, path: Optional[Path], camera=None) -> None:
        """A new photo; `camera`: its PhotoCamera (None: upstream's default camera)."""
        self.image = image
        self.image_path = Path(path) if path is not None else None
        self.camera = camera
        self.image_id += 1
        self.people, self.selected, self._next_id = (), None, 1
        self.box_history.clear()
        self.bundle = None
        self.imageChanged.emit()
        self.boxChanged.emit()
        self.resultChanged.emit()

    @property
    def camera_key(self) -> tuple:
        """The intrinsics results depend on, as a tuple (empty: the default camera)."""
        return () if self.camera is None else tuple(float(v) for v in self.camera.intrinsics.ravel())

    @property
    def intrinsics(self):
        return None if self.camera is None else self.camera.intrinsics

    def set_camera(self, camera) -> None:
        self.camera = camera
        self.cameraChanged.emit()

    def set_height(self, person_id: int, height_m: Optional[float]) -> bool:
        """Person `person_id` is `height_m` tall (None: not known)."""
        person = self.person(person_id)
        if person is None or person.height_m == height_m:
            return False
        self.set_people(tuple(replace(p, height_m=height_m) if p.id == person_id else p for p in self.people),
                        self.selected)
        return True

    @property
    def current_bundle(self) -> Optional[ResultBundle]:
        """The latest result if it is of the photo open now (None: none yet, or an older photo's)."""
        b = self.bundle
        return b if b is not None and b.image_id == self.image_id else None

    @property
    def selected_person(self) -> Optional[Person]:
        return next((p for p in self.people if p.id == self.selected), None)

    @property
    def box(self) -> Optional[Box]:
        """The selected person's box (None: nobody is selected, or the whole photo is used)."""
        person = self.selected_person
        return None if person is None else person.box

    def person(self, person_id: int) -> Optional[Person]:
        return next((p for p in self.people if p.id == person_id), None)

    def snapshot(self) -> tuple:
        """What Undo / Redo restore: the people and who is selected."""
        return (self.people, self.selected)

    def _checked(self, box) -> Optional[Box]:
        from ..errors import UserError

        try:
            return check_box(box, self.image_hw)
        except UserError as exc:
            self.post(str(exc), "error")
            return None

    def set_box(self, box: Optional[Box]) -> bool:
        """The single-box edit: the selected person's box becomes `box` (a new person when nobody
        is selected); None removes everyone, so the whole photo is used. A box that is empty or
        misses the photo is refused with a message; returns whether it was accepted."""
        if self.image is None:
            return False
        if box is None:
            if self.people:
                self.set_people((), None)
            return True
        box = self._checked(box)
        if box is None:
            return False
        person = self.selected_person
        if person is None:
            return self.add_person(box) is not None
        if person.box != box:
            self.set_people(tuple(p.moved(box) if p.id == person.id else p for p in self.people), person.id)
        return True

    def add_person(self, box: Box, source: str = "user", score: Optional[float] = None,
                   select: bool = True) -> Optional[int]:
        """A new person with this box (checked as set_box checks); their id, or None if refused."""
        if self.image is None:
            return None
        box = self._checked(box)
        if box is None:
            return None
        person = Person(self._next_id, box, source, score, free_colour(self.people))
        self.set_people(self.people + (person,), person.id if select else self.selected)
        return person.id

    def move_person(self, person_id: int, box: Box) -> bool:
        box = self._checked(box)
        if box is None or self.person(person_id) is None:
            return False
        self.set_people(tuple(p.moved(box) if p.id == person_id else p for p in self.people), self.selected)
        return True

    def remove_person(self, person_id: int) -> bool:
        if self.person(person_id) is None:
            return False
        people = tuple(p for p in self.people if p.id != person_id)
        selected = self.selected if self.selected != person_id else (people[-1].id if people else None)
        self.set_people(people, selected)
        return True

    def select(self, person_id: Optional[int]) -> None:
        if person_id is not None and self.person(person_id) is None:
            return
        if person_id != self.selected:
            self.selected = person_id
            if self.bundle is not None and person_id in self.bundle.people:
                self.bundle.selected = person_id
            self.boxChanged.emit()
            self.resultChanged.emit()  # the views showing one person (features) follow the selection

    def set_people(self, people: People, selected: Optional[int]) -> None:
        """Replace the list (undo / redo, a detection); ids are never reused."""
        people = tuple(people)
        if selected is not None and all(p.id != selected for p in people):
            selected = people[-1].id if people else None
        if (people, selected) == (self.people, self.selected):
            return
        selection_moved = selected != self.selected
        self.people, self.selected = people, selected
        self._next_id = max([self._next_id] + [p.id + 1 for p in people])
        if selection_moved and self.bundle is not None and selected in self.bundle.people:
            self.bundle.selected = selected
        self.boxChanged.emit()
        if selection_moved:
            self.resultChanged.emit()

    @property
    def next_person_id(self) -> int:
        return self._next_id

    # -- results -------------------------------------------------------------------------
    def set_result(self, bundle: ResultBundle) -> None:
        if self.selected in bundle.people:
            bundle.selected = self.selected
        self.bundle = bundle
        self.runs += 1
        self.resultChanged.emit()
        if bundle.timings_ms:  # a request that only re-drew kept results ran nothing
            timings = dict(bundle.timings_ms)
            timings["display"] = bundle.postprocess_ms
            self.history.append(timings)
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
