"""Panel 3: the interactive OpenGL mesh viewer (pyqtgraph.opengl).

Mouse: left-drag orbits, Ctrl+left-drag / Shift+left-drag / middle-drag pans, right-drag or
the wheel zooms. Keyboard (when the view has focus): arrows orbit, Shift+arrows pan, +/-
zoom, 1 front, 2 side, 3 three-quarter, R or Home resets. The mesh arrives centred and upright
(see render.camera_to_display) with vertex normals, and is lit by a camera-fixed key + fill
light with a soft rim, so its shape reads well from any angle.
"""

from __future__ import annotations

import math
import os
import numpy as np

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph.opengl as gl  # noqa: E402
from pyqtgraph.opengl import shaders  # noqa: E402
from PySide6.QtCore import Qt, QTimer, Signal  # noqa: E402
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QVector3D, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QLabel, QStackedLayout, QVBoxLayout, QWidget  # noqa: E402

from . import style  # noqa: E402
from .state import AppState  # noqa: E402

VIEWS = {  # name: (azimuth, elevation) in pyqtgraph's Z-up world; the photo's camera is on -Y
    "front": (-90.0, 4.0),
    "side": (0.0, 4.0),
    "three_quarter": (-50.0, 14.0),
}
MESH_RGBA = (0.53, 0.69, 0.98, 1.0)
CAMERA_SIZE_M = 0.3

CLAY = shaders.ShaderProgram("sam3dbody_clay", [
    shaders.VertexShader("""
        uniform mat4 u_mvp;
        uniform mat3 u_normal;
        attribute vec4 a_position;
        attribute vec3 a_normal;
        attribute vec4 a_color;
        varying vec4 v_color;
        varying vec3 v_normal;
        void main() {
            v_normal = normalize(u_normal * a_normal);
            v_color = a_color;
            gl_Position = u_mvp * a_position;
        }
    """),
    shaders.FragmentShader("""
        #ifdef GL_ES
        precision mediump float;
        #endif
        varying vec4 v_color;
        varying vec3 v_normal;
        void main() {
            vec3 n = normalize(v_normal);
            vec3 key = normalize(vec3(0.45, 0.55, 1.0));
            vec3 fill = normalize(vec3(-0.7, -0.1, 0.6));
            float diffuse = 0.72 * max(dot(n, key), 0.0) + 0.28 * max(dot(n, fill), 0.0);
            float rim = pow(1.0 - abs(n.z), 3.0) * 0.22;
            vec3 rgb = v_color.rgb * (0.2 + diffuse) + vec3(rim);
            gl_FragColor = vec4(rgb, v_color.a);
        }
    """),
])


class GLView(gl.GLViewWidget):
    """GLViewWidget with right-drag zoom, Shift-drag pan and keyboard view presets."""

    viewKey = Signal(str)
    cameraMoved = Signal()  # the user orbited, panned or zoomed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.initialized = False

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.cameraMoved.emit()
        super().mousePressEvent(ev)

    def initializeGL(self) -> None:
        super().initializeGL()
        self.initialized = True

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        if not hasattr(self, "mousePos"):
            self.mousePos = pos
        diff = pos - self.mousePos
        if ev.buttons() == Qt.MouseButton.RightButton:
            self.mousePos = pos
            self.opts["distance"] *= 1.01 ** diff.y()
            self.update()
        elif ev.buttons() == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.mousePos = pos
            self.pan(diff.x(), diff.y(), 0, relative="view")
        else:
            super().mouseMoveEvent(ev)

    def wheelEvent(self, ev: QWheelEvent) -> None:
        delta = ev.angleDelta().y() or ev.angleDelta().x()
        self.cameraMoved.emit()
        self.opts["distance"] *= 0.999 ** delta
        self.update()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key, mods = ev.key(), ev.modifiers()
        pans = {Qt.Key.Key_Left: (-12, 0), Qt.Key.Key_Right: (12, 0), Qt.Key.Key_Up: (0, -12), Qt.Key.Key_Down: (0, 12)}
        if key in pans and mods & Qt.KeyboardModifier.ShiftModifier:
            self.pan(*pans[key], 0, relative="view")
            return
        named = {Qt.Key.Key_1: "front", Qt.Key.Key_2: "side", Qt.Key.Key_3: "three_quarter",
                 Qt.Key.Key_R: "reset", Qt.Key.Key_Home: "reset"}
        if key in named:
            self.viewKey.emit(named[key])
            return
        self.cameraMoved.emit()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.opts["distance"] /= 1.15
            self.update()
            return
        if key == Qt.Key.Key_Minus:
            self.opts["distance"] *= 1.15
            self.update()
            return
        super().keyPressEvent(ev)


