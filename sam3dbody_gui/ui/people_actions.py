"""The window's people: Detect people (on a worker), the list's buttons, and each person's status.
The window keeps the photo and the model; this keeps who is in the photo in step with them."""

from __future__ import annotations

from PySide6.QtCore import QObject

from .detection import PersonDetection
from .people import MAX_PEOPLE, merge_detections, near_duplicates
from .people_runs import RunStatus


class PeopleActions(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.state = window.state
        self.status = RunStatus()
        self.detection = PersonDetection(self)
        panel = window.panels.people
        panel.status_of = lambda person_id: self.status.line(self.state, person_id)
        panel.detectClicked.connect(self.detect)
        panel.removeClicked.connect(lambda: window.box_editor.remove_person())
        panel.removeAllClicked.connect(lambda: window.set_box(None))
        self.detection.found.connect(self._on_found)
        self.detection.failed.connect(lambda text: window.show_error(text, kind="detect"))
        self.detection.busyChanged.connect(self._on_busy)
        panel.heightEdited.connect(self.set_height)
        panel.promptRemoved.connect(self.remove_prompt)
        panel.placeToggled.connect(self._placing)
        window.photo.keypointDragged.connect(self.place_prompt)
        window.photo.dragFinished.connect(lambda: self._placing(-1))
        panel.fovEdited.connect(self.set_field_of_view)
        panel.cameraReset.connect(self.reset_camera)
        window.box_editor.changed.connect(self._warn_duplicates)
        self.state.imageChanged.connect(self.status.forget)

    def detect(self, min_score: float = 0.5, max_people: int = 20) -> bool:
        """People ▸ Detect people: find everyone; the boxes the user drew stay."""
        s = self.state
        if s.image is None:
            s.post("Open a photo first", "warning")
            return False
        s.post("Detecting people…")
        return self.detection.detect(s.settings, s.image, s.image_id, min_score, min(max_people, MAX_PEOPLE))

    def _placing(self, index: int) -> None:
        """Place ▸ the next press on the photo puts keypoint `index` there (-1: done)."""
        photo, panel = self.window.photo, self.window.panels.people
        photo.placing = index
        if index >= 0:
            self.state.post(f"Click where {panel.keypoint_pick.currentText()} is on the photo")
        elif panel.place.isChecked():
            panel.place.blockSignals(True)
            panel.place.setChecked(False)
            panel.place.blockSignals(False)

    def prompt_limit(self) -> int:
        pipeline = self.window.controller.pipeline
        return int(getattr(getattr(pipeline, "config", None), "max_num_clicks", 2))

    def place_prompt(self, keypoint, x: float, y: float) -> bool:
        """The selected person's keypoint (an MHR70 index or name) belongs at photo pixel (x, y):
        the decoder runs again on their cached features at once (a drag is live; one Undo step)."""
        from ..errors import UserError
        from ..pipeline.keypoint_prompts import KeypointPrompt
        from .people import with_prompt

        person = self.state.selected_person
        if person is None:
            self.state.post("Select a person first: prompts belong to one person", "warning")
            return False
        try:
            moved = with_prompt(person, KeypointPrompt.at(keypoint, x, y), self.prompt_limit())
        except UserError as exc:
            self.window.show_error(str(exc), kind="box")
            return False
        people = tuple(moved if p.id == person.id else p for p in self.state.people)
        if not self.window.box_editor.edit(lambda: (self.state.set_people(people, person.id), True)[1]):
            return False
        self.window.run_now(force=False)  # live: the controller keeps only the newest request
        return True

    def remove_prompt(self, index: int) -> bool:
        """Take the selected person's prompt on keypoint `index` away (-1: all of them)."""
        from dataclasses import replace

        person = self.state.selected_person
        if person is None or not person.prompts:
            return False
        kept = () if index < 0 else tuple(q for q in person.prompts if q.index != index)
        people = tuple(replace(p, prompts=kept) if p.id == person.id else p for p in self.state.people)
        return self.window.box_editor.edit(lambda: (self.state.set_people(people, person.id), True)[1])

    def set_height(self, height_m) -> bool:
        """The selected person is `height_m` tall (None: not known); re-runs them."""
        person = self.state.selected_person
        if person is None:
            return False
        return self.window.box_editor.edit(lambda: (self.state.set_height(person.id, height_m), True)[1])

    def set_field_of_view(self, fov_deg: float) -> None:
        """The photo's camera typed in: the field of view across its longer side; re-runs everyone."""
        from ..pipeline.photo_camera import PhotoCamera
        from ..pipeline.preprocess import default_intrinsics
        from .people_panel import field_of_view_deg, focal_for_fov

        s = self.state
        if s.image is None or (s.camera is not None and abs(field_of_view_deg(s.camera.intrinsics, s.image_hw)
                                                             - fov_deg) < 0.05):
            return
        k = default_intrinsics(s.image_hw).copy()
        k[0, 0] = k[1, 1] = focal_for_fov(fov_deg, s.image_hw)
        s.set_camera(PhotoCamera(k, "user"))
        s.post(f"Camera: {fov_deg:.1f}° field of view (focal length {k[0, 0]:.0f} px), typed in")
        self.window.schedule_run()

    def reset_camera(self) -> None:
        from ..pipeline.photo_camera import photo_camera

        s = self.state
        if s.image is not None:
            s.set_camera(photo_camera(s.image_path, s.image_hw))
            self.window.schedule_run()

    def _on_busy(self, busy: bool) -> None:
        panel = self.window.panels.people
        panel.detect.setText("Detecting…" if busy else "Detect people")
        panel.detect.setEnabled(not busy and self.state.image is not None)

    def _on_found(self, image_id: int, boxes, scores, note: str) -> None:
        s = self.state
        if image_id != s.image_id:
            return  # a detection of a photo no longer open
        self.window.banner.dismiss_kinds("detect")
        people, added = merge_detections(s.people, boxes, scores, s.next_person_id)
        if not boxes:
            self.window.show_error(f"No person found: {note}. The photo stays usable: draw a box around each person",
                                   kind="detect")
            return
        skipped = len(boxes) - added
        more = f"; {skipped} left out (on a box you drew, or past {MAX_PEOPLE} people)" if skipped else ""
        s.post(f"Detection {note}{more}", "warning" if "capped" in note or "kept the" in note else "info")
        selected = s.selected if any(p.id == s.selected for p in people) else (people[0].id if people else None)
        self.window.box_editor.set_people(people, selected)

    def _warn_duplicates(self) -> None:
        found = near_duplicates(self.state.people)
        if found:
            pairs = sorted({tuple(sorted((a, b))) for a, others in found.items() for b in others})
            said = ", ".join(f"{a} and {b}" for a, b in pairs[:4])
            self.state.post(f"People {said} have nearly the same box: both are kept (remove one if they are the "
                            "same person)", "warning")
