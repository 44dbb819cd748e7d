"""What makes a batch run resumable: jobs named by content, and the debris of a killed run.

A job is one input's bytes under one set of settings: (content hash, settings fingerprint). A
rerun skips every job the manifest has finished (manifest.done_jobs), wherever the file now
lives: a folder moved or renamed is not computed again, and an edited photo (other bytes) is.
Its outputs go to a folder named by the job, so two settings never write over each other.

A run killed by SIGKILL or a power cut cannot clean up after itself: the temporary file of the
write in flight stays (atomic_file.py names it `.NAME.XXXXXXXX.SUFFIX`, beside its destination;
the destination itself is never half-written). The next run removes those first.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

HASH_CHUNK = 1 << 20
# atomic_file.create_temp's names: a dot, the destination's name, 8 hex digits, its suffix.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}(?P<suffix>\.[^.]*)?$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 60


def content_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (a video of gigabytes costs no memory). Raises OSError."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def job_folder(source: Path, sha: str, fingerprint: str) -> str:
    """OUTDIR's folder for one job: readable (the source's stem) and unique (the job's hash).
    The same bytes under the same settings always land in the same folder."""
    stem = _SAFE.sub("_", Path(source).stem).strip("._")[:MAX_STEM] or "input"
    job = hashlib.sha256(f"{sha}:{fingerprint}".encode()).hexdigest()[:12]
    return f"{stem}_{job}"


def is_temp_name(name: str) -> bool:
    match = _TEMP_NAME.match(name)
    return bool(match) and (match.group("suffix") or "") == Path(match.group("name")).suffix


def sweep_temp_files(out_dir: Path) -> int:
    """Remove the temporary files a killed run left in OUTDIR and its job folders; how many."""
    removed = 0
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return 0
    folders = [out_dir] + [Path(e.path) for e in os.scandir(out_dir) if e.is_dir(follow_symlinks=False)]
    for folder in folders:
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and is_temp_name(entry.name):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def leftover_temp_files(out_dir: Path) -> list[Path]:
    """The temporary files under OUTDIR (for checks: a clean run leaves none)."""
    return [p for p in Path(out_dir).rglob(".*") if p.is_file() and is_temp_name(p.name)]
