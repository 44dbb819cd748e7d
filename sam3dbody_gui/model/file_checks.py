"""File-level checks of a model folder: readable at all, hashes, where a file came from, and a
look inside a TorchScript archive that runs none of its code.

Pure standard library (no torch, no huggingface_hub): the Hub's record of a downloaded file is
read from the layouts huggingface_hub leaves on disk:

* the cache: `.../blobs/<sha256>` for a large ("LFS") file, `.../blobs/<git sha1>` for a small
  one; the snapshot and our folder of links point there;
* a `--dest` folder: `.cache/huggingface/download/<file>.metadata`, lines commit, ETag, time
  (the ETag is the SHA-256 of an LFS file, the git blob SHA-1 of a small one).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import ModelFolderError, describe_os_error

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
HASH_CHUNK = 8 * 2**20

# TorchScript ops that touch files. A rig is code; one that mentions these can read or write
# files when it is loaded or run (torch.from_file maps any file; a probe's rig created one).
_FILE_OPS = re.compile(r"\b(?:torch\.|aten::|ops\.aten\.)(from_file|save|load)\b")


class Cancelled(Exception):
    """The caller's cancel event was set."""


def file_problem(path: Path) -> Optional[str]:
    """Why `path` cannot be read as a regular file, or None when it can."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows links: a loop or a dangling link fails here
    except OSError as exc:
        if exc.errno == errno.ENOENT and path.is_symlink():
            return f"is a broken link (to {os.readlink(path)})"
        if exc.errno == errno.ENOENT:
            return "is missing"
        return f"cannot be read: {describe_os_error(exc)}"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a device or a pipe?)"  # opening a pipe would block
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot be read: {describe_os_error(exc)}"
    return None


def require_folder(folder: Path, what: str) -> Path:
    """`folder` (user-expanded) when it is a folder that opens; otherwise a ModelFolderError that
    names the real cause ("{what} not found", "… cannot be opened: permission denied", "… is a
    file, not a folder"). os.stat, not is_dir(): that answers False for a symlink loop or a
    parent without permission, which would all read as "not found"."""
    folder = Path(folder).expanduser()
    try:
        st = os.stat(folder)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ModelFolderError(f"{what} not found: {folder}") from None
        raise ModelFolderError(f"{what} {folder} cannot be opened: {describe_os_error(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ModelFolderError(f"{what} {folder} is a file, not a folder")
    return folder


def require_readable(path: Path, what: str = "") -> None:
    problem = file_problem(path)
    if problem is not None:
        raise ModelFolderError(f"{what or path} {problem}" + (f" ({path})" if what else ""))


def sha256_file(path: Path, cancel: Optional[threading.Event] = None,
                progress: Optional[Callable[[int, int], None]] = None) -> str:
    h = hashlib.sha256()
    total = Path(path).stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git (and the Hub, for a small file) gives these bytes."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class HubRecord:
    digest: str  # the Hub's hash of the file: SHA-256 (64 hex) or git blob SHA-1 (40 hex)
    where: str  # how we know: "the Hugging Face cache" | "the download record in .cache/huggingface"

    @property
    def algorithm(self) -> str:
        return "SHA-256" if len(self.digest) == 64 else "git SHA-1"


def hub_record(folder: Path, relpath: str) -> Optional[HubRecord]:
    """The Hub's hash of `folder/relpath` when huggingface_hub put it there, else None."""
    path = Path(folder) / relpath
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real.parent.name == "blobs" and (_SHA256.match(real.name) or _SHA1.match(real.name)):
        return HubRecord(real.name, "the Hugging Face cache")
    meta = Path(folder) / ".cache" / "huggingface" / "download" / f"{relpath}.metadata"
    try:
        lines = meta.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
    if _SHA256.match(etag) or _SHA1.match(etag):
        return HubRecord(etag, "the download record in .cache/huggingface")
    return None


def matches_record(path: Path, record: HubRecord, sha256: str) -> bool:
    return sha256 == record.digest if len(record.digest) == 64 else git_blob_sha1(path) == record.digest


# ------------------------------------------------------------------ TorchScript, unrun ---
@dataclass
class ArchiveInfo:
    problem: str = ""  # why this is no TorchScript archive ("" when it is one)
    code_files: int = 0
    file_ops: list[str] = field(default_factory=list)  # file-touching ops its code calls


def inspect_torchscript(path: Path) -> ArchiveInfo:
    """Look inside a TorchScript archive without loading it (loading runs its code).

    torch.jit.save writes `<root>/data.pkl`, `<root>/constants.pkl`, `<root>/version` and
    `<root>/code/**.py`; torch.save's archives lack the code and constants. The small members
    are read in full, so their CRCs are checked; tensor data is left unread."""
    info = ArchiveInfo()
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                info.problem = "is not a TorchScript archive (not a zip file; truncated or corrupt?)"
                return info
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            roots = {n.split("/", 1)[0] for n in names}
            root = next(iter(roots)) if len(roots) == 1 else ""
            needed = [f"{root}/{m}" for m in ("data.pkl", "constants.pkl", "version")]
            code = [n for n in names if n.startswith(f"{root}/code/") and n.endswith(".py")]
            if not root or any(n not in names for n in needed) or not code:
                info.problem = ("is a zip archive but not TorchScript (no code/ or constants.pkl: "
                                "a torch.save file, not torch.jit.save?)")
                return info
            info.code_files = len(code)
            found = set()
            for name in needed + code:
                data = z.read(name)  # raises on a CRC mismatch
                if name.endswith(".py"):
                    found.update(m.group(0) for m in _FILE_OPS.finditer(data.decode("utf-8", "replace")))
            info.file_ops = sorted(found)
    except OSError as exc:
        info.problem = f"cannot be read: {describe_os_error(exc)}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        info.problem = f"is a damaged archive ({exc}; truncated or corrupt?)"
    return info
