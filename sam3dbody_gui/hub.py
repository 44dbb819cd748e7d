"""Getting the model files from Hugging Face: what is installed, downloading, offline use.

Two repositories make a complete install:

    facebook/sam-3d-body-dinov3   (gated, SAM License)  model.ckpt, model_config.yaml, assets/mhr_model.pt
    embedl/sam-3d-body            (optional)            embedl_sam3dbody_int8.onnx (+ .onnx.data, ~3.4 GB),
                                                         embedl_sam3dbody_int8.pt2, sample_input.png

Everything goes through huggingface_hub, so its cache, token, endpoint and offline settings
apply (HF_HOME / HF_HUB_CACHE, HF_TOKEN or `hf auth login`, HF_ENDPOINT, HF_HUB_OFFLINE):

* Files land in the Hugging Face cache (default) or in a folder of the user's choice
  (`local_dir`, the library's own layout with its `.cache/huggingface/` metadata).
* The app uses a cached model through a folder of links that it owns
  (`<user data>/models/sam-3d-body-dinov3`): the two repositories' files side by side, in the
  layout `model/model_folder.py` and `runtime/backbones/plan.py` expect. The cache itself is left as the
  library made it.
* Resuming: huggingface_hub (2.x) downloads into a process-unique temporary file and deletes it
  when the download fails or is interrupted, so on its own it resumes only within one call (it
  retries a dropped connection up to 5 times with an HTTP Range request). For the large files
  (>= RESUMABLE_MIN_BYTES) we keep the partial file instead: in the cache as
  `blobs/<etag>.incomplete` (the name `hf cache scan` reports as an incomplete download), in a
  folder as `.cache/huggingface/download/<file>.<etag>.partial`, and continue it with the
  library's `http_get(resume_size=...)` — its one non-public call, isolated in hub_http.py. A finished file's SHA-256 is checked against the Hub's
  ETag before the library links it into the cache.
* Nothing of the user's is deleted or overwritten: a file already in the destination folder
  that differs from the Hub's is kept and reported; the folder of links only ever replaces its
  own links.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence
from urllib.parse import urlparse

from .errors import UserError, first_line
from .units import format_size  # noqa: F401 - also hub.format_size for the dialogs

MODEL_REPO = "facebook/sam-3d-body-dinov3"
BACKBONE_REPO = "embedl/sam-3d-body"
HF_SITE = "https://huggingface.co"
MODEL_PAGE = f"{HF_SITE}/{MODEL_REPO}"
BACKBONE_PAGE = f"{HF_SITE}/{BACKBONE_REPO}"
TOKENS_PAGE = f"{HF_SITE}/settings/tokens"
RESUMABLE_MIN_BYTES = 16 * 2**20  # smaller files go through hf_hub_download as they are
LINK_FOLDER_MARKER = "LINKS_TO_HF_CACHE.txt"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HubError(UserError):
    """Downloading or finding the model files failed; the message says what to do."""


class DownloadCancelled(HubError):
    """The user cancelled; partial files of the large downloads are kept for resuming."""


@dataclass(frozen=True)
class RepoFile:
    repo_id: str
    filename: str  # path inside the repository, and inside the model folder
    what: str

    @property
    def kind(self) -> str:
        return "model" if self.repo_id == MODEL_REPO else "backbone"

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.filename}"


MODEL_FILES = (
    RepoFile(MODEL_REPO, "model.ckpt", "checkpoint: backbone, decoder and heads"),
    RepoFile(MODEL_REPO, "model_config.yaml", "architecture configuration"),
    RepoFile(MODEL_REPO, "assets/mhr_model.pt", "MHR body rig (TorchScript)"),
)
BACKBONE_FILES = (
    RepoFile(BACKBONE_REPO, "embedl_sam3dbody_int8.onnx", "int8 backbone graph (TensorRT backend)"),
    RepoFile(BACKBONE_REPO, "embedl_sam3dbody_int8.onnx.data", "the ONNX graph's weights (~3.4 GB)"),
    RepoFile(BACKBONE_REPO, "embedl_sam3dbody_int8.pt2", "int8 backbone, torch.export program (.pt2 backend)"),
    RepoFile(BACKBONE_REPO, "sample_input.png", "embedl's sample photo"),
)
ALL_FILES = MODEL_FILES + BACKBONE_FILES


def select_files(model: bool = True, backbone: bool = True) -> tuple[RepoFile, ...]:
    return (MODEL_FILES if model else ()) + (BACKBONE_FILES if backbone else ())


@dataclass(frozen=True)
class HubOptions:
    """Where files go and how the Hub is reached; None means huggingface_hub's own default
    (HF_HUB_CACHE, the saved token or HF_TOKEN, HF_ENDPOINT)."""

    cache_dir: Optional[Path] = None
    local_dir: Optional[Path] = None  # download into this folder instead of the cache
    token: Optional[str] = None
    endpoint: Optional[str] = None
    revision: str = "main"
    link_dir: Optional[Path] = None  # the folder of links for a cached model (default: link_folder())

    def cache(self) -> Path:
        from huggingface_hub import constants

        return Path(self.cache_dir or constants.HF_HUB_CACHE).expanduser()

    def where(self) -> str:
        return f"folder {self.local_dir}" if self.local_dir else f"Hugging Face cache {self.cache()}"

    def site(self) -> str:
        from huggingface_hub import constants

        return (self.endpoint or constants.ENDPOINT).rstrip("/")


def is_offline() -> bool:
    """HF_HUB_OFFLINE=1 (read by huggingface_hub when it is imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def token_source(options: HubOptions = HubOptions()) -> Optional[str]:
    """Where the token that will be sent comes from, or None when there is none."""
    if options.token:
        return "the token given"
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception:  # noqa: BLE001 - an unreadable token file is "no token"
        token = None
    if not token:
        return None
    return "HF_TOKEN" if os.environ.get("HF_TOKEN") else "the saved login (hf auth login)"


def _token_arg(options: HubOptions):
    return options.token or None  # None: the library's default (HF_TOKEN / saved login)


# ------------------------------------------------------------------------- what is there ---
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


# ------------------------------------------------------------------------------ errors ---
def _status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _http_answer(exc: BaseException) -> Optional[BaseException]:
    """The HTTP error the server answered, if `exc` is one or was raised from one.

    huggingface_hub turns a failed metadata request it cannot explain (a 5xx, after its retries)
    into "cannot find the file locally ... check your connection", raised from the HTTP error: the
    server did answer, so that answer, not the network, is what went wrong."""
    from huggingface_hub.errors import HfHubHTTPError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HfHubHTTPError) and _status(exc) is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def explain_error(exc: BaseException, repo_id: str, filename: str = "", options: HubOptions = HubOptions()) -> str:
    """One message that says what happened and what to do."""
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RemoteEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    if not isinstance(exc, HfHubHTTPError) and _http_answer(exc) is not None:
        exc = _http_answer(exc)
    page = f"{HF_SITE}/{repo_id}"
    has_token = token_source(options) is not None
    status = _status(exc)
    login = "run `hf auth login` (or pass --token, or paste a token in Model ▸ Models…)"
    if isinstance(exc, GatedRepoError):
        if status == 401 or not has_token:
            return (f"{repo_id} is gated and no valid Hugging Face token was sent ({status or 'refused'}): "
                    f"sign in at huggingface.co, open {page}, accept the SAM License, then {login} and try again")
        return (f"your Hugging Face account has no access to {repo_id} yet (403): open {page} and accept the "
                "SAM License (access may need approval; the page says when it is granted), then try again")
    if isinstance(exc, RevisionNotFoundError):
        return f"revision {options.revision!r} of {repo_id} not found on Hugging Face (404)"
    if isinstance(exc, RepositoryNotFoundError):
        if status == 401 and not has_token:
            return (f"{repo_id} not found, or it needs a signed-in account (401): check the name; if it is gated "
                    f"or private, open {page}, accept its licence, then {login}")
        return (f"repository {repo_id} not found on Hugging Face ({status or 404})"
                + (": your token may not have access to it" if has_token else "") + f"; check {page}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return f"{filename or 'a file'} is not in {repo_id} (404): the repository's layout may have changed; see {page}"
    if isinstance(exc, HfHubHTTPError) and status is not None:
        if status == 401:
            return (f"Hugging Face refused the token (401: invalid or expired): make a new read token at "
                    f"{TOKENS_PAGE}, then {login}")
        if status == 403:
            return (f"Hugging Face refused access to {repo_id} (403): your token lacks permission. A fine-grained "
                    f"token needs 'Read access to contents of all public gated repos you can access'; and accept "
                    f"the licence at {page}")
        if status == 404:
            return f"{repo_id}/{filename} not found on Hugging Face (404)"
        if status == 429:
            return "Hugging Face is rate-limiting this address (429): wait a few minutes and try again"
        if status >= 500:
            return (f"Hugging Face answered {status} (an error on the server's side; the network is fine): "
                    "try again later, or see https://status.huggingface.co")
        return f"Hugging Face answered {status}: {first_line(exc)}"
    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError, TimeoutError)) or \
            _is_network_error(exc):
        if is_offline():
            return "HF_HUB_OFFLINE=1 is set, so nothing is downloaded"
        return (f"cannot reach Hugging Face ({options.site()}): no network, or a proxy or firewall blocks it "
                f"({first_line(exc)})")
    return f"{type(exc).__name__}: {first_line(exc)}"


