"""The INPUT arguments of `batch` → the sources to process, in a stable order.

An INPUT is a folder (searched recursively for photos and videos), a glob (`shots/**/*.jpg`), a
text file of paths (.txt/.lst/.list, one a line, `#` comments; relative paths are relative to
the list's folder), or a file. What the command line names must exist (a typo stops the run
before the model loads); a path inside a list that is missing becomes an error line in the
manifest instead, so that one stale line of a 100,000-line list does not stop the run.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from ..errors import UserError, describe_os_error
from ..export.service import IMAGE_SUFFIXES
from ..video.reader import VIDEO_SUFFIXES

PHOTO_SUFFIXES = tuple(sorted(set(IMAGE_SUFFIXES) | {".gif"}))
LIST_SUFFIXES = (".txt", ".lst", ".list")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Source:
    path: Path  # absolute, as found (links not resolved: the manifest names what the user named)
    kind: str  # "photo" or "video"


def kind_of(path: Path) -> str:
    # A file named explicitly is tried as a photo whatever its suffix: the decoder says if it is not.
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "photo"


def _wanted(path: Path) -> bool:
    """A file a folder search takes: a photo or a video, not hidden (temporary files of an
    interrupted write start with a dot, see atomic_file.py)."""
    return not path.name.startswith(".") and path.suffix.lower() in PHOTO_SUFFIXES + VIDEO_SUFFIXES


def _walk(folder: Path, skip: Optional[Path]) -> Iterator[Path]:
    """Photos and videos under `folder`, sorted, not descending into `skip` (the output folder,
    when it lies inside an input folder) nor into hidden folders."""
    for root, dirs, files in os.walk(folder, onerror=None, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        for name in sorted(files):
            path = here / name
            if _wanted(path):
                yield path


def _read_list(list_file: Path) -> Iterator[Path]:
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"cannot read the list of inputs {list_file}: {reason}") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line).expanduser()
            yield path if path.is_absolute() else list_file.parent / path


def _expand_one(arg: str, skip: Optional[Path], from_list: bool) -> Iterator[Path]:
    path = Path(arg).expanduser()
    if path.is_dir():
        yield from _walk(path, skip)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES and not from_list:
        for listed in _read_list(path):
            yield from _expand_one(str(listed), skip, from_list=True)
    elif path.exists() or from_list:
        yield path  # a missing listed file: its manifest line says so
    elif _GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise UserError(f"no file matches {arg}")
        for match in matches:
            m = Path(match)
            if m.is_dir():
                yield from _walk(m, skip)
            elif _wanted(m):
                yield m
    else:
        raise UserError(f"input not found: {arg}")


def expand_inputs(args: Sequence[str], out_dir: Optional[Path] = None) -> list[Source]:
    """Every source the arguments name, each once (the first time it is named), in order:
    arguments as given, a folder's files sorted."""
    skip = Path(out_dir).resolve() if out_dir is not None else None
    seen: set[Path] = set()
    sources = []
    for arg in args:
        for path in _expand_one(str(arg), skip, from_list=False):
            absolute = Path(os.path.abspath(path))
            if absolute not in seen:
                seen.add(absolute)
                sources.append(Source(absolute, kind_of(absolute)))
    if not sources:
        raise UserError(f"no photos or videos found in {', '.join(map(str, args))} (photos: "
                        f"{' '.join(PHOTO_SUFFIXES)}; videos: {' '.join(VIDEO_SUFFIXES)})")
    return sources


def count_kinds(sources: Iterable[Source]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts
