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

The parts: hub_repos.py (the repositories, their files, reaching the Hub), hub_local.py (what is
on disk, the folder of links), hub_errors.py (the messages), hub_http.py (the one non-public
call); this file downloads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence
from urllib.parse import urlparse

# The public names stay hub.* (hub_repos, hub_local and hub_errors hold their parts).
from .hub_errors import _is_unreachable, _status, _translate, explain_error  # noqa: F401
from .hub_local import (  # noqa: F401
    FileStatus, Resolution, _cache_repo_dir, _file_size, _local_partial, cached_partials, find_installed_model,
    local_status, missing_files, resolve_model_folder,
)
from .hub_repos import (  # noqa: F401
    _SHA256, ALL_FILES, BACKBONE_FILES, BACKBONE_PAGE, BACKBONE_REPO, HF_SITE, MODEL_FILES, MODEL_PAGE, MODEL_REPO,
    RESUMABLE_MIN_BYTES, TOKENS_PAGE, DownloadCancelled, HubError, HubOptions, RepoFile, _token_arg, is_offline,
    select_files, token_source,
)
from .units import format_size  # noqa: F401 - also hub.format_size for the dialogs

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
