"""Exports: mesh files round-trip through trimesh, writes are atomic, the PCA map is stable."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from sam3dbody_gui.errors import UserError
from sam3dbody_gui import atomic_file as atomic
from sam3dbody_gui.atomic_file import atomic_path, write_bytes_atomic
from sam3dbody_gui.export.feature_pca import feature_pca_image, feature_pca_rgb
from sam3dbody_gui.export.mesh_file import mesh_in_frame, save_mesh

MESH_EXTS = ("obj", "ply", "glb")


def closed_mesh(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy UV sphere placed ~3 m in front of a camera: every vertex is used by a face."""
    rng = np.random.default_rng(seed)
    n_lat, n_lon = 9, 14
    lat = np.linspace(0.2, np.pi - 0.2, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    pts = np.stack([np.outer(np.sin(lat), np.cos(lon)), np.outer(np.cos(lat), np.ones_like(lon)),
                    np.outer(np.sin(lat), np.sin(lon))], -1).reshape(-1, 3)
    verts = pts * np.array([0.3, 0.9, 0.2]) + rng.normal(scale=0.01, size=pts.shape) + np.array([0.1, -0.2, 3.0])
    faces = []
    for i in range(n_lat - 1):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [[a, c, b], [b, c, d]]
    return verts.astype(np.float32), np.asarray(faces, dtype=np.int64)


def leftover_temp_files(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*"))


# ------------------------------------------------------------------------------ mesh files
@pytest.mark.parametrize("ext", MESH_EXTS)
def test_save_mesh_round_trip(tmp_path, ext):
    verts, faces = closed_mesh()
    path = save_mesh(tmp_path / f"body.{ext}", verts, faces)
    assert path == tmp_path / f"body.{ext}"
    mesh = trimesh.load(path, process=False, force="mesh")
    assert mesh.vertices.shape == verts.shape
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(mesh.faces, faces)
    assert leftover_temp_files(tmp_path, path.name) == []


def test_save_mesh_uppercase_extension_and_float64_input(tmp_path):
    verts, faces = closed_mesh(1)
    verts64 = verts.astype(np.float64) + 1e-3
    path = save_mesh(tmp_path / "BODY.PLY", verts64, faces.astype(np.int32))
    mesh = trimesh.load(path, process=False, force="mesh")
    np.testing.assert_allclose(mesh.vertices, verts64, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(mesh.faces, faces)


def test_obj_writes_every_vertex(tmp_path):
    """trimesh's OBJ reader drops unused vertices, so count the written 'v' lines directly."""
    verts, faces = closed_mesh()
    text = save_mesh(tmp_path / "m.obj", verts, faces).read_text()
    assert sum(line.startswith("v ") for line in text.splitlines()) == len(verts)
    assert sum(line.startswith("f ") for line in text.splitlines()) == len(faces)


@pytest.mark.parametrize("name", ["m.fbx", "m.off", "mesh"])
def test_save_mesh_rejects_other_formats_and_writes_nothing(tmp_path, name):
    verts, faces = closed_mesh()
    with pytest.raises(UserError, match=r"use \.obj, \.ply, \.glb, \.stl"):
        save_mesh(tmp_path / name, verts, faces)
    assert list(tmp_path.iterdir()) == []


def test_save_mesh_into_missing_folder(tmp_path):
    verts, faces = closed_mesh()
    with pytest.raises(UserError, match="does not exist"):
        save_mesh(tmp_path / "nope" / "m.obj", verts, faces)
    assert list(tmp_path.iterdir()) == []


def test_mesh_in_frame():
    verts, _ = closed_mesh()
    verts = verts.astype(np.float64)
    assert mesh_in_frame(verts, "camera") is verts
    up = mesh_in_frame(verts, "upright")
    # Y up and Z towards the viewer: y and z flip, x stays; centred in x and z, feet on y = 0.
    centre = (up.max(0) + up.min(0)) / 2
    np.testing.assert_allclose(centre[[0, 2]], 0.0, atol=1e-12)
    np.testing.assert_allclose(up[:, 1].min(), 0.0, atol=1e-12)
    flipped = verts * np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(up - up[0], flipped - flipped[0], atol=1e-12)
    # The top of the body in the photo (smallest camera y) is the top in the upright frame.
    assert np.argmax(up[:, 1]) == np.argmin(verts[:, 1])
    with pytest.raises(UserError, match="unknown mesh frame"):
        mesh_in_frame(verts, "world")


# ---------------------------------------------------------------------------- atomic writes
def test_write_bytes_atomic_replaces_content(tmp_path):
    dest = tmp_path / "params.json"
    dest.write_text("old")
    write_bytes_atomic(dest, b'{"new": 1}')
    assert dest.read_bytes() == b'{"new": 1}'
    assert leftover_temp_files(tmp_path, dest.name) == []


def _failing_write_bytes(real):
    """Path.write_bytes that writes half the data to the temporary file, then hits a full disk."""

    def write_bytes(self, data):
        if self.name.startswith("."):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    return write_bytes


@pytest.mark.parametrize("ext", MESH_EXTS)
def test_mesh_write_failing_midway_keeps_previous_file(tmp_path, monkeypatch, ext):
    dest = tmp_path / f"body.{ext}"
    verts, faces = closed_mesh(0)
    save_mesh(dest, verts, faces)
    before = dest.read_bytes()

    monkeypatch.setattr(Path, "write_bytes", _failing_write_bytes(Path.write_bytes))
    with pytest.raises(UserError, match="No space left on device"):
        save_mesh(dest, *closed_mesh(5))
    assert dest.read_bytes() == before
    assert leftover_temp_files(tmp_path, dest.name) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_mesh_export_raising_keeps_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "body.glb"
    save_mesh(dest, *closed_mesh(0))
    before = dest.read_bytes()

    def boom(self, *args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(trimesh.Trimesh, "export", boom)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        save_mesh(dest, *closed_mesh(5))
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_atomic_path_non_os_error_propagates_and_cleans_up(tmp_path):
    dest = tmp_path / "overlay.png"
    Image.new("RGB", (4, 3), (1, 2, 3)).save(dest)
    before = dest.read_bytes()
    with pytest.raises(KeyError):
        with atomic_path(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".overlay.png.")
            tmp.write_bytes(b"\x89PNG half")
            raise KeyError("encoder bug")
    assert dest.read_bytes() == before
    assert leftover_temp_files(tmp_path, dest.name) == []


def test_atomic_path_failing_rename_keeps_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "params.json"
    dest.write_text("previous")

    def failing_replace(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(UserError, match="permission denied"):
        write_bytes_atomic(dest, b"new content")
    assert dest.read_text() == "previous"
    assert leftover_temp_files(tmp_path, dest.name) == []


def test_atomic_path_new_file_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "write_bytes", _failing_write_bytes(Path.write_bytes))
    with pytest.raises(UserError):
        save_mesh(tmp_path / "new.obj", *closed_mesh())
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- feature PCA
H, W = 8, 8


def region_labels(n_regions: int) -> np.ndarray:
    """Known regions of unequal size (unequal sizes make every component's skew non-zero)."""
    labels = np.zeros((H, W), dtype=int)  # region 0: top-left block, the largest remainder
    labels[:, 5:] = 1  # right band, 24 patches
    labels[6:, :5] = 2  # bottom-left strip, 10 patches
    if n_regions == 4:
        labels[:2, :2] = 3  # small top-left corner, 4 patches
    return labels


def clustered_features(n_regions: int, seed: int = 0, channels: int = 48, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = region_labels(n_regions)
    centres = rng.normal(size=(n_regions, channels)) * 3.0
    feats = centres[labels] + rng.normal(scale=noise, size=(H, W, channels))
    return feats.transpose(2, 0, 1).astype(np.float32), labels


def region_colours(rgb: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    return [rgb[labels == k].astype(int) for k in range(labels.max() + 1)]


@pytest.mark.parametrize("n_regions", [3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pca_colours_uniform_within_and_distinct_between_regions(n_regions, seed):
    feats, labels = clustered_features(n_regions, seed)
    rgb = feature_pca_rgb(feats)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    colours = region_colours(rgb, labels)
    for k, c in enumerate(colours):
        spread = (c.max(0) - c.min(0)).max()
        assert spread <= 1, f"region {k} is not one colour (spread {spread})"
    means = [c.mean(0) for c in colours]
    for a in range(len(means)):
        for b in range(a + 1, len(means)):
            assert np.abs(means[a] - means[b]).max() >= 40, f"regions {a} and {b} look alike"
    # The percentile stretch uses the full range of the first component.
    assert rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255


def test_pca_rank_deficient_component_is_flat_not_speckle():
    """Three clusters span two dimensions: the third component is rounding noise and must not
    be stretched into speckle (regions with identical features get identical colours)."""
    for seed in range(8):
        feats, labels = clustered_features(3, seed)
        rgb = feature_pca_rgb(feats)
        assert len(np.unique(rgb[..., 2])) == 1, f"seed {seed}"


def test_pca_small_noise_keeps_regions_apart():
    feats, labels = clustered_features(4, seed=7, noise=0.05)
    colours = region_colours(feature_pca_rgb(feats), labels)
    means = [c.mean(0) for c in colours]
    within = max(np.abs(c - m).max() for c, m in zip(colours, means))
    between = min(np.abs(means[a] - means[b]).max() for a in range(4) for b in range(a + 1, 4))
    assert between > 3 * within


def test_pca_deterministic_and_independent_of_eigenvector_sign(monkeypatch):
    """Same features → same picture; and eigh's arbitrary eigenvector signs (they differ between
    LAPACK builds and devices) do not change the colours, thanks to the skew-sign fix."""
    feats, _ = clustered_features(4, seed=2, noise=0.02)
    first = feature_pca_rgb(feats)
    np.testing.assert_array_equal(feature_pca_rgb(feats.copy()), first)

    real_eigh = torch.linalg.eigh

    def eigh_with_flipped_signs(matrix):
        values, vectors = real_eigh(matrix)
        signs = torch.tensor([-1.0, 1.0, -1.0], dtype=vectors.dtype)
        flipped = vectors.clone()
        flipped[:, -3:] *= signs
        return values, flipped

    monkeypatch.setattr(torch.linalg, "eigh", eigh_with_flipped_signs)
    np.testing.assert_array_equal(feature_pca_rgb(feats), first)


def test_pca_invariant_to_feature_sign_scale_and_channel_order():
    feats, _ = clustered_features(4, seed=4, noise=0.02)
    ref = feature_pca_rgb(feats).astype(int)
    # -x has the same Gram matrix: identical picture.
    np.testing.assert_array_equal(feature_pca_rgb(-feats), ref)
    # Scaling and reordering channels changes only rounding.
    assert np.abs(feature_pca_rgb(feats * 37.0).astype(int) - ref).max() <= 1
    perm = np.random.default_rng(0).permutation(feats.shape[0])
    assert np.abs(feature_pca_rgb(feats[perm]).astype(int) - ref).max() <= 1


def test_pca_constant_features_give_a_flat_image_without_nan():
    rgb = feature_pca_rgb(np.ones((16, 4, 4), dtype=np.float32))
    assert rgb.shape == (4, 4, 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == 1


def test_pca_image_is_nearest_upscaled_patches():
    feats, labels = clustered_features(4, seed=1)
    rgb = feature_pca_rgb(feats)
    img = feature_pca_image(feats)
    assert img.size == (512, 512) and img.mode == "RGB"
    arr = np.asarray(img)
    block = 512 // W
    # Every 64x64 block is its patch's colour, exactly.
    np.testing.assert_array_equal(arr[::block, ::block], rgb)
    np.testing.assert_array_equal(arr, np.repeat(np.repeat(rgb, block, 0), block, 1))


# ------------------------------------------------------------- permissions and symlinks
@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(saved)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_file_gets_the_permissions_of_a_plain_write(tmp_path, umask, mask):
    umask(mask)
    (tmp_path / "plain.json").write_bytes(b"{}")  # what open(..., "w") gives under this umask
    write_bytes_atomic(tmp_path / "atomic.json", b"{}")
    save_mesh(tmp_path / "m.obj", *closed_mesh())
    assert mode_of(tmp_path / "atomic.json") == mode_of(tmp_path / "plain.json") == 0o666 & ~mask
    assert mode_of(tmp_path / "m.obj") == 0o666 & ~mask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("kept", [0o600, 0o640, 0o664])
def test_replacing_a_file_keeps_its_mode(tmp_path, umask, kept):
    umask(0o022)
    dest = tmp_path / "params.json"
    dest.write_text("old")
    dest.chmod(kept)
    write_bytes_atomic(dest, b"new")
    assert dest.read_bytes() == b"new" and mode_of(dest) == kept


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_temporary_file_of_a_private_file_is_never_more_open_than_the_file(tmp_path, umask):
    """While a 0600 file is being replaced, its new content must not be readable by others."""
    umask(0o022)
    dest = tmp_path / "secret.json"
    dest.write_text("old")
    dest.chmod(0o600)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"new")
        assert mode_of(tmp) & 0o077 == 0
    assert mode_of(dest) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_writing_to_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "body.obj"
    target.write_text("old")
    link = tmp_path / "latest.obj"
    link.symlink_to(target)
    save_mesh(link, *closed_mesh())
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith(("v ", "#")) and link.read_text() == target.read_text()
    assert sorted(p.name for p in real.iterdir()) == ["body.obj"]  # no temporary left beside the target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.obj", "real"]

    dangling = tmp_path / "next.json"
    dangling.symlink_to(real / "new.json")  # a plain write creates the link's target
    write_bytes_atomic(dangling, b"{}")
    assert dangling.is_symlink() and (real / "new.json").read_bytes() == b"{}"
