"""One photo's steps, as both engines run them: read → people → infer → write.

    read(job)          hash the file, skip it if a previous run finished it, decode it
                       (a video's frames come from video_work.py instead, as frame jobs)
    find_people(job)   the detector's boxes, or the whole photo as one person
    infer(job)         every person in one batch (Pipeline.run_people), kept as light `Person`s
    write(job)         the mesh / JSON files (each atomically), then the job's manifest lines

The local engine also runs several photos at once where that is the same computation:
`find_people_many` (one detector run for several photos) and `infer_many` (body mode: the people
of several photos as one batch through the crop, backbone and decoder; each person gets what a
run of its photo alone gives, within float rounding, and no feature map is copied to the host:
the files and lines do not use it). Any failure there falls back to the photo-by-photo steps,
so a bad photo still gets its own line.

A Job carries the photo from step to step; once a step decides the outcome (skipped, an error,
nobody found) the later steps pass it through. The local engine runs the steps in threads, the
Ray engine in tasks and actors (a Job pickles: numpy arrays and plain values only), so both
produce the same files and lines.

Failures of the input (an ImageError, a bad box: any UserError) are "error" lines, done for
good; anything else (out of memory, a bug in a step) is a "failed" line that a rerun retries.
"""

from __future__ import annotations

import gc
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import UserError, first_line
from ..export.result_checks import json_ready, require_finite
from .resume import content_sha256, job_folder
from .settings import MESH_KINDS, BatchSettings

WHOLE_IMAGE = "whole image"
DETECTOR = "detector"
# trimesh meshes hold reference cycles (their caches point back at them), so only the cycle
# collector frees them, and it seldom gets to objects that have lived a while: over a long run
# the meshes of hundreds of photos would pile up (~3 MB each at the real model's size). A full
# collection every this many jobs keeps memory flat, for a few ms each time.
COLLECT_EVERY = 32
_written = itertools.count(1)


@dataclass
class Person:
    """What the writer needs of one MeshResult: a small fraction of it (no feature map)."""

    vertices_camera: np.ndarray  # (V, 3) float32
    score: Optional[float]
    summary: dict  # the manifest's parameters and camera
    params_json: Optional[dict]  # the person's params.json (when the json format is asked for)


@dataclass
class Job:
    index: int  # the source's place in the run
    path: str
    kind: str  # "photo"; "frame": one frame of a video; "video": a video's own line (video_work.py)
    frame: Optional[int] = None  # the frame's index in its video (its timestamp's, see video/reader.py)
    sha: Optional[str] = None
    image: Optional[np.ndarray] = None  # (H, W, 3) uint8 until inference
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    box_from: str = WHOLE_IMAGE
    people: list = field(default_factory=list)  # Person, after inference
    faces: Optional[np.ndarray] = None  # (F, 3) int32, shared by every person
    outcome: Optional[dict] = None  # the job's one line when it ends without people (error, ...)
    skipped: bool = False  # a previous run finished it: no line at all

    @property
    def settled(self) -> bool:
        """No more computing to do (only, maybe, a line to write)."""
        return self.skipped or self.outcome is not None


def _line(job: Job, fingerprint: str, status: str, **extra) -> dict:
    return {"status": status, "source": job.path, "frame": job.frame, **extra, "content_sha256": job.sha,
            "settings": fingerprint}


def read(job: Job, fingerprint: str, done: set) -> Job:
    from ..pipeline.image_io import load_image

    try:
        job.sha = content_sha256(Path(job.path))
    except OSError:
        pass  # load_image below says why in one line (missing, a folder, no permission)
    if job.sha is not None and (job.sha, fingerprint) in done:
        job.skipped = True
        return job
    try:
        job.image = load_image(job.path)
    except UserError as exc:  # ImageError: not an image, truncated, empty, too large
        job.outcome = _line(job, fingerprint, "error", error=first_line(exc))
    return job


def find_people(job: Job, settings: BatchSettings, fingerprint: str, detector=None) -> Job:
    if job.settled:
        return job
    if settings.people == "whole":
        job.boxes, job.scores, job.box_from = [None], [None], WHOLE_IMAGE
        return job
    try:
        found = detector.detect(job.image, min_score=settings.min_score, max_people=settings.max_people)
    except UserError as exc:
        job.outcome, job.image = _line(job, fingerprint, "error", error=first_line(exc)), None
        return job
    except Exception as exc:  # noqa: BLE001 - one photo's failure must not end a run of thousands
        job.outcome, job.image = _line(job, fingerprint, "failed", error=f"{type(exc).__name__}: {exc}"), None
        return job
    return _take_detections(job, found, fingerprint)


def _take_detections(job: Job, found, fingerprint: str) -> Job:
    if not found.people:
        job.outcome, job.image = _line(job, fingerprint, "no people", people=0, note=found.message()), None
        return job
    job.boxes = [tuple(float(v) for v in p.box_xyxy) for p in found.people]
    job.scores = [float(p.score) for p in found.people]
    job.box_from = DETECTOR
    return job


