"""OUTDIR/manifest.jsonl: one JSON line per person found, and one per input that gave none.

    status "ok"          a person: source, frame (a video's frame index; null for a photo),
                         person index, people in the photo or frame, box, score, parameters,
                         camera, output files (relative to OUTDIR)
    status "no people"   the detector found nobody (done: a rerun does not look again)
    status "error"       the input itself is at fault: not an image, truncated, a bad box (done:
                         the same bytes fail the same way; a fixed file has another hash)
    status "failed"      something outside the input went wrong (out of memory, a crash in a
                         step): not done, a rerun tries again (a later line of the same source
                         supersedes an earlier one)
    status "video"       a video read to its end: frames read and lost (its frames' lines,
                         "frame" set, come before it); this line makes the whole video done

The file is only ever appended to, by one writer, a whole photo's lines in one write: a run
killed mid-write leaves at most a torn last line, which the next run cuts off before appending
(`Manifest`). A photo counts as done only when all its people's lines are there, so a torn
photo is computed again. Lines are never rewritten, so a crash never loses finished work.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator, Optional

from ..errors import UserError, describe_os_error

MANIFEST_NAME = "manifest.jsonl"
PARQUET_NAME = "manifest.parquet"
DONE_STATUSES = ("ok", "no people", "error", "video")
_FSYNC_EVERY_S = 1.0  # lines reach the disk at least this often (and at the end)


def encode_lines(records: list[dict]) -> bytes:
    # allow_nan=False: a NaN parameter would make the line unreadable to strict JSON readers;
    # photo_work turns non-finite values into null before this.
    return "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in records).encode("utf-8")


def read_records(path: Path) -> Iterator[dict]:
    """Every complete line of a manifest (a torn last line is left out), one at a time."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # torn: the writer was killed mid-line
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line damaged by hand: not done, so computed again


def done_jobs(path: Path) -> set[tuple]:
    """What the manifest finished: (content hash, settings fingerprint) of every photo with all
    its people's lines, and of every video read to its end; (hash, fingerprint, frame) of every
    video frame with all its people's lines."""
    seen: dict[tuple, int] = {}
    done = set()
    for r in read_records(path):
        sha, fp, status = r.get("content_sha256"), r.get("settings"), r.get("status")
        if not sha or not fp or status not in DONE_STATUSES:
            continue
        key = (sha, fp) if r.get("frame") is None else (sha, fp, r["frame"])
        if status != "ok":
            done.add(key)
            continue
        seen[key] = seen.get(key, 0) + 1
        if seen[key] >= int(r.get("people", 1)):
            done.add(key)
    return done


class Manifest:
    """The manifest of OUTDIR, opened for appending (one writer: the engine's writer)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        try:
            self._cut_torn_tail()
            self.done = done_jobs(self.path)
            self._file = open(self.path, "ab")
        except OSError as exc:
            raise UserError(f"cannot open the manifest {self.path}: {describe_os_error(exc)}") from None
        self._synced = time.monotonic()

    def _cut_torn_tail(self) -> None:
        """Cut a torn last line (a killed run's), so the next line starts on a line of its own."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            keep, pos, chunk = 0, size, 1 << 16
            while pos > 0:  # find the last newline, reading backwards
                start = max(0, pos - chunk)
                f.seek(start)
                block = f.read(pos - start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                pos = start
            f.truncate(keep)

    def append(self, records: list[dict]) -> None:
        self.append_encoded(encode_lines(records))

    def append_encoded(self, data: bytes) -> None:
        """Lines already encoded (`encode_lines`): the Ray engine's writers encode them, so that
        the one driver appending them is not the run's limit (~0.3 ms of JSON a person)."""
        if not data:
            return
        try:
            self._file.write(data)
            self._file.flush()  # a killed process loses nothing written; fsync below guards a power cut
            if time.monotonic() - self._synced > _FSYNC_EVERY_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            raise UserError(f"cannot write the manifest {self.path}: {describe_os_error(exc)}") from None

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


def write_parquet(out_dir: Path, chunk: int = 4096) -> Optional[Path]:
    """OUTDIR/manifest.parquet from manifest.jsonl, written in chunks (memory stays flat) and
    atomically; None if pyarrow is not installed. Parameters become list<double> columns
    `param_<name>` (flattened), the output files one JSON text column."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    from ..atomic_file import atomic_path
    from ..pipeline.pipeline import PARAM_KEYS

    floats = pa.list_(pa.float64())
    fields = [("status", pa.string()), ("source", pa.string()), ("frame", pa.int64()), ("person", pa.int64()),
              ("people", pa.int64()), ("box_xyxy", floats), ("score", pa.float64()), ("box_from", pa.string()),
              ("focal_length", pa.float64()), ("cam_t", floats), ("image_size_hw", pa.list_(pa.int64())),
              ("files", pa.string()), ("error", pa.string()), ("frames", pa.int64()), ("content_sha256", pa.string()),
              ("settings", pa.string())] + [(f"param_{k}", floats) for k in PARAM_KEYS]
    schema = pa.schema(fields)

    def row(r: dict) -> dict:
        out = {name: r.get(name) for name, _ in fields[:11]}
        out["files"] = json.dumps(r["files"]) if r.get("files") else None
        out["error"] = r.get("error") or r.get("note")
        out["frames"] = r.get("frames")  # a video's line: frames read
        out["content_sha256"], out["settings"] = r.get("content_sha256"), r.get("settings")
        params = r.get("params") or {}
        for k in PARAM_KEYS:
            out[f"param_{k}"] = _flat(params[k]) if k in params else None
        return out

    dest = Path(out_dir) / PARQUET_NAME
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            rows = []
            for r in read_records(Path(out_dir) / MANIFEST_NAME):
                rows.append(row(r))
                if len(rows) >= chunk:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return dest


def _flat(value) -> list:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]
