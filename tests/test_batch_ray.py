"""`batch --engine ray` on a local Ray (2 CPUs): the same manifest and files as the local engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

ray = pytest.importorskip("ray", reason="Ray (the optional `cluster` extra) is not installed: "
                                        "pip install 'sam3dbody-gui[cluster]'")

from sam3dbody_gui.batch.manifest import MANIFEST_NAME  # noqa: E402
from sam3dbody_gui.batch.resume import leftover_temp_files  # noqa: E402
from sam3dbody_gui.cli import main  # noqa: E402
from test_batch_local import FRAMES, GOOD, assert_same_manifest, lines, make_photos  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield
    ray.shutdown()


def test_ray_gives_the_local_manifest_and_files(local_ray, tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    make_photos(folder)
    assert main(["make-synthetic", str(tmp_path / "det"), "--detector"]) == 0
    common = [str(folder), "--model", str(tiny_model_dir), "--detect", "--detector", str(tmp_path / "det"),
              "--min-score", "0", "--max-people", "2", "--formats", "obj,json", "--device", "cpu"]
    assert main(["batch", *common, "--out", str(tmp_path / "local")]) == 0
    assert main(["batch", *common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    report = capsys.readouterr().out
    assert "ray: 1 model actor on CPUs" in report
    local, remote = lines(tmp_path / "local"), lines(tmp_path / "ray")
    assert sum(r["status"] == "ok" for r in remote) == 2 * (GOOD + FRAMES)  # two people a photo or frame
    assert {r["status"] for r in remote} == {"ok", "error", "video"}
    assert_same_manifest(local, remote)
    for r in (r for r in remote if r["status"] == "ok"):
        a = trimesh.load(tmp_path / "local" / r["files"]["obj"], process=False)
        b = trimesh.load(tmp_path / "ray" / r["files"]["obj"], process=False)
        np.testing.assert_allclose(a.vertices, b.vertices, rtol=1e-5, atol=1e-5)  # batched in one, not the other
        ja = json.loads((tmp_path / "local" / r["files"]["json"]).read_text())
        jb = json.loads((tmp_path / "ray" / r["files"]["json"]).read_text())
        assert ja.keys() == jb.keys()  # the local engine detects 8 photos a batch: the last bits may differ
        np.testing.assert_allclose(ja["box_xyxy"], jb["box_xyxy"], atol=1e-4)
        np.testing.assert_allclose(ja["keypoints_3d"], jb["keypoints_3d"], atol=1e-4)
    assert leftover_temp_files(tmp_path / "ray") == []

    # Run again on Ray: everything skipped, the manifest untouched.
    before = (tmp_path / "ray" / MANIFEST_NAME).read_bytes()
    assert main(["batch", *common, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert f"0 photos computed (0 persons), {GOOD + 4} skipped" in capsys.readouterr().out
    assert (tmp_path / "ray" / MANIFEST_NAME).read_bytes() == before


def test_ray_engine_missing_is_one_error_line(monkeypatch, tiny_model_dir, tmp_path, capsys):
    """Without Ray installed, --engine ray says how to get it (simulated: the import fails)."""
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "in").mkdir()
    make_photos(tmp_path / "in", good=1)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["batch", str(tmp_path / "in"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --engine ray needs Ray: pip install 'sam3dbody-gui[cluster]'")
    assert not (tmp_path / "o" / MANIFEST_NAME).exists()


def test_inference_actor_fills_model_batches_as_the_local_engine():
    """The Ray inference actor's photos go to the model in consecutive groups of at most 16 people
    (a photo with more is a group of its own), as the local engine's batches."""
    from sam3dbody_gui.batch.photo_work import Job
    from sam3dbody_gui.batch.ray_engine import person_groups

    def job(i, people):
        return Job(i, f"p{i}.jpg", "photo", boxes=[(0.0, 0.0, 1.0, 1.0)] * people)

    counts = [4, 4, 4, 4, 1, 20, 3, 16]
    groups = list(person_groups([job(i, n) for i, n in enumerate(counts)], 16))
    assert [[j.index for j in g] for g in groups] == [[0, 1, 2, 3], [4], [5], [6], [7]]
    assert [j.index for g in groups for j in g] == list(range(len(counts)))
