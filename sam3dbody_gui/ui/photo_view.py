"""Panel 1: the photo, the people's boxes (draw / select / move / resize / nudge) and the meshes.

Mouse: drag on empty space to draw a new person's box; click a box to select that person, drag
inside it to move it; drag a handle of the selected box (corners, edge midpoints) to resize.
Keyboard (when the photo has focus): arrows move the selected box by one pixel (Shift: 10),
Ctrl+arrows move its right/bottom edge (resize), Delete removes the selected person (with nobody
left the whole image is used), Tab / Shift+Tab select the next / previous person, Esc cancels a
drag. Edits go out as signals; the window's BoxEditor applies them (and records Undo steps).

The meshes arrive as one transparent RGBA layer rendered on the worker (one z-buffer for all
the people), so the opacity slider and the keypoint switch only re-composite here.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from . import style
from .photo_painting import PhotoPainting
from .state import AppState, Box

GRAB_PX = 9  # how close the pointer must be to grab a handle or edge
MIN_BOX_PX = 4.0  # in photo pixels; a smaller drag is a click, not a box
KEYPOINT_GRAB_PX = 5  # how close the pointer must be to grab a shown keypoint (a prompt drag)
MARGIN = 8

HANDLE_CURSORS = {
    "tl": Qt.CursorShape.SizeFDiagCursor, "br": Qt.CursorShape.SizeFDiagCursor,
    "tr": Qt.CursorShape.SizeBDiagCursor, "bl": Qt.CursorShape.SizeBDiagCursor,
    "l": Qt.CursorShape.SizeHorCursor, "r": Qt.CursorShape.SizeHorCursor,
    "t": Qt.CursorShape.SizeVerCursor, "b": Qt.CursorShape.SizeVerCursor,
    "move": Qt.CursorShape.SizeAllCursor, None: Qt.CursorShape.CrossCursor,
}


def numpy_to_qimage(array: np.ndarray) -> QImage:
    """(H, W, 3|4) uint8 → a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    h, w, c = array.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    return QImage(array.data, w, h, c * w, fmt).copy()


