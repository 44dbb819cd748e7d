"""Every person of a photo in one file: a GLB scene (or OBJ) with one named object per person
(`person_0`, …), or one mesh file per person; all in the same frame, so they stand where they
stood. PLY has no objects: its one mesh carries a per-vertex `person` index instead."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh

from ..errors import UserError
from ..mesh_math import vertex_normals
from ..atomic_file import atomic_path
from .mesh_file import check_mesh_suffix, mesh_bytes, mesh_in_frame

SCENE_FORMATS = (".glb", ".obj", ".ply")


def person_name(index: int) -> str:
    return f"person_{index}"


def people_in_frame(vertices_camera: Sequence[np.ndarray], frame: str) -> list[np.ndarray]:
    """The frame's transform applied to all people together (one floor, one centre: the upright
    frame stands the group on y = 0, as each person stood relative to the others)."""
    counts = [len(v) for v in vertices_camera]
    together = mesh_in_frame(np.concatenate([np.asarray(v, np.float64) for v in vertices_camera]), frame)
    return np.split(together, np.cumsum(counts)[:-1])


def _trimesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=vertices, faces=faces, vertex_normals=vertex_normals(vertices, faces), process=False)


def scene_bytes(vertices: Sequence[np.ndarray], faces: Sequence[np.ndarray], suffix: str) -> bytes:
    suffix = suffix.lower()
    if suffix not in SCENE_FORMATS:
        raise UserError(f"cannot save several people as {suffix or 'a file without extension'}: "
                        f"use {', '.join(SCENE_FORMATS)}")
    if suffix == ".ply":
        mesh = _trimesh(np.concatenate(vertices), np.concatenate(
            [np.asarray(f) + offset for f, offset in zip(faces, np.cumsum([0] + [len(v) for v in vertices])[:-1])]))
        mesh.vertex_attributes["person"] = np.concatenate(
            [np.full(len(v), i, dtype=np.int32) for i, v in enumerate(vertices)])
        return mesh.export(file_type="ply")
    scene = trimesh.Scene()
    for i, (v, f) in enumerate(zip(vertices, faces)):
        scene.add_geometry(_trimesh(v, f), node_name=person_name(i), geom_name=person_name(i))
    data = scene.export(file_type=suffix[1:], **({"include_normals": True} if suffix == ".obj" else {}))
    return data.encode("utf-8") if isinstance(data, str) else data


def save_scene(path: Path, vertices_camera: Sequence[np.ndarray], faces: Sequence[np.ndarray],
               frame: str = "camera") -> Path:
    """Every person in one file at `path` (.glb, .obj or .ply), in `frame`."""
    if not vertices_camera:
        raise UserError("there is nobody to save: no person was recovered")
    data = scene_bytes(people_in_frame(vertices_camera, frame), faces, Path(path).suffix)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def per_person_paths(folder: Path, suffix: str, count: int) -> list[Path]:
    check_mesh_suffix(Path(f"x{suffix}"))
    return [Path(folder) / f"{person_name(i)}{suffix}" for i in range(count)]


def save_each_person(folder: Path, vertices_camera: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                     frame: str = "camera", suffix: str = ".obj") -> list[Path]:
    """One mesh file per person in `folder` (person_0.obj, …), placed as in the scene."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"cannot write into {folder}: it is not a folder")
    paths = per_person_paths(folder, suffix, len(vertices_camera))
    kind = check_mesh_suffix(paths[0]) if paths else None
    for path, v, f in zip(paths, people_in_frame(vertices_camera, frame), faces):
        data = mesh_bytes(v, f, kind)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return paths


def people_json(results, sources: Sequence[str], scores: Sequence[float | None]) -> dict:
    """params.json for several people: {"people": [{"index", "source", "score", …per person…}]}.
    `sources`: "user" (a drawn or given box) or "detector"; `scores`: the detector's, or None."""
    from ..pipeline.result import JSON_FRAMES

    people = []
    for i, (result, source, score) in enumerate(zip(results, sources, scores)):
        entry = result.to_json_dict()
        entry.pop("frames", None)
        people.append({"index": i, "name": person_name(i), "source": source,
                       "score": None if score is None else float(score), **entry})
    return {"num_people": len(people), "people": people, "frames": JSON_FRAMES}
