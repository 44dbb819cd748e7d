"""A set of output files is written together or not at all, and never damages the user's files
(export/output_set.py): every path is checked before the work, each file is written to a
temporary beside it, and the temporaries replace the destinations together; a failure at any
point, even between two renames, leaves every destination as it was."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.export import output_set
from sam3dbody_gui.export.output_set import Output, check_outputs, publish

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def writer(data: bytes):
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """name -> (content, inode, mode) of every entry, links not followed."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = os.lstat(p)
        out[p.name] = (p.read_bytes() if p.is_file() and not p.is_symlink() else b"", st.st_ino,
                       stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    (d / "m.obj").write_bytes(b"previous mesh")
    return d


def test_all_written_together(folder):
    publish([(folder / "m.obj", writer(b"mesh")), (folder / "o.png", writer(b"overlay")),
             (folder / "j.json", writer(b"{}"))])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "m.obj": b"mesh", "o.png": b"overlay", "j.json": b"{}"}


def test_a_failing_writer_leaves_every_destination_as_it_was(folder):
    before = snapshot(folder)

    def disk_full(tmp: Path) -> None:
        tmp.write_bytes(b"half an ove")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=r"cannot write .*o\.png: No space left on device"):
        publish([(folder / "m.obj", writer(b"new mesh")), (folder / "o.png", disk_full),
                 (folder / "j.json", writer(b"{}"))])
    assert snapshot(folder) == before


def test_a_bug_in_a_writer_propagates_and_leaves_nothing(folder):
    before = snapshot(folder)

    def bug(tmp: Path) -> None:
        raise KeyError("encoder bug")

    with pytest.raises(KeyError):
        publish([(folder / "j.json", writer(b"{}")), (folder / "m.obj", bug)])
    assert snapshot(folder) == before


@pytest.mark.parametrize("failure", [PermissionError(errno.EACCES, "Permission denied"), KeyboardInterrupt()])
def test_a_failure_between_two_renames_restores_the_first(folder, monkeypatch, failure):
    """The second rename fails (or Ctrl+C / SIGTERM lands between the two): the first file,
    already replaced, gets its previous content (the same inode) back; the new one goes."""
    (folder / "o.png").write_bytes(b"previous overlay")
    before = snapshot(folder)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:
            raise failure
        return real_replace(src, dst)

    monkeypatch.setattr(output_set.os, "replace", replace)
    with pytest.raises((UserError, KeyboardInterrupt)):
        publish([(folder / "m.obj", writer(b"new mesh")), (folder / "o.png", writer(b"new overlay")),
                 (folder / "j.json", writer(b"{}"))])
    assert calls[:2] == ["m.obj", "o.png"]
    assert snapshot(folder) == before  # no temporary, no kept copy, nothing new


