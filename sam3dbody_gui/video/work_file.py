"""The work of a pass over a clip, one JSON line per frame, so a stopped run resumes.

A frame's line is appended (and flushed to disk) as soon as the frame is done; a cancelled,
interrupted or crashed run leaves every finished frame on disk, and the next run with the same
clip and settings reads them back and starts at the first frame missing. The file is named
after the clip's content (SHA-256: a renamed or copied clip still resumes, an edited one does
not) and the settings that change what a frame holds (model, runtime, boxes, detector); what is
only done afterwards (smoothing, id fixes, outputs) is not in the name, so changing it reuses the
pass. A last line cut short by a crash is dropped. The outputs are never written from here:
they are published, atomically, once the pass is complete.

Numbers are written as JSON floats of float32 values, which read back to the same float32: a
resumed run gives the same outputs as one that never stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Optional

from ..errors import UserError, describe_os_error

FORMAT = "sam3dbody-gui video work 1"
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {describe_os_error(exc)}") from None
    return digest.hexdigest()


def work_key(clip_sha256: str, settings: dict) -> str:
    text = json.dumps({"clip": clip_sha256, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class WorkFile:
    """Frame records by index. `append` writes one through to disk."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = Path(path)
        self.header = header
        self.records: dict[int, dict] = {}
        self.dropped_tail = False  # a cut-short last line was found (and dropped)
        self._file = None

    @classmethod
    def open(cls, folder: Path, clip: Path, settings: dict, fresh: bool = False,
             clip_sha256: Optional[str] = None) -> "WorkFile":
        """The work file for `clip` with `settings` in `folder` (made if missing), with what an
        earlier run finished; `fresh`: forget that and start over."""
        clip_sha256 = clip_sha256 or file_sha256(clip)
        key = work_key(clip_sha256, settings)
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot make the work folder {folder}: {describe_os_error(exc)}") from None
        header = {"format": FORMAT, "clip": str(clip), "clip_sha256": clip_sha256, "settings": settings}
        work = cls(folder / f"{Path(clip).stem[:40]}-{key}.jsonl", header)
        if not fresh and work.path.is_file():
            work._load()
        else:
            work._start()
        return work

    def _start(self) -> None:
        self.records = {}
        try:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(json.dumps(self.header, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise UserError(f"cannot write the work file {self.path}: {describe_os_error(exc)}") from None

    def _load(self) -> None:
        good = 0  # bytes of whole, valid lines
        with open(self.path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        try:
            header = json.loads(lines[0])
        except (ValueError, IndexError):
            header = None
        if header != json.loads(json.dumps(self.header, sort_keys=True)):
            self._start()  # another format, or the (unlikely) clash of a key: start over
            return
        good = len(lines[0]) + 1
        for line in lines[1:]:
            if not line:
                break
            try:
                record = json.loads(line)
                index = int(record["frame"])
            except (ValueError, KeyError, TypeError):
                self.dropped_tail = True
                break
            self.records[index] = record
            good += len(line) + 1
        if good < len(data):  # a line cut short (or garbage) at the end: drop it before appending
            self.dropped_tail = True
            with open(self.path, "rb+") as f:
                f.truncate(good)

    def __contains__(self, index: int) -> bool:
        return index in self.records

    def __len__(self) -> int:
        return len(self.records)

    def in_order(self) -> Iterator[dict]:
        for index in sorted(self.records):
            yield self.records[index]

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"))
        try:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise UserError(f"cannot write the work file {self.path}: {describe_os_error(exc)}") from None
        self.records[int(record["frame"])] = json.loads(line)  # as a resumed run would read it

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """Forget the work (after the outputs are published, when the user asks)."""
        self.close()
        self.path.unlink(missing_ok=True)