class MeshView(QWidget):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setAccessibleName("Interactive 3-D mesh view")
        self.view = GLView(self)
        self.view.setBackgroundColor(QColor(style.PANEL))
        self.view.setToolTip("Drag: orbit · Shift/Ctrl-drag or middle-drag: pan · wheel or right-drag: zoom\n"
                             "Keys: arrows orbit · Shift+arrows pan · +/- zoom · 1 front · 2 side · 3 ¾ · R reset")
        self.view.viewKey.connect(self._on_view_key)
        self.view.cameraMoved.connect(self._stop_fitting)
        self.fitting = True  # the camera frames the whole body, also after a resize, until the user moves it
        self.grid = gl.GLGridItem(color=(255, 255, 255, 28))
        self.grid.setSize(4, 4)
        self.grid.setSpacing(0.25, 0.25)
        self.view.addItem(self.grid)
        self.mesh_item = gl.GLMeshItem(smooth=True, shader=CLAY, color=MESH_RGBA, glOptions="opaque",
                                       drawEdges=False, edgeColor=(0.1, 0.14, 0.22, 1.0))
        self.mesh_item.setVisible(False)
        self.view.addItem(self.mesh_item)
        # The photo's camera, where it stood: the people are placed by their camera translation.
        self.camera_item = gl.GLLinePlotItem(color=(1.0, 0.77, 0.24, 0.9), width=1.5, mode="lines", antialias=True)
        self.camera_item.setVisible(False)
        self.view.addItem(self.camera_item)
        self.extent = np.array([0.6, 0.4, 1.8], dtype=np.float32)
        self.current_view = "front"
        self.num_vertices = 0
        self._fit_on_next = True
        self._message = QLabel(self)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setStyleSheet(f"color: {style.TEXT_DIM}; background: {style.PANEL};")
        self._stack = QStackedLayout()
        self._stack.setStackingMode(QStackedLayout.StackingMode.StackAll)
        self._stack.addWidget(self._message)
        self._stack.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._stack)
        self._set_message("The 3-D mesh appears after the first run")
        self.hint = QLabel("drag: orbit · shift-drag: pan · wheel: zoom · 1 / 2 / 3: views · R: reset", self)
        self.hint.setStyleSheet(f"color: {style.TEXT_DIM}; background: transparent; font-size: 8pt;")
        self.hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hint.hide()
        state.resultChanged.connect(self._on_result)
        state.imageChanged.connect(self._on_image)
        self._gl_check = QTimer(self)  # owned by the view: never fires after it is gone
        self._gl_check.setSingleShot(True)
        self._gl_check.timeout.connect(self._check_gl)
        self._gl_check.start(1500)

    # -- data ----------------------------------------------------------------------------
    def _set_message(self, text: str) -> None:
        self._message.setText(text)
        self._message.setVisible(bool(text))
        self._message.raise_()

    def _check_gl(self) -> None:
        if self.isVisible() and not self.view.isValid():
            self._set_message("The 3-D view needs OpenGL 2.1 or newer, which this display does not offer.\n"
                              "The mesh can still be exported (File ▸ Export mesh).")

    def _on_image(self) -> None:
        self._fit_on_next = True
        if self.state.bundle is None:
            self.mesh_item.setVisible(False)
            self.camera_item.setVisible(False)
            self._set_message("The 3-D mesh appears after the first run")

    def show_state(self) -> None:
        """The photo's result again (after a clip was shown)."""
        if self.state.bundle is not None:
            self._on_result()
        else:
            self._on_image()

    def show_people(self, people) -> None:
        """Meshes not from the photo (a clip's frame): [(colour index, MeshResult)], placed as the
        photo's people are (render.display_people)."""
        from .render import display_people

        if not people:
            self.mesh_item.setVisible(False)
            self.camera_item.setVisible(False)
            return
        self._show(*display_people(people))

    def _on_result(self) -> None:
        b = self.state.bundle
        if b is None:
            return
        self._show(b.display_vertices, b.faces, b.display_normals, b.display_colours, b.extent, b.camera_position)

    def _show(self, vertices, faces, normals, colours, extent, camera_position) -> None:
        md = _MeshData(vertices, faces, normals, colours)
        self.mesh_item.setMeshData(meshdata=md)
        self.mesh_item.setVisible(True)
        self.camera_item.setData(pos=camera_lines(camera_position, size=CAMERA_SIZE_M))
        self.camera_item.setVisible(True)
        self.num_vertices = int(vertices.shape[0])
        self.extent = extent
        # The floor sits under the feet (the mesh is centred on its bounding box).
        self.grid.resetTransform()
        self.grid.translate(0, 0, -float(extent[2]) / 2)
        if self.view.isValid() or not self._message.text().startswith("The 3-D view needs"):
            self._set_message("")
        self.hint.setVisible(True)
        self.hint.raise_()
        self._place_hint()
        if self._fit_on_next:
            self._fit_on_next = False
            self.set_view("front")

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._place_hint()
        if self.fitting and self.num_vertices:
            # A preset view framed the body for the old size: frame it again (a shorter view
            # would cut off the head and feet).
            self.view.opts["distance"] = self.fit_distance()
            self.view.update()

    def _stop_fitting(self) -> None:
        self.fitting = False

    def _place_hint(self) -> None:
        self.hint.adjustSize()
        self.hint.move(10, self.height() - self.hint.height() - 6)

    # -- camera --------------------------------------------------------------------------
    def fit_distance(self) -> float:
        fov = math.radians(self.view.opts.get("fov", 60))
        w, h = max(self.view.width(), 1), max(self.view.height(), 1)
        tan_h = math.tan(fov / 2)
        tan_v = tan_h * h / w
        height = float(self.extent[2]) * 0.58
        width = float(max(self.extent[0], self.extent[1])) * 0.58
        return max(height / tan_v, width / tan_h) + float(max(self.extent[0], self.extent[1])) / 2

    def set_view(self, name: str) -> None:
        if name == "reset":
            name = "front"
        azimuth, elevation = VIEWS[name]
        self.current_view = name
        self.fitting = True
        self.view.setCameraPosition(pos=QVector3D(0, 0, 0), distance=self.fit_distance(),
                                    elevation=elevation, azimuth=azimuth)
        self.view.opts["fov"] = 60

    def reset_view(self) -> None:
        self.set_view("front")

    def _on_view_key(self, name: str) -> None:
        self.set_view(name)

    def set_wireframe(self, on: bool) -> None:
        self.mesh_item.opts["drawEdges"] = bool(on)
        self.mesh_item.meshDataChanged()

    def grab_image(self) -> QImage:
        """The 3-D view as rendered (needs a working OpenGL context)."""
        return self.view.grabFramebuffer()


def camera_lines(position: np.ndarray, size: float) -> np.ndarray:
    """A camera drawn as a small pyramid at `position`, looking along +Y with Z up (the viewer's
    world, render.camera_to_display), as line-segment end points for GLLinePlotItem."""
    c = np.asarray(position, dtype=np.float32)
    half_w, half_h = size * 0.5, size * 0.375
    corners = [c + np.array([dx * half_w, size, dz * half_h], np.float32) for dx, dz in ((-1, 1), (1, 1), (1, -1), (-1, -1))]
    segments = []
    for i, corner in enumerate(corners):
        segments += [c, corner, corner, corners[(i + 1) % 4]]
    top = c + np.array([0.0, size, half_h * 1.6], np.float32)  # which way is up
    segments += [corners[0], top, top, corners[1]]
    return np.array(segments, dtype=np.float32)


class _MeshData(gl.MeshData):
    """MeshData with normals computed on the worker (pyqtgraph's own loop is slow)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray,
                 colours: np.ndarray | None = None) -> None:
        super().__init__(vertexes=vertices, faces=faces, vertexColors=colours)
        self._vertexNormals = normals