def test_a_new_file_published_before_a_failing_rename_is_removed(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "b.json":
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(output_set.os, "replace", replace)
    with pytest.raises(UserError, match="b.json: input/output error"):
        publish([(tmp_path / "a.json", writer(b"a")), (tmp_path / "b.json", writer(b"b"))])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ refused before any work
def never_called(tmp: Path) -> None:
    raise AssertionError("a writer ran although the outputs were refused")


def test_two_outputs_on_one_path_are_refused(folder):
    (folder / "real.png").write_bytes(b"x")
    (folder / "alias.png").symlink_to(folder / "real.png")
    os.link(folder / "real.png", folder / "hard.png")
    before = snapshot(folder)
    pairs = [
        (Output(folder / "o.png", "overlay"), Output(folder / "o.png", "PCA image")),
        (Output(folder / "o.png", "overlay"), Output(folder / "sub" / ".." / "o.png", "PCA image")),
        (Output(folder / "real.png", "overlay"), Output(folder / "alias.png", "PCA image")),
        (Output(folder / "real.png", "overlay"), Output(folder / "hard.png", "PCA image")),
    ]
    (folder / "sub").mkdir()
    for a, b in pairs:
        with pytest.raises(UserError, match="overlay .* and PCA image .* are the same file"):
            check_outputs([a, b])
        with pytest.raises(UserError, match="the same file"):
            publish([(a, never_called), (b, never_called)])
    (folder / "sub").rmdir()
    assert snapshot(folder) == before


def test_an_output_on_the_input_is_refused(folder, monkeypatch):
    photo = folder / "photo.jpg"
    photo.write_bytes(b"the user's photo")
    (folder / "link.jpg").symlink_to(photo)
    os.link(photo, folder / "hard.jpg")
    monkeypatch.chdir(folder)
    for given in (photo, Path("photo.jpg"), folder / "link.jpg", folder / "hard.jpg", Path("./sub/../photo.jpg")):
        with pytest.raises(UserError, match="is the input photo"):
            check_outputs([Output(given, "overlay")], inputs=[Output(Path("photo.jpg"), "input photo")])
    assert photo.read_bytes() == b"the user's photo"


def test_no_clobber_refuses_an_existing_file_and_writes_nothing(folder):
    before = snapshot(folder)
    with pytest.raises(UserError, match=r"not replacing the existing file .*m\.obj"):
        publish([(folder / "j.json", never_called), (folder / "m.obj", never_called)], replace=False)
    assert snapshot(folder) == before
    publish([(folder / "j.json", writer(b"{}"))], replace=False)  # a new file is fine
    assert (folder / "j.json").read_bytes() == b"{}"


def test_no_clobber_holds_for_a_file_that_appears_during_the_writing(folder):
    """The check is repeated right before each rename: a file that appeared meanwhile stays."""
    def write_and_meanwhile(tmp: Path) -> None:
        tmp.write_bytes(b"mine")
        (folder / "late.json").write_bytes(b"someone else's")

    with pytest.raises(UserError, match="not replacing the existing file"):
        publish([(folder / "a.json", write_and_meanwhile), (folder / "late.json", writer(b"mine"))], replace=False)
    assert (folder / "late.json").read_bytes() == b"someone else's"
    assert sorted(p.name for p in folder.iterdir()) == ["late.json", "m.obj"]


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_special_files_and_folders_are_not_replaced(folder):
    with pytest.raises(UserError, match="not a regular file"):
        check_outputs([Output(Path("/dev/null"), "mesh")])
    assert Path("/dev/null").exists() and not Path("/dev/null").is_file()
    with pytest.raises(UserError, match="is a folder"):
        check_outputs([Output(folder, "mesh")])


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_read_only_file_is_not_replaced(folder, monkeypatch):
    """A plain write to a read-only file fails; a rename would replace it all the same."""
    (folder / "m.obj").chmod(0o444)
    if IS_ROOT:  # root may write anything: ask as a user would be answered
        real_access = os.access
        monkeypatch.setattr(output_set.os, "access", lambda path, mode: False if mode == os.W_OK and
                            Path(path).name == "m.obj" else real_access(path, mode))
    with pytest.raises(UserError, match="read-only"):
        publish([(Output(folder / "m.obj", "mesh"), never_called)])
    assert (folder / "m.obj").read_bytes() == b"previous mesh"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_where_no_file_can_be_created_is_found_before_the_work(tmp_path):
    with pytest.raises(UserError, match=r"cannot write overlay /proc/o\.png: cannot create files in /proc"):
        check_outputs([Output(tmp_path / "m.obj", "mesh"), Output(Path("/proc/o.png"), "overlay")])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="folder .*missing does not exist"):
        check_outputs([Output(tmp_path / "missing" / "m.obj", "mesh")])


# ------------------------------------------------------------------ like a plain write
@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits and symlinks")
def test_modes_and_symlinks_are_those_of_a_plain_write(folder):
    saved = os.umask(0o027)
    try:
        (folder / "m.obj").chmod(0o640)
        target = folder / "real.json"
        (folder / "link.json").symlink_to(target)  # dangling: the write creates the target
        publish([(folder / "m.obj", writer(b"mesh")), (folder / "new.png", writer(b"png")),
                 (folder / "link.json", writer(b"{}"))])
    finally:
        os.umask(saved)
    assert stat.S_IMODE((folder / "m.obj").stat().st_mode) == 0o640
    assert stat.S_IMODE((folder / "new.png").stat().st_mode) == 0o640  # 0666 less umask 027
    assert (folder / "link.json").is_symlink() and target.read_bytes() == b"{}"
    assert sorted(p.name for p in folder.iterdir()) == ["link.json", "m.obj", "new.png", "real.json"]
