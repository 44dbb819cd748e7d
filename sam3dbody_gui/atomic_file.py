"""Write a file so that a reader never sees it half-written and a failure leaves no debris.

The bytes go to a temporary file in the destination's folder, are flushed to disk, and the
temporary file is renamed over the destination (atomic on POSIX and on Windows' same volume).

The result looks like a plain write's: a new file gets the mode `open(path, "w")` would give it
(0666 less the umask, and the folder's default ACL, both applied by the kernel at creation); a
replaced file keeps its mode; a destination that is a symbolic link has its target written, and
the link stays (a rename onto the link itself would turn it into a regular file).
"""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .errors import UserError, describe_os_error

# What open(path, "w") asks for; the kernel takes the umask (or default ACL) off it.
PLAIN_FILE_MODE = 0o666
_TEMP_ATTEMPTS = 100


def write_target(dest: Path) -> Path:
    """The file a plain write to `dest` changes: `dest` with every symbolic link followed (a
    dangling link's target too: a plain write creates it)."""
    return Path(os.path.realpath(Path(dest).expanduser()))


def existing_mode(target: Path) -> Optional[int]:
    """The permission bits of the regular file at `target`, None if there is none."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def create_temp(target: Path, keep_mode: Optional[int] = None) -> Path:
    """A new empty file beside `target` (the same folder, so the final rename is atomic).

    For a new destination it is created as a plain write would create the destination, so it
    needs no change of mode later. When an existing file will be replaced (`keep_mode`), it is
    created private (0600) and given `keep_mode` only once written (`finish_temp`): a private
    file's new content is never readable by others, not even for a moment.
    Raises OSError."""
    mode = 0o600 if keep_mode is not None else PLAIN_FILE_MODE
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}{target.suffix}"
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


def finish_temp(tmp: Path, keep_mode: Optional[int] = None) -> None:
    """Flush the written temporary file to disk and give it the mode it will keep. Raises OSError."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    if keep_mode is not None:
        os.chmod(tmp, keep_mode)


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest`, on error it is removed."""
    dest = Path(dest).expanduser()
    target = write_target(dest)
    folder = target.parent
    if not folder.is_dir():
        missing = folder if dest.is_symlink() else dest.parent  # a link's target folder, else the one given
        raise UserError(f"cannot write {dest}: folder {missing} does not exist")
    try:
        keep_mode = existing_mode(target)
        tmp = create_temp(target, keep_mode)
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {describe_os_error(exc)}") from None
    try:
        yield tmp
        finish_temp(tmp, keep_mode)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {dest}: {describe_os_error(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


@contextmanager
def atomic_folder(dest: Path, before_publish=lambda: None) -> Iterator[Path]:
    """Yield a new hidden folder beside `dest` to fill; on success it becomes `dest` (an empty
    `dest` the caller made is replaced), on error it is removed: nobody sees half a folder.
    `before_publish`: a last check just before the rename (e.g. that `dest` is still free)."""
    import shutil
    import tempfile

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield work
        before_publish()
        if dest.exists():
            dest.rmdir()  # an empty folder made for us (rmdir refuses anything else)
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
