"""The command line, driven in-process: what `infer` writes, and how every user mistake ends
(exit 2, one `error: …` line, no output file left behind)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image, ImageDraw

import sam3dbody_gui.pipeline.image_io as image_io
import sam3dbody_gui.pipeline.build as pipeline_build
from sam3dbody_gui.cli import EXIT_USER_ERROR, MODEL_ENV, main
from sam3dbody_gui.model.checkpoint_file import read_checkpoint
from sam3dbody_gui.model.config import save_model_config

PHOTO_W, PHOTO_H = 640, 480
BOX = (40.0, 60.0, 200.0, 420.0)  # person box in the left third of the photo
# The model's square crop around BOX (padding 1.25, aspect 0.75): x in [-92.5, 332.5]. Columns
# from FAR_X on are outside it, so nothing of this run may be drawn there.
FAR_X = 420


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_user_error(rc: int, err: str, *fragments: str) -> str:
    assert rc == EXIT_USER_ERROR, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]
    return lines[0]


def textured_photo(path: Path, seed: int = 0) -> np.ndarray:
    """A noisy, lossless photo: any pixel the overlay touches changes value."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:PHOTO_H, 0:PHOTO_W]
    base = np.stack([x * 255 // PHOTO_W, y * 255 // PHOTO_H, (x + y) * 255 // (PHOTO_W + PHOTO_H)], -1)
    photo = np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(path)
    return photo


def load_mesh(path: Path) -> trimesh.Trimesh:
    return trimesh.load(path, process=False, force="mesh")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("photo") / "person.png"
    return path, textured_photo(path)


@pytest.fixture(scope="module")
def infer_run(tiny_model_dir, photo, tmp_path_factory):
    """One `infer` with every output; its files are checked by several tests."""
    out = tmp_path_factory.mktemp("infer")
    files = {"mesh": out / "x.obj", "overlay": out / "o.png", "pca": out / "p.png", "json": out / "j.json"}
    rc, stdout, stderr = run_cli(
        "infer", photo[0], "--bbox", *BOX, "--model", tiny_model_dir, "--device", "cpu",
        "--out", files["mesh"], "--overlay", files["overlay"], "--pca", files["pca"], "--json", files["json"],
    )
    return rc, stdout, stderr, files


# ------------------------------------------------------------------------------ infer: outputs
def test_infer_succeeds_and_writes_only_the_requested_files(infer_run):
    rc, stdout, stderr, files = infer_run
    assert rc == 0, stderr
    assert stderr == ""
    folder = files["mesh"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files.values())
    for word in ("mesh:", "overlay:", "PCA map:", "parameters:", "latency (ms):"):
        assert word in stdout


def test_infer_mesh_has_the_models_vertex_and_face_counts(infer_run, tiny_loaded):
    mesh = load_mesh(infer_run[3]["mesh"])
    head = tiny_loaded.model.head_pose
    assert mesh.vertices.shape == (head.num_vertices, 3)
    assert mesh.faces.shape == (head.faces.shape[0], 3)
    np.testing.assert_array_equal(mesh.faces, head.faces.cpu().numpy())
    assert np.isfinite(mesh.vertices).all()


def test_infer_json(infer_run, tiny_loaded):
    data = json.loads(infer_run[3]["json"].read_text())
    cam_t = np.asarray(data["cam_t"], dtype=float)
    assert cam_t.shape == (3,) and np.isfinite(cam_t).all()
    kp = np.asarray(data["keypoints_2d"], dtype=float)
    assert kp.shape == (70, 2) and np.isfinite(kp).all()
    assert np.asarray(data["keypoints_3d"]).shape == (70, 3)
    timings = data["timings_ms"]
    assert list(timings) == ["preprocess", "backbone", "decoder+MHR", "total"]
    assert all(v > 0 for v in timings.values())
    stages = timings["preprocess"] + timings["backbone"] + timings["decoder+MHR"]
    assert timings["total"] >= stages - 0.01
    assert data["image_size_hw"] == [PHOTO_H, PHOTO_W]
    assert data["box_xyxy"] == list(BOX)
    assert data["num_vertices"] == tiny_loaded.model.head_pose.num_vertices
    # Default intrinsics: focal = image diagonal, principal point at the centre.
    k = np.asarray(data["intrinsics"])
    assert k[0, 0] == pytest.approx(np.hypot(PHOTO_W, PHOTO_H)) and data["focal_length"] == pytest.approx(k[0, 0])
    np.testing.assert_allclose(k[:2, 2], [PHOTO_W / 2, PHOTO_H / 2])


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    return points[:, :2] / points[:, 2:3] * k[[0, 1], [0, 1]] + k[:2, 2]


def test_infer_overlay_draws_the_mesh_over_the_photo_and_nothing_far_away(infer_run, photo):
    _, _, _, files = infer_run
    original = photo[1].astype(int)
    overlay_img = Image.open(files["overlay"])
    assert overlay_img.size == (PHOTO_W, PHOTO_H) and overlay_img.mode == "RGB"
    overlay = np.asarray(overlay_img).astype(int)
    changed = np.abs(overlay - original).max(-1) > 0

    # Far outside the crop: untouched, pixel for pixel.
    assert not changed[:, FAR_X:].any()

    # The mesh (camera frame in the OBJ) projects with the JSON's intrinsics onto the pixels that
    # changed: rasterise its silhouette and look well inside it.
    data = json.loads(files["json"].read_text())
    k = np.asarray(data["intrinsics"])
    mesh = load_mesh(files["mesh"])
    assert (mesh.vertices[:, 2] > 0).all(), "mesh must be in front of the camera"
    pix = project(mesh.vertices, k)
    silhouette = Image.new("L", (PHOTO_W, PHOTO_H), 0)
    draw = ImageDraw.Draw(silhouette)
    for face in mesh.faces:
        draw.polygon([tuple(p) for p in pix[face]], fill=255)
    inside = np.asarray(silhouette) > 0
    # erode by 2 px so anti-aliasing/rounding at the edge does not matter
    core = inside.copy()
    for dy in (-2, 0, 2):
        for dx in (-2, 0, 2):
            core &= np.roll(np.roll(inside, dy, 0), dx, 1)
    assert core.sum() > 200, "the mesh should cover a visible part of the photo"
    assert changed[core].mean() > 0.99
    # And the mesh lies in the box region (a box-conditioned model puts the body there).
    x1, y1, x2, y2 = BOX
    ys, xs = np.nonzero(core)
    assert x1 - 50 <= np.median(xs) <= x2 + 50 and y1 - 50 <= np.median(ys) <= y2 + 50
    # Inside the box the photo is visibly different.
    box_region = changed[int(y1) + 3:int(y2) - 3, int(x1) + 3:int(x2) - 3]
    assert box_region.mean() > 0.1


def test_infer_pca_image(infer_run, photo):
    pca = Image.open(infer_run[3]["pca"])
    assert pca.size == (512, 512) and pca.mode == "RGB"
    arr = np.asarray(pca)
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10
    assert arr.std() > 10


@pytest.mark.parametrize("ext", ["ply", "glb"])
def test_infer_other_mesh_formats_round_trip(ext, infer_run, photo, tiny_model_dir, tiny_loaded, tmp_path):
    path = tmp_path / f"x.{ext}"
    rc, _, err = run_cli("infer", photo[0], "--bbox", *BOX, "--model", tiny_model_dir, "--device", "cpu", "--out", path)
    assert rc == 0, err
    mesh = load_mesh(path)
    reference = load_mesh(infer_run[3]["mesh"])
    assert mesh.vertices.shape == (tiny_loaded.model.head_pose.num_vertices, 3)
    np.testing.assert_array_equal(mesh.faces, reference.faces)
    # Same photo, same model: the same mesh, whatever the file format.
    np.testing.assert_allclose(mesh.vertices, reference.vertices, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_infer_upright_frame(infer_run, photo, tiny_model_dir, tmp_path):
    path = tmp_path / "up.obj"
    rc, stdout, err = run_cli("infer", photo[0], "--bbox", *BOX, "--model", tiny_model_dir, "--device", "cpu",
                              "--frame", "upright", "--out", path)
    assert rc == 0, err
    assert "upright frame" in stdout
    up = load_mesh(path).vertices
    extent = up.max(0) - up.min(0)
    assert np.argmax(extent) == 1, f"y should be the tallest extent, got {extent}"
    np.testing.assert_allclose(((up.max(0) + up.min(0)) / 2)[[0, 2]], 0.0, atol=1e-5)
    np.testing.assert_allclose(up[:, 1].min(), 0.0, atol=1e-5)  # feet on the floor
    # It is the camera-frame mesh with y and z flipped, shifted.
    cam = load_mesh(infer_run[3]["mesh"]).vertices * np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(up - up.mean(0), cam - cam.mean(0), atol=1e-5)


def test_model_from_environment_variable(tiny_model_dir, photo, tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_dir))
    rc, stdout, err = run_cli("infer", photo[0], "--bbox", *BOX, "--device", "cpu", "--json", tmp_path / "j.json")
    assert rc == 0, err
    assert str(tiny_model_dir) in stdout
    assert json.loads((tmp_path / "j.json").read_text())["box_xyxy"] == list(BOX)


# ------------------------------------------------------------------------------ infer: errors
@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def all_outputs(folder: Path) -> list[str]:
    return ["--out", str(folder / "m.obj"), "--overlay", str(folder / "o.png"),
            "--pca", str(folder / "p.png"), "--json", str(folder / "j.json")]


def assert_nothing_written(folder: Path) -> None:
    leftovers = sorted(p.name for p in folder.iterdir())
    assert leftovers == [], f"left behind: {leftovers}"


def infer_error(image, model, folder: Path, *extra, box=BOX) -> str:
    args = ["infer", image, "--model", model, "--device", "cpu", *all_outputs(folder), *extra]
    if box is not None:
        args += ["--bbox", *box]
    rc, _, err = run_cli(*args)
    line = assert_user_error(rc, err)
    assert_nothing_written(folder)
    return line


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny folder (without the backbone exports) to damage."""
    dest = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dest, ignore=shutil.ignore_patterns("exports"))
    return dest


def test_error_image_missing(tiny_model_dir, out_dir, tmp_path):
    line = infer_error(tmp_path / "nope.jpg", tiny_model_dir, out_dir)
    assert "not found" in line and "nope.jpg" in line


def test_error_truncated_jpeg(tiny_model_dir, out_dir, tmp_path, photo):
    path = tmp_path / "cut.jpg"
    Image.fromarray(photo[1]).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    line = infer_error(path, tiny_model_dir, out_dir)
    assert "cut.jpg" in line


def test_error_corrupt_jpeg_header(tiny_model_dir, out_dir, tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    infer_error(path, tiny_model_dir, out_dir)


def test_error_text_file_named_png(tiny_model_dir, out_dir, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 10)
    line = infer_error(path, tiny_model_dir, out_dir)
    assert "not an image" in line


@pytest.mark.parametrize("box", [(700.0, 10.0, 900.0, 300.0), (-300.0, -200.0, -10.0, -5.0), (10.0, 500.0, 200.0, 900.0)])
def test_error_box_outside_image(tiny_model_dir, out_dir, photo, box):
    line = infer_error(photo[0], tiny_model_dir, out_dir, box=box)
    assert "outside" in line


@pytest.mark.parametrize("box", [(100.0, 100.0, 100.0, 300.0), (50.0, 80.0, 250.0, 80.0)])
def test_error_box_zero_area(tiny_model_dir, out_dir, photo, box):
    line = infer_error(photo[0], tiny_model_dir, out_dir, box=box)
    assert "zero width or height" in line


def test_error_model_folder_missing(out_dir, photo, tmp_path):
    line = infer_error(photo[0], tmp_path / "no-model", out_dir)
    assert "model folder not found" in line


def test_error_model_folder_without_rig(model_copy, out_dir, photo):
    (model_copy / "assets" / "mhr_model.pt").unlink()
    line = infer_error(photo[0], model_copy, out_dir)
    assert "assets/mhr_model.pt" in line


def test_error_checkpoint_truncated(model_copy, out_dir, photo):
    ckpt = model_copy / "model.ckpt"
    with open(ckpt, "r+b") as f:
        f.truncate(ckpt.stat().st_size // 2)
    line = infer_error(photo[0], model_copy, out_dir)
    assert "model.ckpt" in line


def test_error_checkpoint_of_another_architecture(model_copy, out_dir, photo):
    from sam3dbody_gui.synthetic.make import synthetic_config

    save_model_config(synthetic_config("full"), model_copy / "model_config.yaml")
    line = infer_error(photo[0], model_copy, out_dir)
    assert "does not match the architecture" in line


def test_error_invalid_yaml(model_copy, out_dir, photo):
    (model_copy / "model_config.yaml").write_text("MODEL: {DECODER: [unclosed\n  - : :\n")
    line = infer_error(photo[0], model_copy, out_dir)
    assert "not valid YAML" in line


def test_error_corrupt_torchscript_rig(model_copy, out_dir, photo):
    (model_copy / "assets" / "mhr_model.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    line = infer_error(photo[0], model_copy, out_dir)
    assert "TorchScript" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_error_cuda_without_gpu(tiny_model_dir, out_dir, photo, device):
    line = infer_error(photo[0], tiny_model_dir, out_dir, "--device", device)
    assert "CUDA" in line and "--device cpu" in line


def test_error_unknown_device(tiny_model_dir, out_dir, photo):
    line = infer_error(photo[0], tiny_model_dir, out_dir, "--device", "tpu")
    assert "unknown device" in line


def test_error_output_folder_missing(tiny_model_dir, out_dir, photo, tmp_path):
    rc, _, err = run_cli("infer", photo[0], "--bbox", *BOX, "--model", tiny_model_dir, "--device", "cpu",
                         "--json", out_dir / "j.json", "--out", tmp_path / "missing" / "m.obj")
    line = assert_user_error(rc, err, "does not exist")
    assert "missing" in line
    assert_nothing_written(out_dir)
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def no_inference(monkeypatch):
    """Fail the test if any inference work (image decoding, model loading) starts."""

    def forbidden(*args, **kwargs):
        raise AssertionError("inference work started before the outputs were checked")

    monkeypatch.setattr(pipeline_build, "build_pipeline", forbidden)
    monkeypatch.setattr(image_io, "load_image", forbidden)
    monkeypatch.setattr(image_io, "load_photo", forbidden)


@pytest.mark.parametrize("flag,name", [("--out", "m.fbx"), ("--overlay", "o.gif"), ("--json", "j.txt")])
def test_error_unsupported_output_extension_fails_fast(no_inference, tiny_model_dir, out_dir, photo, flag, name):
    start = time.perf_counter()
    rc, _, err = run_cli("infer", photo[0], "--bbox", *BOX, "--model", tiny_model_dir,
                         "--json" if flag != "--json" else "--pca", out_dir / ("j.json" if flag != "--json" else "p.png"),
                         flag, out_dir / name)
    elapsed = time.perf_counter() - start
    assert_user_error(rc, err, "unsupported extension", Path(name).suffix)
    assert elapsed < 1.0
    assert_nothing_written(out_dir)


def test_error_no_model_and_no_environment_variable(monkeypatch, no_inference, out_dir, photo):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    rc, _, err = run_cli("infer", photo[0], "--json", out_dir / "j.json")
    assert_user_error(rc, err, "--model", MODEL_ENV)
    assert_nothing_written(out_dir)


def test_error_nothing_to_write(no_inference, tiny_model_dir, photo):
    rc, _, err = run_cli("infer", photo[0], "--model", tiny_model_dir)
    assert_user_error(rc, err, "nothing to write")


# ------------------------------------------------------------------------------ make-synthetic
def test_make_synthetic_refuses_a_non_empty_folder(tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.txt").write_text("do not touch")
    (dest / "sub").mkdir()
    (dest / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = {p.relative_to(dest): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
              for p in dest.rglob("*")}
    rc, _, err = run_cli("make-synthetic", dest, "--exports", "none")
    assert_user_error(rc, err, "not empty")
    after = {p.relative_to(dest): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
             for p in dest.rglob("*")}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary sibling


def test_make_synthetic_unknown_export_kind(tmp_path):
    rc, _, err = run_cli("make-synthetic", tmp_path / "m", "--exports", "onnx,tflite")
    assert_user_error(rc, err, "tflite")
    assert list(tmp_path.iterdir()) == []


def test_make_synthetic_without_exports_is_loadable(tmp_path, tiny_model_dir, tiny_loaded):
    from sam3dbody_gui.model.model_folder import load_model_folder

    dest = tmp_path / "made"
    rc, stdout, err = run_cli("make-synthetic", dest, "--exports", "none")
    assert rc == 0, err
    assert f"wrote {dest}" in stdout
    names = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert names == ["SYNTHETIC.txt", "assets/mhr_model.pt", "model.ckpt", "model_config.yaml"]
    assert not (dest / "exports").exists()
    assert "RANDOM WEIGHTS" in (dest / "SYNTHETIC.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]

    loaded = load_model_folder(dest, device="cpu")
    assert loaded.model.head_pose.num_vertices == tiny_loaded.model.head_pose.num_vertices
    assert loaded.report.tensors_loaded == tiny_loaded.report.tensors_loaded
    # Same size and seed as the test fixture: bit-identical weights.
    from sam3dbody_gui.synthetic.make import state_checksum

    assert state_checksum(read_checkpoint(dest / "model.ckpt").state_dict) == \
        state_checksum(read_checkpoint(tiny_model_dir / "model.ckpt").state_dict)
