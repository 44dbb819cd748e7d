"""What of the model files is already on disk (no network), and the app's folder of links into
the Hugging Face cache that a cached model is loaded from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .hub_repos import _SHA256, ALL_FILES, LINK_FOLDER_MARKER, HubError, HubOptions, RepoFile


@dataclass
class FileStatus:
    file: RepoFile
    path: Optional[Path] = None  # where it is, when present
    size: Optional[int] = None  # bytes on disk when present, else the Hub's size when known
    partial: int = 0  # bytes of an interrupted download that will be resumed
    note: str = ""

    @property
    def present(self) -> bool:
        return self.path is not None


def _file_size(path: Path) -> Optional[int]:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _local_partial(local_dir: Path, filename: str, etag: str = "*") -> Path:
    return local_dir / ".cache" / "huggingface" / "download" / f"{filename}.{etag}.partial"


def _cache_repo_dir(options: HubOptions, repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return options.cache() / repo_folder_name(repo_id=repo_id, repo_type="model")


def cached_partials(options: HubOptions, repo_id: str) -> int:
    """Bytes of resumable partial downloads of `repo_id` in the cache."""
    blobs = _cache_repo_dir(options, repo_id) / "blobs"
    return sum(_file_size(p) or 0 for p in blobs.glob("*.incomplete") if _SHA256.match(p.name.split(".")[0])
               and p.name.count(".") == 1)


def local_status(files: Sequence[RepoFile] = ALL_FILES, options: HubOptions = HubOptions()) -> list[FileStatus]:
    """What is on disk, without any network access."""
    from huggingface_hub import try_to_load_from_cache

    out = []
    for f in files:
        st = FileStatus(f)
        if options.local_dir is not None:
            p = Path(options.local_dir).expanduser() / f.filename
            if p.is_file():
                st.path, st.size = p, _file_size(p)
            else:
                pattern = _local_partial(Path(options.local_dir).expanduser(), f.filename)
                st.partial = sum(_file_size(q) or 0 for q in pattern.parent.glob(pattern.name))
        else:
            cached = try_to_load_from_cache(f.repo_id, f.filename, cache_dir=str(options.cache()),
                                            revision=options.revision)
            if isinstance(cached, str) and os.path.isfile(cached):
                st.path, st.size = Path(cached), _file_size(Path(cached))
        out.append(st)
    return out


def missing_files(statuses: Iterable[FileStatus]) -> list[RepoFile]:
    return [s.file for s in statuses if not s.present]


# ------------------------------------------------------------ the model folder for the app ---
def link_folder() -> Path:
    """The app-owned folder of links into the HF cache that the app loads a cached model from."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("sam3dbody-gui")) / "models" / "sam-3d-body-dinov3"


@dataclass
class Resolution:
    folder: Optional[Path]  # a model folder with every required file, or None
    statuses: list[FileStatus]
    options: HubOptions

    @property
    def missing_model_files(self) -> list[RepoFile]:
        return [s.file for s in self.statuses if s.file.kind == "model" and not s.present]

    @property
    def complete(self) -> bool:
        return self.folder is not None

    def describe(self) -> str:
        have = [s for s in self.statuses if s.present]
        missing = [s for s in self.statuses if not s.present]
        parts = [f"{len(have)} of {len(self.statuses)} files in the {self.options.where()}"]
        if missing:
            parts.append("missing: " + ", ".join(str(s.file) for s in missing))
        return "; ".join(parts)


def _link(target: Path, link: Path) -> None:
    """Point `link` at `target`. Only ever replaces a link (ours); a regular file is kept."""
    if link.is_symlink():
        if os.readlink(link) == str(target):
            return
        link.unlink()  # our own link to an older snapshot, or a dangling one
    elif link.exists():
        try:
            if link.samefile(target):
                return  # a hard link made earlier
        except OSError:
            pass
        raise HubError(f"{link} is a file this app did not make; it was left as is: move it away and try again")
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target)
    except OSError:  # no symlinks (e.g. Windows without developer mode): a hard link to the blob
        try:
            os.link(os.path.realpath(target), link)
        except OSError as exc:
            raise HubError(f"cannot link {link} to {target}: {exc.strerror or exc}") from None


def assemble_link_folder(statuses: Sequence[FileStatus], folder: Optional[Path] = None) -> Path:
    """Make (or refresh) the folder of links: every present file under its repository path."""
    folder = Path(folder or link_folder())
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / LINK_FOLDER_MARKER
    if not marker.exists():
        marker.write_text("Made by sam3dbody-gui: links to the model files in the Hugging Face cache.\n"
                          "Removing this folder removes nothing from the cache.\n", encoding="utf-8")
    for st in statuses:
        link = folder / st.file.filename
        if st.present:
            _link(st.path, link)
        elif link.is_symlink() and not link.exists():
            link.unlink()  # our dangling link: the cached file went away
    return folder


def resolve_model_folder(options: HubOptions = HubOptions()) -> Resolution:
    """The model folder to load, from what is already on disk (no network; works with
    HF_HUB_OFFLINE=1). Cache: the folder of links (made or refreshed here); a download folder:
    that folder. `folder` is None while a required file is missing."""
    statuses = local_status(ALL_FILES, options)
    have_model = all(s.present for s in statuses if s.file.kind == "model")
    folder = None
    if have_model:
        if options.local_dir is not None:
            folder = Path(options.local_dir).expanduser()
        else:
            folder = assemble_link_folder(statuses, options.link_dir)
    return Resolution(folder, statuses, options)


def find_installed_model(options: HubOptions = HubOptions()) -> Optional[Path]:
    """A complete model in the Hugging Face cache, as a loadable folder, or None. Never raises."""
    try:
        return resolve_model_folder(options).folder
    except Exception:  # noqa: BLE001 - a start-up probe: any problem means "none found"
        return None