def _is_network_error(exc: BaseException) -> bool:
    try:
        import httpx2 as httpx
    except ImportError:  # older huggingface_hub: httpx or requests
        try:
            import httpx
        except ImportError:
            return False
    return isinstance(exc, (httpx.TransportError,))


def _is_unreachable(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if _http_answer(exc) is not None:  # the server answered, with an error
        return False
    return isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError, TimeoutError)) or \
        _is_network_error(exc)


def _translate(exc: BaseException, f: RepoFile, options: HubOptions) -> HubError:
    if isinstance(exc, HubError):
        return exc
    return HubError(explain_error(exc, f.repo_id, f.filename, options))


# ------------------------------------------------------------------------------ progress ---
@dataclass
class DownloadProgress:
    phase: str  # "checking" | "downloading" | "verifying" | "done"
    file: Optional[RepoFile] = None
    index: int = 0  # 1-based position of `file` among the files to fetch
    count: int = 0
    done: int = 0  # bytes of this file
    total: Optional[int] = None
    overall_done: int = 0  # bytes of all files to fetch
    overall_total: int = 0
    message: str = ""


ProgressFn = Callable[[DownloadProgress], None]


def _bar_class(on_update: Callable[[int, Optional[int]], None], cancel: Optional[threading.Event]):
    """A tqdm class for huggingface_hub's `tqdm_class` hooks: it draws nothing, reports the
    byte count to `on_update(done, total)` and raises DownloadCancelled when `cancel` is set."""
    from tqdm.std import tqdm as std_tqdm

    class _Bar(std_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.n = kwargs.get("initial", 0) or 0
            on_update(self.n, self.total)

        def update(self, n=1):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("download cancelled; run it again to resume")
            self.n += n or 0
            on_update(self.n, self.total)
            return True

        def update_transfer(self, n=1):  # xet downloads report transferred bytes separately
            pass

    return _Bar


# ------------------------------------------------------------------------------ download ---
@dataclass
class _Plan:
    file: RepoFile
    size: Optional[int]
    fetch: bool  # needs bytes from the Hub
    path: Optional[Path] = None
    keep_reason: str = ""  # a user's file in the way: kept, not downloaded


@dataclass
class DownloadResult:
    statuses: list[FileStatus]
    folder: Optional[Path]  # the model folder to use, when the model files are all there
    downloaded: list[RepoFile] = field(default_factory=list)
    kept: list[tuple[RepoFile, str]] = field(default_factory=list)
    bytes_downloaded: int = 0
    offline: bool = False


def _download_kwargs(f: RepoFile, options: HubOptions) -> dict:
    kw = dict(repo_id=f.repo_id, filename=f.filename, revision=options.revision, token=_token_arg(options),
              endpoint=options.endpoint)
    if options.local_dir is not None:
        kw["local_dir"] = str(Path(options.local_dir).expanduser())
    if options.cache_dir is not None:
        kw["cache_dir"] = str(options.cache())
    return kw


def _plan_file(f: RepoFile, options: HubOptions) -> _Plan:
    from huggingface_hub import hf_hub_download

    info = hf_hub_download(**_download_kwargs(f, options), dry_run=True)
    plan = _Plan(f, info.file_size, bool(info.will_download), Path(info.local_path))
    if plan.fetch and options.local_dir is not None and plan.path.is_file():
        # huggingface_hub would delete this file and download the Hub's: it is the user's, keep it.
        plan.fetch = False
        plan.keep_reason = ("a file of that name is already in the folder and differs from the Hub's (or was not "
                            "downloaded from it); it was kept: move it away to download the Hub's")
    return plan


def _hub_reachable(f: RepoFile, options: HubOptions) -> bool:
    """One HEAD request without retries: False only when the Hub cannot be reached at all (an
    HTTP answer, even an error, means it can; the plan step reports that error precisely)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(f.repo_id, f.filename, revision=options.revision, endpoint=options.endpoint)
    try:
        get_hf_file_metadata(url, token=_token_arg(options), endpoint=options.endpoint, retry_on_errors=False)
    except Exception as exc:  # noqa: BLE001
        status = _status(exc)
        if status is not None and status >= 500:
            # Say it now: the plan step would retry for ~25 s, then blame the connection.
            raise HubError(explain_error(exc, f.repo_id, f.filename, options)) from None
        return not _is_unreachable(exc)
    return True


def _check_library() -> None:
    """Downloading uses hf_hub_download's dry_run and tqdm_class (huggingface_hub 1.1 and later)."""
    import inspect

    import huggingface_hub
    from huggingface_hub import hf_hub_download

    params = inspect.signature(hf_hub_download).parameters
    if "dry_run" not in params or "tqdm_class" not in params:
        raise HubError(f"huggingface_hub {huggingface_hub.__version__} is too old to download the model: "
                       "pip install -U 'huggingface_hub>=1.1'")


def _check_space(folder: Path, needed: int) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise HubError(f"not enough disk space in {folder}: {format_size(needed)} needed, "
                       f"{format_size(free)} free")


def _sha256(path: Path, report: Callable[[int], None], cancel: Optional[threading.Event]) -> str:
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 2**20):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("download cancelled while checking; run it again to resume")
            h.update(chunk)
            done += len(chunk)
            report(done)
    return h.hexdigest()


