"""batch/ without a model: which inputs a run takes, what counts as done, what a killed run leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sam3dbody_gui.atomic_file import create_temp
from sam3dbody_gui.batch.inputs import expand_inputs
from sam3dbody_gui.batch.manifest import Manifest, done_jobs, read_records
from sam3dbody_gui.batch.resume import is_temp_name, job_folder, leftover_temp_files, sweep_temp_files
from sam3dbody_gui.batch.settings import BatchSettings, parse_formats
from sam3dbody_gui.errors import UserError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_globs_and_lists(tmp_path):
    a = _touch(tmp_path / "shots" / "b.jpg")
    _touch(tmp_path / "shots" / "a.PNG")
    _touch(tmp_path / "shots" / "deep" / "c.webp")
    _touch(tmp_path / "shots" / "clip.MP4")
    _touch(tmp_path / "shots" / "notes.txt")  # inside a folder a .txt is not a photo
    _touch(tmp_path / "shots" / ".b.jpg.0a1b2c3d.jpg")  # an interrupted write's temp file
    _touch(tmp_path / "shots" / ".cache" / "d.jpg")  # hidden folder
    _touch(tmp_path / "shots" / "out" / "person_0.jpg")  # the output folder inside the input
    names = [(s.path.relative_to(tmp_path).as_posix(), s.kind)
             for s in expand_inputs([str(tmp_path / "shots")], out_dir=tmp_path / "shots" / "out")]
    assert names == [("shots/a.PNG", "photo"), ("shots/b.jpg", "photo"), ("shots/clip.MP4", "video"),
                     ("shots/deep/c.webp", "photo")]

    listing = _touch(tmp_path / "list.txt", f"# a comment\n\nshots/deep/c.webp\n{a}\nmissing.jpg\n".encode())
    got = [s.path for s in expand_inputs([str(listing), str(tmp_path / "shots" / "*.jpg")])]
    # Relative lines are relative to the list; a missing listed file stays (its manifest line
    # says so); b.jpg, named twice, comes once, where first named.
    assert got == [tmp_path / "shots" / "deep" / "c.webp", a, tmp_path / "missing.jpg"]

    got = [s.path.name for s in expand_inputs([str(tmp_path / "shots" / "**" / "*.webp")])]
    assert got == ["c.webp"]


def test_inputs_that_do_not_exist_stop_before_the_model(tmp_path):
    with pytest.raises(UserError, match="input not found"):
        expand_inputs([str(tmp_path / "nope")])
    with pytest.raises(UserError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.jpg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no photos or videos found"):
        expand_inputs([str(tmp_path / "empty")])


def test_temp_files_of_a_killed_run_are_swept(tmp_path):
    job = tmp_path / "p_0123456789ab"
    job.mkdir()
    keep = [_touch(job / "person_0.obj"), _touch(job / ".notes"), _touch(tmp_path / "manifest.jsonl")]
    temps = [create_temp(job / "person_0.obj"), create_temp(tmp_path / "manifest.jsonl")]
    assert all(is_temp_name(t.name) for t in temps)
    assert sorted(leftover_temp_files(tmp_path)) == sorted(temps)
    assert sweep_temp_files(tmp_path) == 2
    assert leftover_temp_files(tmp_path) == [] and all(k.exists() for k in keep)


def _ok(sha: str, person: int, people: int) -> dict:
    return {"status": "ok", "source": f"/{sha}.jpg", "person": person, "people": people, "content_sha256": sha,
            "settings": "fp"}


def test_a_photo_is_done_only_with_all_its_people_and_a_torn_line_is_cut(tmp_path):
    path = tmp_path / "manifest.jsonl"
    lines = [_ok("a", 0, 2), _ok("a", 1, 2), _ok("b", 0, 3), _ok("b", 1, 3),
             {"status": "error", "source": "/c.jpg", "content_sha256": "c", "settings": "fp"},
             {"status": "failed", "source": "/d.jpg", "content_sha256": "d", "settings": "fp"},
             {"status": "error", "source": "/e.jpg", "content_sha256": None, "settings": "fp"}]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    path.write_text(text + json.dumps(_ok("b", 2, 3))[:25])  # killed while writing b's last person
    # b lacks a person (its last line is torn), d failed (retried), e could not even be hashed.
    assert done_jobs(path) == {("a", "fp"), ("c", "fp")}
    m = Manifest(tmp_path)
    assert m.done == {("a", "fp"), ("c", "fp")}
    m.append([_ok("b", 0, 3), _ok("b", 1, 3), _ok("b", 2, 3)])
    m.close()
    assert path.read_text().startswith(text) and path.read_text().endswith("\n")
    assert len(list(read_records(path))) == len(lines) + 3
    assert ("b", "fp") in done_jobs(path)


def test_a_video_is_done_frame_by_frame_and_whole_only_with_its_own_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    frame = [{**_ok("v", 0, 1), "frame": 0}, {**_ok("v", 0, 2), "frame": 1},
             {"status": "error", "source": "/v.jpg", "frame": 2, "content_sha256": "v", "settings": "fp"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in frame))
    # Frame 1 lacks its second person; frame 2 did not decode (done: the same bytes fail again).
    assert done_jobs(path) == {("v", "fp", 0), ("v", "fp", 2)}
    with open(path, "a") as f:
        f.write(json.dumps({"status": "video", "source": "/v.mp4", "frame": None, "frames": 3,
                            "content_sha256": "v", "settings": "fp"}) + "\n")
    assert ("v", "fp") in done_jobs(path)


def test_fingerprint_follows_what_changes_the_outputs(tiny_model_dir, tmp_path):
    base = BatchSettings(model_dir=tiny_model_dir).checked()
    same = BatchSettings(model_dir=tiny_model_dir, device="cpu").checked()  # the device is not a result
    assert base.fingerprint() == same.fingerprint()
    for change in ({"formats": ("obj", "json")}, {"frame": "upright"}, {"mode": "full"}, {"precision": "bf16"}):
        other = BatchSettings(model_dir=tiny_model_dir, **change).checked()
        assert other.fingerprint() != base.fingerprint(), change
    assert job_folder(Path("/x/My photo!.jpg"), "ab" * 32, base.fingerprint()).startswith("My_photo_")
    assert parse_formats("OBJ, .glb,json,obj") == ("obj", "glb", "json")
    with pytest.raises(UserError, match="unknown output format fbx"):
        parse_formats("obj,fbx")
    with pytest.raises(UserError, match="no person detector"):
        BatchSettings(model_dir=tiny_model_dir, people="detect").checked()
    with pytest.raises(UserError):
        BatchSettings(model_dir=tmp_path).checked()  # not a model folder
