"""Several output files, written together or not at all, without damaging the user's files.

A run that writes a mesh, an overlay and a JSON must not leave the mesh behind when the overlay
cannot be written. So:

  1. `check_outputs` finds before any work every problem that can be found: a missing folder, a
     folder where no file can be created, a destination that is a folder, a device or a
     read-only file, two outputs on one file, an output on an input (the photo), an existing
     file when replacing is off;
  2. `publish` checks again (the work may have taken minutes), writes every file to a temporary
     beside its destination, then renames the temporaries over the destinations one after the
     other. If anything fails or interrupts it (an error, Ctrl+C, SIGTERM turned into an
     exception) the files already renamed are put back: a replaced file from a hard link (or
     copy) made before the first rename, a new one removed. Every temporary is removed.

Each file ends up as a plain write would leave it (see atomic.py): a new file's mode from the
umask, a replaced file's mode kept, a symbolic link's target written and the link kept.
Only a hard kill (SIGKILL, power loss) between two renames can leave some files new and some
old, or a hidden temporary (`.NAME.xxxxxxxx.EXT`) behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

from ..errors import UserError
from ..atomic_file import create_temp, existing_mode, finish_temp, write_target
from ..errors import describe_os_error

Writer = Callable[[Path], None]  # writes the whole file at the (temporary) path it is given


@dataclass(frozen=True)
class Output:
    """A file to write (or an input to protect): its path as the user gave it, and what it is."""

    path: Path
    what: str = "output"

    def __str__(self) -> str:
        return f"{self.what} {self.path}"


PathLike = Union[Output, Path, str]


def _output(item: PathLike, what: str = "output") -> Output:
    return item if isinstance(item, Output) else Output(Path(item), what)


def _identity(target: Path):
    """What makes two paths one file: the inode for an existing file (hard links, case-insensitive
    names), else the resolved path."""
    try:
        st = os.stat(target)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.normcase(str(target)))


def _check_one(out: Output, target: Path, replace: bool) -> None:
    path = out.path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # e.g. a symlink loop, a folder without search permission
        raise UserError(f"cannot write {out}: {describe_os_error(exc)}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"cannot write {out}: it is a folder")
        if not stat.S_ISREG(st.st_mode):
            # A rename would put a regular file in place of the device, pipe or socket.
            raise UserError(f"cannot write {out}: it is not a regular file (a device, pipe or socket)")
        if not replace:
            raise UserError(f"not replacing the existing file {path} (the {out.what})")
        if not os.access(target, os.W_OK):
            raise UserError(f"cannot write {out}: the file is read-only")
    folder = target.parent
    if not folder.is_dir():
        shown = folder if Path(path).expanduser().is_symlink() else Path(path).expanduser().parent
        raise UserError(f"cannot write {out}: folder {shown} does not exist")
    try:  # the only sure test that a file can be created there (permissions, read-only or virtual file systems)
        probe = create_temp(target)
    except OSError as exc:
        raise UserError(f"cannot write {out}: cannot create files in {folder} ({describe_os_error(exc)})") from None
    probe.unlink(missing_ok=True)


def check_outputs(outputs: Sequence[PathLike], *, inputs: Iterable[PathLike] = (), replace: bool = True) -> list[Path]:
    """Raise UserError for the first output that cannot be written as asked; return the files
    the outputs will write (symbolic links followed). `inputs` are files no output may write
    (e.g. the photo); `replace=False` refuses existing files."""
    outs = [_output(o) for o in outputs]
    targets = [write_target(o.path) for o in outs]
    protected = {}
    for item in inputs:
        inp = _output(item, "input")
        protected.setdefault(_identity(write_target(inp.path)), inp)
    seen: dict = {}
    for out, target in zip(outs, targets):
        key = _identity(target)
        if key in protected:
            raise UserError(f"{out} is the {protected[key].what} {protected[key].path} itself: writing it would "
                            "replace it; choose another name")
        if key in seen:
            raise UserError(f"{seen[key]} and {out} are the same file: give each output its own name")
        seen[key] = out
    for out, target in zip(outs, targets):
        _check_one(out, target, replace)
    return targets


@dataclass
class _Staged:
    out: Output
    target: Path
    tmp: Path
    previous: Optional[Path] = None  # a hard link to (or copy of) the file it replaces
    renamed: bool = False


def _keep_previous(target: Path) -> Optional[Path]:
    """A second name for the file about to be replaced, so it can be put back. A hard link costs
    nothing; where links are not supported (FAT, some network shares) it is a copy."""
    if not os.path.lexists(target):
        return None
    for _ in range(100):
        keep = target.parent / f".{target.name}.{secrets.token_hex(4)}.previous"
        try:
            os.link(target, keep)
            return keep
        except FileExistsError:
            continue
        except OSError:
            shutil.copy2(target, keep)
            return keep
    raise FileExistsError(f"no free name beside {target}")


def publish(pairs: Sequence[tuple[PathLike, Writer]], *, inputs: Iterable[PathLike] = (), replace: bool = True) -> None:
    """Write every (path, writer) pair, all or none (see the module notes). Raises UserError for
    anything the user can fix; other errors of a writer propagate, after the cleanup."""
    outs = [_output(p) for p, _ in pairs]
    targets = check_outputs(outs, inputs=inputs, replace=replace)
    staged: list[_Staged] = []
    current = outs[0] if outs else None
    try:
        for out, (_, write), target in zip(outs, pairs, targets):
            current = out
            keep_mode = existing_mode(target)
            item = _Staged(out, target, create_temp(target, keep_mode))
            staged.append(item)
            write(item.tmp)
            finish_temp(item.tmp, keep_mode)
        for item in staged:
            current = item.out
            item.previous = _keep_previous(item.target) if replace else None
        for item in staged:
            current = item.out
            if not replace and os.path.lexists(item.target):  # appeared while the files were written
                raise UserError(f"not replacing the existing file {item.out.path} (the {item.out.what})")
            item.renamed = True  # set first: an interrupt right after the rename must still undo it
            os.replace(item.tmp, item.target)
    except BaseException as exc:
        _undo(staged)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {current}: {describe_os_error(exc)}") from None
        raise
    finally:
        for item in staged:
            if item.previous is not None:
                item.previous.unlink(missing_ok=True)


def _undo(staged: list[_Staged]) -> None:
    """Put every destination back as it was before `publish`; remove the temporaries. Each
    step is tried even if another fails: the error being reported is the first one."""
    for item in reversed(staged):
        try:
            if item.renamed and not os.path.lexists(item.tmp):  # this one was published
                if item.previous is not None:
                    os.replace(item.previous, item.target)
                    item.previous = None
                else:
                    item.target.unlink(missing_ok=True)
            item.tmp.unlink(missing_ok=True)
        except OSError:
            continue