def _summary(result) -> dict:
    return {"box_xyxy": result.crop.bbox_xyxy.tolist(), "image_size_hw": list(result.image_hw),
            "focal_length": float(result.focal_length), "cam_t": result.cam_t.tolist(),
            "params": {k: np.asarray(v).tolist() for k, v in result.params.items()}}


def infer(job: Job, pipe, settings: BatchSettings, fingerprint: str) -> Job:
    """Every person of the photo in one batch. The photo and the feature maps are dropped here:
    only what the files and lines need goes on (memory stays flat however long the run)."""
    if job.settled:
        return job
    from ..pipeline.box import validate_box

    image, job.image = job.image, None
    try:
        for box in job.boxes:
            validate_box(box, image.shape[:2])
        # A photo's own camera (EXIF focal length), as `infer` takes it; video frames: the default.
        from ..pipeline.photo_camera import photo_camera

        camera = photo_camera(Path(job.path) if job.frame is None else None, image.shape[:2])
        results = pipe.run_people(image, job.boxes, camera.intrinsics, mode=settings.mode)
    except UserError as exc:
        job.outcome = _line(job, fingerprint, "error", error=first_line(exc))
        return job
    except Exception as exc:  # noqa: BLE001 - out of memory or a bug: this photo fails, the run goes on
        job.outcome = _line(job, fingerprint, "failed", error=f"{type(exc).__name__}: {first_line(exc)}")
        return job
    return _keep_people(job, results, camera, settings, fingerprint)


def _keep_people(job: Job, results: list, camera, settings: BatchSettings, fingerprint: str) -> Job:
    """The photo's results as light `Person`s (or its error line when one is not finite)."""
    try:
        for r in results:
            require_finite(r)
            r.camera_source = camera.source
    except UserError as exc:
        job.outcome = _line(job, fingerprint, "error", error=first_line(exc))
        return job
    want_json = "json" in settings.formats
    for r, score in zip(results, job.scores):
        params_json = None
        if want_json:
            params_json = r.to_json_dict()
            # A measurement of this run, not a result: left out, so that a rerun, a resumed run
            # and the Ray engine write the very same file.
            params_json.pop("timings_ms", None)
            params_json.update(source=job.path, frame=job.frame, box_from=job.box_from, score=score)
        job.people.append(Person(np.asarray(r.vertices_camera, dtype=np.float32), score, _summary(r), params_json))
    job.faces = np.asarray(results[0].faces, dtype=np.int32)
    return job


def persons_in(job: Job) -> int:
    """How many people the job still has to compute (0 once it is settled)."""
    return 0 if job.settled else len(job.boxes)


def detect_many(detector, images: list, min_score: float, max_people: Optional[int]) -> list:
    """Each image's Detections, with the network run once for all of them where the detector
    allows it (PersonDetector: prepare each photo, one batch, then each photo's own selection,
    as `detect` does); otherwise photo by photo."""
    if hasattr(detector, "detect_many"):
        return detector.detect_many(images, min_score=min_score, max_people=max_people)
    model, prepare, found = (getattr(detector, name, None) for name in ("model", "prepare", "found"))
    if len(images) < 2 or model is None or prepare is None or found is None:
        return [detector.detect(image, min_score=min_score, max_people=max_people) for image in images]
    import torch

    from ..model.detector_postprocess import DEFAULT_NMS_IOU, check_settings, select_people

    check_settings(min_score, DEFAULT_NMS_IOU, max_people)
    with torch.inference_mode():
        out = model(pixel_values=torch.cat([prepare(image) for image in images]))
        logits, boxes = out.logits.float().cpu(), out.pred_boxes.float().cpu()
    return [select_people(logits[i], boxes[i], tuple(image.shape[:2]), found.person_id, min_score, DEFAULT_NMS_IOU,
                          max_people) for i, image in enumerate(images)]


def find_people_many(jobs: list, settings: BatchSettings, fingerprint: str, detector=None) -> list:
    """`find_people` for several jobs, the detector run once for all the photos that need it."""
    todo = [job for job in jobs if not job.settled]
    if settings.people != "detect" or len(todo) < 2:
        return [find_people(job, settings, fingerprint, detector) for job in jobs]
    try:
        found = detect_many(detector, [job.image for job in todo], settings.min_score, settings.max_people)
    except Exception:  # noqa: BLE001 - photo by photo instead: each failure is then its photo's own line
        return [find_people(job, settings, fingerprint, detector) for job in jobs]
    for job, detections in zip(todo, found):
        _take_detections(job, detections, fingerprint)
    return jobs


def infer_many(jobs: list, pipe, settings: BatchSettings, fingerprint: str) -> Iterator[Job]:
    """`infer` for several jobs, yielding each in order once it is done. Body mode: every person
    of every photo in one batch (the pipeline's crop, backbone and decoder steps, as `run_people`
    runs them for one photo, without the feature maps' copy to the host); full mode, or one
    photo: photo by photo, each yielded as soon as it is done (so a Ctrl+C between two photos
    still writes the first)."""
    todo = [job for job in jobs if not job.settled]
    if settings.mode != "body" or len(todo) < 2 or not hasattr(pipe, "_backbone"):
        for job in jobs:
            yield infer(job, pipe, settings, fingerprint)
        return
    yield from _infer_together(jobs, todo, pipe, settings, fingerprint)