def _resumable_fetch(f: RepoFile, options: HubOptions, bar, verify: Callable[[int], None],
                     cancel: Optional[threading.Event]) -> bool:
    """Download `f` into a partial file that survives interruption, continuing one left by an
    earlier run; then hand the finished file to huggingface_hub. False when the file is not
    suitable (not LFS/unknown size): the caller uses hf_hub_download instead."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from .hub_http import http_get_problem, http_get_resuming

    if http_get_problem():  # a huggingface_hub without the call we resume with: its own download
        return False

    url = hf_hub_url(f.repo_id, f.filename, revision=options.revision, endpoint=options.endpoint)
    meta = get_hf_file_metadata(url, token=_token_arg(options), endpoint=options.endpoint)
    etag, size = meta.etag, meta.size
    if not etag or not _SHA256.match(etag) or not size:
        return False
    if options.local_dir is not None:
        local_dir = Path(options.local_dir).expanduser()
        partial = _local_partial(local_dir, f.filename, etag)
        final = local_dir / f.filename
    else:
        blobs = _cache_repo_dir(options, f.repo_id) / "blobs"
        partial = blobs / f"{etag}.incomplete"
        final = blobs / etag
    if final.exists():
        if options.local_dir is not None:  # appeared since the plan: it may be the user's, keep it
            raise HubError(f"{final} is already there; it was kept: move it away to download the Hub's")
        hf_hub_download(**_download_kwargs(f, options))  # the blob is cached: the library links it
        return True
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = _file_size(partial) or 0
    if have > size:  # not ours to resume from: start over (it is our own partial file)
        have = 0
    _check_space(partial.parent, size - have)

    headers = build_hf_headers(token=_token_arg(options))
    # As huggingface_hub's own HTTP path: a Xet-stored file is fetched through its /resolve/ address
    # (the redirect is followed, and the token is not sent to another host); an LFS file from the
    # address the HEAD request was redirected to, without the token when that is another host.
    download_url = url if meta.xet_file_data is not None else (meta.location or url)
    if urlparse(download_url).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)
    with open(partial, "r+b" if partial.exists() else "wb") as fh:
        fh.truncate(have)
        fh.seek(have)
        http_get_resuming(download_url, fh, have, headers, size, f.filename, bar)
    got = _file_size(partial)
    if got != size:
        raise HubError(f"{f} arrived with {got} bytes instead of {size}; run the download again to resume")
    if options.local_dir is None:
        digest = _sha256(partial, verify, cancel)
        if digest != etag:
            partial.unlink()  # our own partial file, and its bytes are wrong
            raise HubError(f"{f} was corrupted in transfer (SHA-256 differs from the Hub's); run the download again")
        os.replace(partial, final)
    else:
        if final.exists():
            raise HubError(f"{final} appeared during the download; it was kept, and the download is in {partial}")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
    # The library now finds the bytes (cache: the blob; folder: a file whose hash it checks) and
    # writes its own pointer, refs or metadata.
    hf_hub_download(**_download_kwargs(f, options))
    return True


def download(files: Sequence[RepoFile], options: HubOptions = HubOptions(), progress: Optional[ProgressFn] = None,
             cancel: Optional[threading.Event] = None) -> DownloadResult:
    """Fetch `files` (skipping those already there) and return where everything is.

    Every file is checked with the Hub first, so a gated repository, a refused token or a
    missing file stops the download before any large transfer. With HF_HUB_OFFLINE=1 nothing is
    fetched: the cached files are used and a HubError lists what is missing."""
    from huggingface_hub import hf_hub_download

    _check_library()
    report = progress or (lambda p: None)
    files = list(files)
    if is_offline():
        statuses = local_status(files, options)
        missing = missing_files(statuses)
        if missing:
            have = [s for s in statuses if s.present]
            raise HubError(
                "HF_HUB_OFFLINE=1 is set, so nothing is downloaded; "
                + (f"already there: {', '.join(str(s.file) for s in have)}; " if have else "nothing is there yet; ")
                + f"missing: {', '.join(str(m) for m in missing)} (in the {options.where()}). "
                "Unset HF_HUB_OFFLINE on a machine with network to download them")
        folder = resolve_model_folder(options).folder
        return DownloadResult(statuses, folder, offline=True)

    if files and not _hub_reachable(files[0], options):
        # No network: huggingface_hub would retry each missing file for ~20 s; say it at once.
        statuses = local_status(files, options)
        missing = missing_files(statuses)
        if missing:
            raise HubError(f"cannot reach Hugging Face ({options.site()}): no network, or a proxy or firewall "
                           f"blocks it. Already on disk: {len(files) - len(missing)} of {len(files)} files "
                           f"(in the {options.where()}); missing: {', '.join(str(m) for m in missing)}")
        return DownloadResult(statuses, resolve_model_folder(options).folder, offline=True)

    plans = []
    for i, f in enumerate(files, 1):
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled("download cancelled")
        report(DownloadProgress("checking", f, i, len(files), message=f"checking {f} on Hugging Face"))
        try:
            plans.append(_plan_file(f, options))
        except HubError:
            raise
        except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one message
            error = _translate(exc, f, options)
            if _is_unreachable(exc):
                statuses = local_status(files, options)
                missing = missing_files(statuses)
                error = HubError(f"{error}. Already on disk: {len(files) - len(missing)} of {len(files)} files"
                                 + (f"; missing: {', '.join(str(m) for m in missing)}" if missing else ""))
            raise error from None

    to_fetch = [p for p in plans if p.fetch]
    overall_total = sum(p.size or 0 for p in to_fetch)
    result = DownloadResult([], None, kept=[(p.file, p.keep_reason) for p in plans if p.keep_reason])
    finished = 0
    for i, plan in enumerate(to_fetch, 1):
        f = plan.file

        def on_update(done, total, phase="downloading", _f=f, _i=i, _size=plan.size):
            total = total or _size
            overall = finished + ((_size or 0) if phase == "verifying" else (done or 0))
            report(DownloadProgress(phase, _f, _i, len(to_fetch), done or 0, total, overall, overall_total,
                                    message=f"{phase} {_f.filename}"))

        bar = _bar_class(on_update, cancel)
        try:
            handled = False
            if (plan.size or 0) >= RESUMABLE_MIN_BYTES:
                handled = _resumable_fetch(f, options, bar, lambda d: on_update(d, plan.size, "verifying"), cancel)
            if not handled:
                hf_hub_download(**_download_kwargs(f, options), tqdm_class=bar)
        except HubError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _translate(exc, f, options) from None
        finished += plan.size or 0
        result.downloaded.append(f)
        result.bytes_downloaded += plan.size or 0
    resolution = resolve_model_folder(options)
    result.statuses = [s for s in resolution.statuses if s.file in files] or resolution.statuses
    result.folder = resolution.folder
    report(DownloadProgress("done", None, len(to_fetch), len(to_fetch), overall_done=overall_total,
                            overall_total=overall_total, message="done"))
    return result


# ------------------------------------------------------------------------------ the CLI ---
def print_download_summary(result: "DownloadResult", out) -> None:
    """What the download kept of the user's, and each file's state: the lines both CLI downloads end with."""
    for fr, why in result.kept:
        print(f"kept {fr.filename}: {why}", file=out)
    for st in result.statuses:
        print(f"{'ok     ' if st.present else 'MISSING'} {st.file}  {format_size(st.size):>9}  {st.path or ''}",
              file=out)


def cli_download(model: bool = True, backbone: bool = True, dest: Optional[Path] = None,
                 token: Optional[str] = None, out=None) -> Path | None:
    """`sam3dbody-gui download`: a progress bar per file on stderr, a summary on stdout."""
    import sys

    from huggingface_hub.utils import logging as hf_logging
    from tqdm.std import tqdm as std_tqdm

    out = out or sys.stdout
    hf_logging.set_verbosity_error()  # our messages say it; no library warnings in between
    options = HubOptions(local_dir=Path(dest).expanduser().resolve() if dest else None, token=token)
    files = select_files(model, backbone)
    print(f"{len(files)} files from Hugging Face; destination: the {options.where()}", file=out, flush=True)
    bars: dict[RepoFile, std_tqdm] = {}

    def show(p: DownloadProgress) -> None:
        if p.phase in ("downloading", "verifying") and p.file is not None:
            bar = bars.get(p.file)
            if bar is None:
                for other in bars.values():
                    other.close()  # one bar at a time: the previous file is finished
                bar = std_tqdm(total=p.total, unit="B", unit_scale=True, unit_divisor=1024, leave=True,
                               desc=f"[{p.index}/{p.count}] {p.file.filename}", file=sys.stderr, dynamic_ncols=True)
                bars[p.file] = bar
            if p.phase == "verifying" and not bar.desc.endswith("(checking)"):
                bar.set_description(bar.desc + " (checking)")
                bar.reset(total=p.total)
            bar.update(max(0, p.done - bar.n))

    try:
        result = download(files, options, show)
    finally:
        for bar in bars.values():
            bar.close()
    print_download_summary(result, out)
    if result.offline:
        print("offline (HF_HUB_OFFLINE=1): every file was already there", file=out)
    if result.folder is not None:
        print(f"model folder: {result.folder}", file=out)
        print(f"  sam3dbody-gui infer PHOTO --model {result.folder} --out mesh.obj   (the window finds it by itself"
              + (")" if options.local_dir is None else " when chosen: Model ▸ Models…)"), file=out)
    elif model:
        raise HubError("the model files are still incomplete: " + ", ".join(str(m) for m in missing_files(
            result.statuses) if m.kind == "model"))
    return result.folder
