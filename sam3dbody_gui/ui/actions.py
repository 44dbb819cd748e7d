"""The window's commands, declared as data: one table per menu, and the toolbar's list (as
napari's `_qapp_model/qactions` do). `install_actions` turns them into QActions, menus and the
toolbar on the window.

An action's `slot` names what it calls, as an attribute path from the window ("run_now",
"mesh.set_view"), looked up when it fires; `args` are passed to it, and a checkable action
passes its new state. Each action is declared once, in the first menu that shows it; another
menu or the toolbar names it by its `name` (the window attribute that holds the QAction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar

Key = QKeySequence.StandardKey
SEPARATOR = "-"


@dataclass(frozen=True)
class ActionSpec:
    name: str  # the window attribute holding the QAction, e.g. "act_open"
    text: str
    slot: str  # attribute path from the window, e.g. "exports.export_mesh_dialog"
    args: tuple = ()
    shortcut: Union[str, tuple, QKeySequence.StandardKey, None] = None  # a tuple: several keys
    tip: str = ""  # status bar and tooltip
    checkable: bool = False
    icon_text: str = ""  # the label on the toolbar
    radio: str = ""  # exclusive group: checkable, fires on trigger (not on toggle)


@dataclass(frozen=True)
class Submenu:
    name: str  # the window attribute holding the QMenu
    text: str
    items: tuple = ()  # what the window does not fill in itself


Entry = Union[ActionSpec, Submenu, str]  # str: SEPARATOR or the name of an action declared before

FILE_MENU = ("&File", (
    ActionSpec("act_open", "&Open photo…", "open_dialog", shortcut=Key.Open,
               tip="Open a photo (or drop one on the window)", icon_text="Open…"),
    Submenu("recent_menu", "Open &recent"),  # filled each time it opens
    ActionSpec("act_sample", "Open &sample photo", "open_sample", shortcut="Ctrl+Shift+O",
               tip="The built-in public-domain photo", icon_text="Sample"),
    ActionSpec("act_open_video", "Open &video…", "video.open_dialog", shortcut="Ctrl+Alt+O",
               tip="Open a clip (mp4, mov, mkv, webm): track its people, smooth their motion, export the animation",
               icon_text="Video…"),
    ActionSpec("act_close_video", "&Close video", "video.close", tip="Back to the photo"),
    SEPARATOR,
    ActionSpec("act_export_mesh", "&Export mesh…", "exports.export_mesh_dialog", shortcut="Ctrl+E",
               tip="Save the mesh as OBJ, PLY or GLB", icon_text="Export mesh…"),
    Submenu("frame_menu", "Mesh export &frame", (
        ActionSpec("act_frame_camera", "&Camera frame (lines up with the photo)", "set_mesh_frame", ("camera",),
                   radio="mesh_frame"),
        ActionSpec("act_frame_upright", "&Upright frame (Y up, centred)", "set_mesh_frame", ("upright",),
                   radio="mesh_frame"),
    )),
    ActionSpec("act_export_overlay", "Export &overlay PNG…", "exports.export_image_dialog", ("overlay",),
               shortcut="Ctrl+Shift+E"),
    ActionSpec("act_export_pca", "Export &PCA map PNG…", "exports.export_image_dialog", ("pca",)),
    ActionSpec("act_export_view", "Export &3-D view PNG…", "exports.export_image_dialog", ("view",)),
    ActionSpec("act_export_json", "Export parameters &JSON…", "exports.export_json_dialog", shortcut="Ctrl+Shift+J"),
    ActionSpec("act_export_all", "Export &all…", "exports.export_all_dialog", shortcut="Ctrl+Shift+S",
               tip="Mesh, overlay, PCA map and parameters JSON into one folder, in one go"),
    ActionSpec("act_export_sheet", "Export contact s&heet PNG…", "exports.export_job_dialog", ("sheet",),
               tip="The model's crop, the overlay, a ¾ view and a side view side by side"),
    ActionSpec("act_export_turntable", "Export &turntable (GIF / MP4)…", "exports.export_job_dialog", ("turntable",),
               tip="The mesh turning a full turn"),
    ActionSpec("act_export_rigged", "Export ri&gged body (GLB)…", "exports.export_job_dialog", ("rigged",),
               tip="The MHR skeleton, posed, with the body skinned to it (glTF binary)"),
    ActionSpec("act_export_bvh", "Export skeleton &motion (BVH)…", "exports.export_job_dialog", ("bvh",),
               tip="The skeleton's pose as BVH motion (one frame)"),
    SEPARATOR,
    ActionSpec("act_settings", "Se&ttings…", "settings_dialog", shortcut="Ctrl+,",
               tip="Model folder, backend, precision, device", icon_text="Settings…"),
    SEPARATOR,
    ActionSpec("act_quit", "&Quit", "close", shortcut=Key.Quit),
))

BOX_MENU = ("&People", (
    ActionSpec("act_run", "&Run", "run_clicked", shortcut="F5", tip="Run the model on the photo and its people now",
               icon_text="▶ Run (F5)"),
    ActionSpec("act_detect", "&Detect people", "detect_people", shortcut="Ctrl+D",
               tip="Find every person in the photo with the person detector", icon_text="Detect people"),
    ActionSpec("act_undo_box", "&Undo box change", "box_editor.undo", shortcut="Ctrl+Z", tip="The boxes before the last change"),
    ActionSpec("act_redo_box", "Re&do box change", "box_editor.redo", shortcut=("Ctrl+Shift+Z", "Ctrl+Y")),
    ActionSpec("act_remove_person", "Re&move selected person", "box_editor.remove_person", shortcut="Ctrl+Backspace",
               tip="Delete the selected person's box"),
    ActionSpec("act_whole", "Remove all boxes (use &whole image)", "set_box", (None,), shortcut="Ctrl+Shift+A",
               tip="Remove every box: the whole photo is used", icon_text="Whole image"),
    ActionSpec("act_box", "Set box &numerically…", "box_dialog", shortcut="Ctrl+B", tip="Type the box corners in pixels"),
    ActionSpec("act_focus_photo", "Focus &photo (box keys)", "photo.setFocus", shortcut="Alt+1"),
))

VIEW_MENU = ("&View", (
    ActionSpec("act_keypoints", "Show &keypoints", "set_keypoints", shortcut="K", checkable=True),
    ActionSpec("act_opacity_up", "Overlay opacity &up", "nudge_opacity", (+10,), shortcut="]"),
    ActionSpec("act_opacity_down", "Overlay opacity &down", "nudge_opacity", (-10,), shortcut="["),
    SEPARATOR,
    ActionSpec("act_front", "&Front view", "mesh.set_view", ("front",), shortcut="Ctrl+1"),
    ActionSpec("act_side", "&Side view", "mesh.set_view", ("side",), shortcut="Ctrl+2"),
    ActionSpec("act_quarter", "&Three-quarter view", "mesh.set_view", ("three_quarter",), shortcut="Ctrl+3"),
    ActionSpec("act_reset_view", "&Reset 3-D view", "mesh.reset_view", shortcut="Ctrl+0"),
    ActionSpec("act_wire", "&Wireframe", "wire_button.setChecked", shortcut="Ctrl+Shift+W", checkable=True),
    ActionSpec("act_focus_mesh", "Focus 3-D &mesh (view keys)", "mesh.view.setFocus", shortcut="Alt+3"),
))

MODEL_MENU = ("&Model", (
    ActionSpec("act_models", "&Models…", "models_dialog",
               tip="What is installed; download the model from Hugging Face; choose a folder or the demo"),
    "act_settings",
    ActionSpec("act_choose_model", "Choose model &folder…", "choose_model_folder"),
    ActionSpec("act_demo", "Use &demo model (random weights)", "model_controller.use_demo_model",
               tip="A synthetic model with random weights: for trying the app, not for results"),
    ActionSpec("act_reload", "Re&load model", "model_controller.load_model", shortcut="Ctrl+R"),
))

HELP_MENU = ("&Help", (
    ActionSpec("act_get_model", "&Getting the model…", "show_model_help"),
    ActionSpec("act_keys", "&Keyboard and mouse…", "show_keys_help", shortcut=Key.HelpContents),
    ActionSpec("act_about", "&About", "show_about"),
))

MENUS = (FILE_MENU, BOX_MENU, VIEW_MENU, MODEL_MENU, HELP_MENU)
TOOLBAR = ("act_open", "act_sample", "act_open_video", SEPARATOR, "act_run", "act_detect", SEPARATOR, "act_export_mesh", SEPARATOR,
           "act_settings")
NEEDS_PHOTO = ("act_whole", "act_box", "act_detect", "act_remove_person")  # Run stays enabled: it says what it lacks (a photo, a model)
NEEDS_RESULT = ("act_export_mesh", "act_export_overlay", "act_export_pca", "act_export_view", "act_export_json",
                "act_export_all", "act_export_sheet", "act_export_turntable", "act_export_rigged", "act_export_bvh")


def _resolve(window, path: str):
    target = window
    for part in path.split("."):
        target = getattr(target, part)
    return target


def _make_action(window: QMainWindow, spec: ActionSpec, groups: dict[str, QActionGroup]) -> QAction:
    a = QAction(spec.text, window)
    if isinstance(spec.shortcut, tuple):
        a.setShortcuts([QKeySequence(k) for k in spec.shortcut])
    elif spec.shortcut is not None:
        a.setShortcut(QKeySequence(spec.shortcut))
    if spec.tip:
        a.setStatusTip(spec.tip)
        a.setToolTip(spec.tip)
    if spec.icon_text:
        a.setIconText(spec.icon_text)
    a.setCheckable(spec.checkable or bool(spec.radio))
    if spec.radio:
        groups.setdefault(spec.radio, QActionGroup(window)).addAction(a)
        a.triggered.connect(lambda _=False, s=spec: _resolve(window, s.slot)(*s.args))
    elif spec.checkable:
        a.toggled.connect(lambda on, s=spec: _resolve(window, s.slot)(*s.args, on))
    else:
        a.triggered.connect(lambda _=False, s=spec: _resolve(window, s.slot)(*s.args))
    window.addAction(a)  # shortcuts work even with the menu bar hidden
    return a


def _fill(window: QMainWindow, menu: QMenu, entries, actions: dict, groups: dict) -> None:
    for entry in entries:
        if entry == SEPARATOR:
            menu.addSeparator()
        elif isinstance(entry, str):
            menu.addAction(actions[entry])
        elif isinstance(entry, Submenu):
            sub = menu.addMenu(entry.text)
            setattr(window, entry.name, sub)
            _fill(window, sub, entry.items, actions, groups)
        else:
            actions[entry.name] = _make_action(window, entry, groups)
            setattr(window, entry.name, actions[entry.name])
            menu.addAction(actions[entry.name])


def install_actions(window: QMainWindow) -> dict[str, QAction]:
    """Menus, toolbar and shortcuts on `window`; each QAction (and submenu) also becomes the
    window attribute its table names. Returns the actions by name."""
    actions: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    for title, entries in MENUS:
        _fill(window, window.menuBar().addMenu(title), entries, actions, groups)
    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for name in TOOLBAR:
        if name == SEPARATOR:
            toolbar.addSeparator()
        else:
            toolbar.addAction(actions[name])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    window.toolbar = toolbar
    return actions