def _infer_together(jobs: list, todo: list, pipe, settings: BatchSettings, fingerprint: str) -> Iterator[Job]:
    from ..pipeline.box import validate_box
    from ..pipeline.photo_camera import photo_camera
    from ..pipeline.preprocess import crop_geometry

    photos = []
    for job in todo:
        image, job.image = job.image, None
        try:
            for box in job.boxes:
                validate_box(box, image.shape[:2])
            camera = photo_camera(Path(job.path) if job.frame is None else None, image.shape[:2])
            geoms = [crop_geometry(box, image.shape[:2], crop_size=pipe.config.crop_size) for box in job.boxes]
        except UserError as exc:
            job.outcome = _line(job, fingerprint, "error", error=first_line(exc))
            continue
        photos.append((job, image, camera, geoms))
    try:
        results = _run_photos(pipe, photos) if photos else []
    except Exception:  # noqa: BLE001 - photo by photo instead: each failure is then its photo's own line
        retry = {id(job): image for job, image, _, _ in photos}
        for job in jobs:
            if id(job) in retry:
                job.image = retry[id(job)]
                infer(job, pipe, settings, fingerprint)
            yield job
        return
    for (job, _, camera, _), mine in zip(photos, results):
        _keep_people(job, mine, camera, settings, fingerprint)
    yield from jobs


def _run_photos(pipe, photos: list) -> list:
    """Each photo's MeshResults (no feature maps, body mode) from one batch of all their people."""
    import torch

    from ..model.crop_camera import CropCamera
    from ..pipeline.pipeline import HOST_KEYS, PARAM_KEYS
    from ..pipeline.result import MeshResult

    cams = []
    with torch.inference_mode():
        crops = torch.cat([pipe._crop(image, geoms) for _, image, _, geoms in photos])
        for _, _, camera, geoms in photos:
            k = np.asarray(camera.intrinsics, dtype=np.float64)
            cams.append(CropCamera(
                box_center=torch.from_numpy(np.stack([g.center for g in geoms])),
                box_size=torch.tensor([float(g.scale[0]) for g in geoms]),
                affine=torch.from_numpy(np.stack([g.affine for g in geoms])),
                intrinsics=torch.from_numpy(np.stack([k] * len(geoms))), crop_size=geoms[0].crop_size))
        cam = CropCamera.stack(cams).to(pipe.device)
        out = pipe._decode(pipe._backbone(crops), cam)
        host = dict(zip(HOST_KEYS, pipe._to_host([out[key] for key in HOST_KEYS])))
    results, row = [], 0
    label = pipe.backbone.info.label()
    for _, image, camera, geoms in photos:
        k = np.asarray(camera.intrinsics, dtype=np.float64)
        mine = []
        for geom in geoms:
            h = {key: value[row] for key, value in host.items()}
            row += 1
            mine.append(MeshResult(
                vertices=h["pred_vertices"], faces=pipe.faces, keypoints_2d=h["pred_keypoints_2d"],
                keypoints_3d=h["pred_keypoints_3d"], joints=h["pred_joint_coords"], cam_t=h["pred_cam_t"],
                focal_length=float(k[0, 0]), intrinsics=k, image_hw=(int(image.shape[0]), int(image.shape[1])),
                crop=geom, params={key: h[key] for key in PARAM_KEYS}, features=None, hand_boxes=h["hand_box"],
                backend=label, mode="body"))
        results.append(mine)
    return results


def write(job: Job, out_dir: Path, settings: BatchSettings, fingerprint: str) -> list[dict]:
    """The job's files (each one atomic: a crash leaves the old file or the new, never half of
    one), then its lines. Called once per job, in the engine's writer."""
    if job.skipped:
        return []
    if job.outcome is not None:
        return [json_ready(job.outcome)]
    from ..atomic_file import write_bytes_atomic
    from ..export.mesh_file import mesh_bytes, mesh_in_frame

    folder = job_folder(Path(job.path), job.sha, fingerprint)
    (Path(out_dir) / folder).mkdir(parents=True, exist_ok=True)
    # A video's frames share its folder; the frame number (zero-padded: listed in order) tells them apart.
    prefix = "" if job.frame is None else f"frame_{job.frame:06d}_"
    if next(_written) % COLLECT_EVERY == 0:
        gc.collect()
    lines = []
    for i, person in enumerate(job.people):
        files = {}
        for kind in settings.formats:
            rel = f"{folder}/{prefix}person_{i}.{kind}"
            if kind in MESH_KINDS:
                data = mesh_bytes(mesh_in_frame(person.vertices_camera, settings.frame), job.faces, kind)
            else:
                data = json.dumps(json_ready(person.params_json), indent=1, allow_nan=False).encode("utf-8")
            write_bytes_atomic(Path(out_dir) / rel, data)
            files[kind] = rel
        lines.append(json_ready(_line(job, fingerprint, "ok", person=i, people=len(job.people),
                                      box_from=job.box_from, score=person.score, **person.summary, files=files)))
    return lines