class PhotoView(PhotoPainting, QWidget):
    boxEdited = Signal(object)  # the selected person's new box (None: remove everyone)
    personDrawn = Signal(object)  # a drag on empty space made a box: a new person (selected)
    personClicked = Signal(int)  # a press on this person's box: select them
    personDeleted = Signal(int)  # Delete on the selected person
    selectionStepped = Signal(int)  # Tab (+1) / Shift+Tab (-1)
    keypointDragged = Signal(int, float, float)  # the selected person's keypoint (MHR70 index) dragged to x, y
    dragStarted = Signal()  # a box (or keypoint) drag begins
    dragCancelled = Signal()  # Esc during a drag: put everything back as it was before it
    dragFinished = Signal()  # the mouse let go of the box (or Esc cancelled the drag)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(240, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Photo with person box and mesh overlay")
        self.setToolTip("Drag on the photo to add a person's box · click a box to select it · drag inside to move"
                        " · drag handles to resize\nArrows: nudge (Shift ×10) · Ctrl+arrows: resize · "
                        "Delete: remove the person · Tab: next person")
        self._photo: Optional[QImage] = None
        self._layer: Optional[QImage] = None
        self._layer_image_id = -1
        self._drag: Optional[str] = None  # "draw" | "move" | handle name
        self._drag_origin = QPointF()
        self._drag_box: Optional[Box] = None  # the selected box when the drag began
        self._drew = False  # this draw-drag has made its person already
        self._keypoint = -1  # the keypoint a "keypoint" drag holds
        self.placing = -1  # a keypoint picked by name (people list): the next press on the photo places it
        self.busy = False
        state.imageChanged.connect(self._on_image)
        state.resultChanged.connect(self._on_result)
        state.boxChanged.connect(self.update)
        state.settingsChanged.connect(self.update)
        state.busyChanged.connect(self._on_busy)

    # -- state → pixels ------------------------------------------------------------------
    def _on_image(self) -> None:
        self._photo = None if self.state.image is None else numpy_to_qimage(self.state.image)
        self._layer = None
        self.update()

    def _on_result(self) -> None:
        b = self.state.bundle
        if b is None:
            self._layer = None
        else:
            self._layer = numpy_to_qimage(b.mesh_layer)
            self._layer_image_id = b.image_id
        self.update()

    def _on_busy(self, busy: bool) -> None:
        self.busy = busy
        self.update()

    # -- geometry ------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the photo is drawn: fitted, centred, aspect kept."""
        if self._photo is None:
            return QRectF()
        avail = QRectF(self.rect()).adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)
        w, h = self._photo.width(), self._photo.height()
        s = min(avail.width() / w, avail.height() / h)
        rw, rh = w * s, h * s
        return QRectF(avail.center().x() - rw / 2, avail.center().y() - rh / 2, rw, rh)

    def _scale(self) -> float:
        r = self.image_rect()
        return r.width() / self._photo.width() if self._photo is not None and self._photo.width() else 1.0

    def to_image(self, p: QPointF) -> QPointF:
        r, s = self.image_rect(), self._scale()
        return QPointF((p.x() - r.x()) / s, (p.y() - r.y()) / s)

    def to_widget(self, x: float, y: float) -> QPointF:
        r, s = self.image_rect(), self._scale()
        return QPointF(r.x() + x * s, r.y() + y * s)

    def box_rect(self, box: Optional[Box] = None) -> QRectF:
        """Where a box (default: the selected person's) is on the widget."""
        box = self.state.box if box is None else box
        if box is None:
            return QRectF()
        a, b = self.to_widget(box[0], box[1]), self.to_widget(box[2], box[3])
        return QRectF(a, b).normalized()

    def _handles(self) -> dict[str, QPointF]:
        r = self.box_rect()
        if r.isNull():
            return {}
        cx, cy = r.center().x(), r.center().y()
        return {"tl": r.topLeft(), "t": QPointF(cx, r.top()), "tr": r.topRight(), "r": QPointF(r.right(), cy),
                "br": r.bottomRight(), "b": QPointF(cx, r.bottom()), "bl": r.bottomLeft(), "l": QPointF(r.left(), cy)}

    def hit_test(self, p: QPointF) -> Optional[str]:
        """What a press at `p` grabs of the selected box: a handle, an edge, "move" (inside), or None."""
        for name, h in self._handles().items():
            if abs(p.x() - h.x()) <= GRAB_PX and abs(p.y() - h.y()) <= GRAB_PX:
                return name
        r = self.box_rect()
        if not r.isNull():
            near_x = r.left() - GRAB_PX / 2 <= p.x() <= r.right() + GRAB_PX / 2
            near_y = r.top() - GRAB_PX / 2 <= p.y() <= r.bottom() + GRAB_PX / 2
            if near_y and abs(p.x() - r.left()) <= GRAB_PX / 2:
                return "l"
            if near_y and abs(p.x() - r.right()) <= GRAB_PX / 2:
                return "r"
            if near_x and abs(p.y() - r.top()) <= GRAB_PX / 2:
                return "t"
            if near_x and abs(p.y() - r.bottom()) <= GRAB_PX / 2:
                return "b"
            if r.contains(p):
                return "move"
        return None

    def person_at(self, p: QPointF) -> Optional[int]:
        """The unselected person whose box holds `p` (the smallest, so a box inside another can be picked)."""
        inside = []
        for q in self.state.people:
            if q.id != self.state.selected and q.box is not None:
                r = self.box_rect(q.box)
                if r.contains(p):
                    inside.append((r.width() * r.height(), q.id))
        return min(inside)[1] if inside else None

    def _selected_keypoints(self) -> Optional[np.ndarray]:
        b, s = self.state.current_bundle, self.state
        if b is None or not s.settings.show_keypoints or s.selected not in b.people:
            return None
        return b.people[s.selected].result.keypoints_2d

    def keypoint_at(self, p: QPointF) -> int:
        """The MHR70 index of the selected person's shown keypoint under `p` (-1: none)."""
        keypoints = self._selected_keypoints()
        if keypoints is None:
            return -1
        r, s = self.image_rect(), self._scale()
        xy = np.asarray(keypoints, dtype=np.float64) * s + np.array([r.x(), r.y()])
        d = np.hypot(xy[:, 0] - p.x(), xy[:, 1] - p.y())
        d[~np.isfinite(d)] = np.inf
        best = int(np.argmin(d))
        return best if d[best] <= KEYPOINT_GRAB_PX else -1

    def _moved_keypoint(self, pos: QPointF) -> bool:
        keypoints = self._selected_keypoints()
        if keypoints is None:
            return False
        start = self.to_widget(*keypoints[self._keypoint])
        return abs(pos.x() - start.x()) + abs(pos.y() - start.y()) > 1.0

    def _clamp_point(self, p: QPointF) -> QPointF:
        h, w = self.state.image_hw
        return QPointF(min(max(p.x(), 0.0), float(w)), min(max(p.y(), 0.0), float(h)))

    # -- mouse ---------------------------------------------------------------------------
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self._photo is None:
            return super().mousePressEvent(ev)
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = ev.position()
        keypoint = self.keypoint_at(pos)
        placing, self.placing = self.placing, -1
        if placing >= 0 and self.image_rect().contains(pos):  # a keypoint picked by name: it goes here
            keypoint = placing
        if keypoint >= 0:  # a shown keypoint of the selected person: drag it where it belongs (a prompt)
            self._drag, self._keypoint = "keypoint", keypoint
            self.dragStarted.emit()
            if placing >= 0:
                p = self._clamp_point(self.to_image(pos))
                self.keypointDragged.emit(keypoint, p.x(), p.y())
            ev.accept()
            return
        hit = self.hit_test(pos)
        if hit is None:
            other = self.person_at(pos)
            if other is not None:  # a press on another person's box selects them, and may move them
                self.personClicked.emit(other)
                hit = "move"
        if hit is None and not self.image_rect().contains(pos):
            return
        self._drag = hit or "draw"
        self._drew = False
        self._drag_origin = self._clamp_point(self.to_image(pos))
        self._drag_box = self.state.box
        self.dragStarted.emit()
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if self._drag is None:
            if self._photo is not None:
                hit = self.hit_test(pos) or ("move" if self.person_at(pos) is not None else None)
                hit = None if self.placing >= 0 else hit
                self.setCursor(QCursor(HANDLE_CURSORS.get(hit, Qt.CursorShape.CrossCursor)))
            return
        if self._drag == "keypoint":
            p = self._clamp_point(self.to_image(pos))
            self.keypointDragged.emit(self._keypoint, p.x(), p.y())
            return
        self._send(self._dragged_box(self._clamp_point(self.to_image(pos))))

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self._drag is None:
            return super().mouseReleaseEvent(ev)
        if self._drag == "keypoint":
            if self._moved_keypoint(ev.position()):
                p = self._clamp_point(self.to_image(ev.position()))
                self.keypointDragged.emit(self._keypoint, p.x(), p.y())
            self._drag = None
            self.dragFinished.emit()
            return
        self._send(self._dragged_box(self._clamp_point(self.to_image(ev.position()))))
        self._drag = None
        self.dragFinished.emit()

    def _send(self, box: Optional[Box]) -> None:
        """A drag's box: the first box of a draw-drag makes a new person, every other moves the selected one."""
        if box is None:
            return
        if self._drag == "draw" and not self._drew:
            self._drew = True
            self.personDrawn.emit(box)
        else:
            self.boxEdited.emit(box)

    @property
    def dragging(self) -> bool:
        """A box drag is under way (the window runs the fast body mode meanwhile)."""
        return self._drag is not None

    def _dragged_box(self, p: QPointF) -> Optional[Box]:
        o, old = self._drag_origin, self._drag_box
        h, w = self.state.image_hw
        if self._drag == "draw":
            x1, x2 = sorted((o.x(), p.x()))
            y1, y2 = sorted((o.y(), p.y()))
            if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
                return None
            return (x1, y1, x2, y2)
        if old is None:
            return None
        x1, y1, x2, y2 = old
        dx, dy = p.x() - o.x(), p.y() - o.y()
        if self._drag == "move":
            dx = min(max(dx, -x1), w - x2)
            dy = min(max(dy, -y1), h - y2)
            return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)
        d = self._drag
        if "l" in d:
            x1 = min(max(x1 + dx, 0.0), x2 - MIN_BOX_PX)
        if "r" in d:
            x2 = max(min(x2 + dx, float(w)), x1 + MIN_BOX_PX)
        if "t" in d:
            y1 = min(max(y1 + dy, 0.0), y2 - MIN_BOX_PX)
        if "b" in d:
            y2 = max(min(y2 + dy, float(h)), y1 + MIN_BOX_PX)
        return (x1, y1, x2, y2)

    # -- keyboard ------------------------------------------------------------------------
    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key, mods = ev.key(), ev.modifiers()
        if key == Qt.Key.Key_Escape and self._drag is not None:
            self._drag = None
            self.dragCancelled.emit()
            self.dragFinished.emit()
            return
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.state.selected is not None:
            self.personDeleted.emit(self.state.selected)
            return
        arrows = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        if key in arrows and self.state.image is not None:
            box = nudged_box(self.state.box, self.state.image_hw, *arrows[key],
                             step=10.0 if mods & Qt.KeyboardModifier.ShiftModifier else 1.0,
                             resize=bool(mods & Qt.KeyboardModifier.ControlModifier))
            if box is not None:
                self.boxEdited.emit(box)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def focusNextPrevChild(self, forward: bool) -> bool:  # noqa: N802 - Qt's name
        """Tab / Shift+Tab step through the people while there are several (else: Qt's focus chain)."""
        if len(self.state.people) > 1 and self.hasFocus():
            self.selectionStepped.emit(1 if forward else -1)
            return True
        return super().focusNextPrevChild(forward)

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(style.PANEL))
        if self._photo is None:
            self._draw_empty(p)
            return
        target = self.image_rect()
        p.drawImage(target, self._photo)
        state, settings = self.state, self.state.settings
        bundle = state.current_bundle
        # What the model found stays on the photo: keypoints (and a mesh) can fall outside it.
        p.setClipRect(target)
        if bundle is not None and self._layer is not None:
            p.setOpacity(settings.overlay_opacity * (0.45 if self.stale(bundle) else 1.0))  # a box moved since
            p.drawImage(target, self._layer)
            p.setOpacity(1.0)
        if bundle is not None and settings.show_keypoints:
            for shown in bundle.people.values():
                self._draw_keypoints(p, shown.result.keypoints_2d, selected=shown.person_id == state.selected
                                     or len(bundle.people) == 1)
        p.setClipping(False)
        if len(state.people) == 1 and state.box is not None:
            self._shade_outside(p, target, self.box_rect())
        for person in state.people:
            if person.id != state.selected:
                self._draw_person_box(p, person, selected=False)
        if state.selected_person is not None:
            self._draw_person_box(p, state.selected_person, selected=True)
            self._draw_prompts(p, state.selected_person.prompts)
        if not state.people:
            self._draw_pill(p, "No box: the whole photo is used · drag to draw one", top=False)
        if self.busy:
            self._draw_pill(p, "running…", top=True)

    def stale(self, bundle) -> bool:
        """Whether some person's box differs from the one their shown mesh was made with."""
        boxes = {p.id: p.box for p in self.state.people} or {0: None}
        return set(boxes) != set(bundle.people) or any(bundle.people[i].box != box for i, box in boxes.items())

    def _draw_empty(self, p: QPainter) -> None:
        p.setPen(QColor(style.TEXT_DIM))
        f = QFont(self.font())
        f.setPointSizeF(f.pointSizeF() * 1.15)
        p.setFont(f)
        p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                   "Open a photo with Ctrl+O\nor drop one here\n\n(File ▸ Open sample photo for a quick try)")

def nudged_box(box: Optional[Box], image_hw: tuple[int, int], dx: int, dy: int, step: float = 1.0,
               resize: bool = False) -> Optional[Box]:
    """Move the box by (dx, dy)·step photo pixels, or with `resize` move its right/bottom edge;
    kept inside the photo. With no box, resizing starts from the whole photo."""
    h, w = image_hw
    if box is None:
        if not resize:
            return None
        box = (0.0, 0.0, float(w), float(h))
    x1, y1, x2, y2 = box
    if resize:
        x2 = min(max(x2 + dx * step, x1 + MIN_BOX_PX), float(w))
        y2 = min(max(y2 + dy * step, y1 + MIN_BOX_PX), float(h))
        return (x1, y1, x2, y2)
    return (x1 + _shift(dx * step, x1, x2, w), y1 + _shift(dy * step, y1, y2, h),
            x2 + _shift(dx * step, x1, x2, w), y2 + _shift(dy * step, y1, y2, h))


def _shift(d: float, lo: float, hi: float, size: float) -> float:
    """Move [lo, hi] by d but not (further) out of [0, size]."""
    if d < 0:
        return max(d, min(0.0, -lo))
    if d > 0:
        return min(d, max(0.0, size - hi))
    return 0.0
