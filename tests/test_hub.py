"""Getting the model from Hugging Face, with the real huggingface_hub client and no internet.

A small Hub stand-in (tests/fake_hub.py) serves the two repositories on 127.0.0.1 and answers
like the Hub: 401/403 GatedRepo, 401 for an unknown token, 404 RepoNotFound / EntryNotFound.
The cache is filled by huggingface_hub itself (downloads from that server), then read back with
the server stopped and HF_HUB_OFFLINE on. In-process tests pass the server's address as the
`endpoint` argument and switch huggingface_hub's runtime constants (it reads HF_HUB_OFFLINE,
the telemetry switch and the token path from `huggingface_hub.constants` at call time); the
command-line tests run `sam3dbody-gui download` in a subprocess with HF_ENDPOINT,
HF_HUB_OFFLINE and HF_HOME in its environment, because the library reads those at import.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fake_hub import FakeHub, isolate_huggingface_hub, repos_from_model
from huggingface_hub import constants, scan_cache_dir

from sam3dbody_gui import hub
from sam3dbody_gui.model.model_folder import find_model_files
from sam3dbody_gui.model.verify import verify_model_folder

GRANTED, NOT_ACCEPTED, UNKNOWN = "hf_granted", "hf_not_accepted", "hf_unknown"


@pytest.fixture(scope="session")
def repo_contents(tiny_model_dir) -> dict[str, dict[str, bytes]]:
    """The two repositories, filled from the tiny synthetic model (real file formats)."""
    return repos_from_model(tiny_model_dir)


@pytest.fixture(autouse=True)
def isolated_hf(monkeypatch, tmp_path):
    isolate_huggingface_hub(monkeypatch, tmp_path)


@pytest.fixture
def server(repo_contents):
    fh = FakeHub(repo_contents, gated={hub.MODEL_REPO}).start()
    yield fh
    fh.stop()


def options(tmp_path: Path, server: FakeHub | None, token: str | None = GRANTED, **kw) -> hub.HubOptions:
    return hub.HubOptions(cache_dir=tmp_path / "hub", endpoint=server.url if server else _dead_endpoint(),
                          token=token, link_dir=tmp_path / "links", **kw)


def _dead_endpoint() -> str:
    """An address on 127.0.0.1 where nothing listens: 'no network' without leaving the machine."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- the messages ---
def test_gated_without_token_says_what_to_do(tmp_path, server):
    with pytest.raises(hub.HubError) as err:
        hub.download(hub.ALL_FILES, options(tmp_path, server, token=None))
    text = str(err.value)
    assert "gated" in text and "401" in text
    assert hub.MODEL_PAGE in text and "SAM License" in text and "hf auth login" in text and "token" in text
    assert not [e for e in server.log if e.method == "GET"], "nothing may be transferred"
    assert hub.token_source(options(tmp_path, server, token=None)) is None


def test_gated_licence_not_accepted_403(tmp_path, server):
    with pytest.raises(hub.HubError) as err:
        hub.download(hub.MODEL_FILES, options(tmp_path, server, token=NOT_ACCEPTED))
    text = str(err.value)
    assert "403" in text and "accept the SAM License" in text and hub.MODEL_PAGE in text
    assert server.log[-1].status == 403 and server.log[-1].auth == f"Bearer {NOT_ACCEPTED}"


def test_unknown_token_401(tmp_path, server):
    with pytest.raises(hub.HubError) as err:
        hub.download(hub.MODEL_FILES, options(tmp_path, server, token=UNKNOWN))
    text = str(err.value)
    assert "refused the token" in text and "401" in text and hub.TOKENS_PAGE in text and "hf auth login" in text


def test_repository_not_found_404(tmp_path, repo_contents):
    fh = FakeHub({hub.MODEL_REPO: repo_contents[hub.MODEL_REPO]}).start()  # no embedl repository
    try:
        with pytest.raises(hub.HubError) as err:
            hub.download(hub.BACKBONE_FILES, options(tmp_path, fh, token=GRANTED))
    finally:
        fh.stop()
    assert "repository embedl/sam-3d-body not found" in str(err.value) and "404" in str(err.value)


def test_file_not_found_404(tmp_path, repo_contents):
    contents = {hub.BACKBONE_REPO: dict(repo_contents[hub.BACKBONE_REPO])}
    del contents[hub.BACKBONE_REPO]["embedl_sam3dbody_int8.pt2"]
    fh = FakeHub(contents).start()
    try:
        with pytest.raises(hub.HubError) as err:
            hub.download(hub.BACKBONE_FILES, options(tmp_path, fh, token=None))
    finally:
        fh.stop()
    assert "embedl_sam3dbody_int8.pt2 is not in embedl/sam-3d-body (404)" in str(err.value)
    assert not [e for e in fh.log if e.method == "GET"], "the check comes before any transfer"


def test_no_network_lists_what_is_missing(tmp_path):
    with pytest.raises(hub.HubError) as err:
        hub.download(hub.MODEL_FILES, options(tmp_path, None))
    text = str(err.value)
    assert "cannot reach Hugging Face" in text and "0 of 3 files" in text and "model.ckpt" in text


class _FailingHub(FakeHub):
    """A Hub that answers every request with one HTTP error status (a server in trouble)."""

    status = 500

    def _serve(self, h, head, auth, rng, entry):
        return self._error(h, self.status, None, "Internal Error - We're working hard to fix this as soon as possible!")


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_not_reported_as_no_network(tmp_path, repo_contents, monkeypatch, status):
    monkeypatch.setattr(_FailingHub, "status", status)
    fh = _FailingHub(repo_contents).start()
    try:
        with pytest.raises(hub.HubError) as err:
            hub.download(hub.MODEL_FILES, options(tmp_path, fh, token=GRANTED))
    finally:
        fh.stop()
    text = str(err.value)
    assert f"answered {status}" in text and "server" in text and "try again later" in text, text
    assert "firewall" not in text and "no network" not in text and "cannot reach" not in text, text
    assert fh.log, "the server was asked"


def test_server_error_behind_a_missing_local_entry_names_the_server(tmp_path):
    """huggingface_hub reports a 5xx (after its retries) as a LocalEntryNotFoundError raised from the
    HTTP error; the message must name that answer, and it is not "unreachable"."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    request = httpx2.Request("HEAD", "https://huggingface.co/x/resolve/main/model.ckpt")
    try:
        try:
            raise HfHubHTTPError("502 Bad Gateway", response=httpx2.Response(502, request=request))
        except HfHubHTTPError as http_error:
            raise LocalEntryNotFoundError("... check your connection ...") from http_error
    except LocalEntryNotFoundError as exc:
        wrapped = exc
    text = hub.explain_error(wrapped, hub.MODEL_REPO, "model.ckpt", options(tmp_path, None))
    assert "answered 502" in text and "firewall" not in text and "no network" not in text, text
    assert not hub._is_unreachable(wrapped)
    assert hub._is_unreachable(LocalEntryNotFoundError("no connection at all"))


# ---------------------------------------------------------- the cache, online and offline ---
def test_download_fills_the_cache_in_huggingface_hub_layout(tmp_path, server, repo_contents):
    seen = []
    result = hub.download(hub.ALL_FILES, options(tmp_path, server), progress=seen.append)
    cache = tmp_path / "hub"
    for repo, files in repo_contents.items():
        repo_dir = cache / ("models--" + repo.replace("/", "--"))
        commit = (repo_dir / "refs" / "main").read_text()
        assert commit == server.commits[repo]
        for name, data in files.items():
            pointer = repo_dir / "snapshots" / commit / name
            assert pointer.is_symlink() and pointer.read_bytes() == data
            assert Path(os.path.realpath(pointer)).parent == (repo_dir / "blobs").resolve()
    info = scan_cache_dir(cache)  # huggingface_hub's own reading of the cache
    assert {r.repo_id for r in info.repos} == {hub.MODEL_REPO, hub.BACKBONE_REPO}
    assert not info.warnings and not info.incomplete_files
    assert sum(r.nb_files for r in info.repos) == len(hub.ALL_FILES)

    # The app's folder: links to the cached files in the layout the loader and runtime expect.
    folder = result.folder
    assert folder == tmp_path / "links" and all(s.present for s in result.statuses)
    files = find_model_files(folder)
    assert files.checkpoint.read_bytes() == repo_contents[hub.MODEL_REPO]["model.ckpt"]
    assert (folder / "embedl_sam3dbody_int8.onnx.data").is_file()
    report = verify_model_folder(folder)
    assert report.ok, report.text()
    assert [c.level for c in report.checks if c.name.startswith("backbone")] == ["ok", "ok"]

    # Progress: every file checked, then bytes reported up to the total.
    assert {p.file for p in seen if p.phase == "checking"} == set(hub.ALL_FILES)
    last = [p for p in seen if p.phase == "downloading"][-1]
    assert last.overall_done == last.overall_total == sum(len(d) for f in repo_contents.values() for d in f.values())
    assert seen[-1].phase == "done"

    # A second run transfers nothing.
    gets = len([e for e in server.log if e.method == "GET"])
    again = hub.download(hub.ALL_FILES, options(tmp_path, server))
    assert not again.downloaded and len([e for e in server.log if e.method == "GET"]) == gets


def test_offline_resolves_a_populated_cache_without_network(tmp_path, server, monkeypatch):
    hub.download(hub.ALL_FILES, options(tmp_path, server))
    requests = len(server.log)
    server.stop()  # no Hub any more
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.is_offline()

    opts = options(tmp_path, server)
    res = hub.resolve_model_folder(opts)
    assert res.complete and not res.missing_model_files
    assert find_model_files(res.folder).folder == tmp_path / "links"
    result = hub.download(hub.ALL_FILES, opts)
    assert result.offline and result.folder == res.folder and not result.downloaded
    # huggingface_hub itself answers from the cache in offline mode.
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(hub.MODEL_REPO, "model.ckpt", cache_dir=str(tmp_path / "hub"))
    assert Path(path).read_bytes() == find_model_files(res.folder).checkpoint.read_bytes()
    assert len(server.log) == requests


def test_offline_says_what_is_missing(tmp_path, server, monkeypatch):
    hub.download(hub.MODEL_FILES, options(tmp_path, server))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hub.HubError) as err:
        hub.download(hub.ALL_FILES, options(tmp_path, server))
    text = str(err.value)
    assert "HF_HUB_OFFLINE=1" in text and "missing: embedl/sam-3d-body/embedl_sam3dbody_int8.onnx" in text
    assert "already there: facebook/sam-3d-body-dinov3/model.ckpt" in text
    # The model itself is complete: the app can use it, without the optional exports.
    res = hub.resolve_model_folder(options(tmp_path, server))
    assert res.complete and not (res.folder / "embedl_sam3dbody_int8.onnx").exists()


def test_cached_files_are_used_when_the_hub_is_unreachable(tmp_path, server):
    hub.download(hub.MODEL_FILES, options(tmp_path, server))
    server.stop()
    result = hub.download(hub.MODEL_FILES, options(tmp_path, server))  # the server is gone: connection refused
    assert result.folder is not None and not result.downloaded


# ------------------------------------------------------------------------------ resuming ---
def test_cancelled_download_resumes_where_it_stopped(tmp_path, server, monkeypatch, repo_contents):
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256 * 1024)
    data = repo_contents[hub.MODEL_REPO]["model.ckpt"]
    cancel = threading.Event()

    def progress(p):
        if p.file is not None and p.file.filename == "model.ckpt" and p.done >= 2_000_000:
            cancel.set()

    with pytest.raises(hub.DownloadCancelled):
        hub.download(hub.MODEL_FILES, options(tmp_path, server), progress, cancel)
    sha = hashlib.sha256(data).hexdigest()
    blobs = tmp_path / "hub" / "models--facebook--sam-3d-body-dinov3" / "blobs"
    partial = blobs / f"{sha}.incomplete"
    kept = partial.stat().st_size
    assert 2_000_000 <= kept < len(data)
    assert not (blobs / sha).exists()
    assert hub.cached_partials(options(tmp_path, server), hub.MODEL_REPO) == kept
    assert scan_cache_dir(tmp_path / "hub").incomplete_size_on_disk == kept  # as `hf cache scan` reports it

    result = hub.download(hub.MODEL_FILES, options(tmp_path, server))
    resumed = server.gets("model.ckpt")[-1]
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert resumed.bytes_sent == len(data) - kept
    assert _sha256(blobs / sha) == sha and not partial.exists()
    assert result.folder is not None and verify_model_folder(result.folder).ok


def test_a_dropped_connection_is_resumed_within_the_call(tmp_path, server, monkeypatch, repo_contents):
    """huggingface_hub's http_get retries a broken transfer with a Range request (after 1 s)."""
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256 * 1024)  # bytes reach the file per 256 KiB
    server.cut_once["assets/mhr_model.pt"] = 1_048_576
    result = hub.download(hub.MODEL_FILES, options(tmp_path, server))
    gets = server.gets("mhr_model.pt")
    assert [g.range for g in gets] == [None, "bytes=1048576-"]
    assert gets[0].bytes_sent == 1_048_576 and gets[1].status == 206
    assert (result.folder / "assets" / "mhr_model.pt").read_bytes() == repo_contents[hub.MODEL_REPO]["assets/mhr_model.pt"]


# ------------------------------------------------------------- a folder; never deleting ---
def test_download_into_a_folder_keeps_the_users_files(tmp_path, server, monkeypatch, repo_contents):
    monkeypatch.setattr(hub, "RESUMABLE_MIN_BYTES", 1_000_000)
    dest = tmp_path / "my-model"
    (dest / "assets").mkdir(parents=True)
    mine = b"# my own edited config\n"
    (dest / "model_config.yaml").write_bytes(mine)
    opts = hub.HubOptions(local_dir=dest, endpoint=server.url, token=GRANTED)
    result = hub.download(hub.MODEL_FILES, opts)
    assert (dest / "model_config.yaml").read_bytes() == mine, "a user's file is never replaced"
    assert [f.filename for f, _ in result.kept] == ["model_config.yaml"]
    assert (dest / "model.ckpt").read_bytes() == repo_contents[hub.MODEL_REPO]["model.ckpt"]
    assert (dest / ".cache" / "huggingface" / "download" / "model.ckpt.metadata").is_file()
    assert result.folder == dest
    report = verify_model_folder(dest)
    assert not report.ok and "config" in report.first_error()


def test_link_folder_never_replaces_a_regular_file(tmp_path, server):
    links = tmp_path / "links"
    links.mkdir()
    (links / "model.ckpt").write_bytes(b"mine")
    with pytest.raises(hub.HubError, match="left as is"):
        hub.download(hub.MODEL_FILES, options(tmp_path, server))
    assert (links / "model.ckpt").read_bytes() == b"mine"


# -------------------------------------------------------------------- the command line ---
def _cli(tmp_path: Path, *args, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    base.update(HF_HOME=str(tmp_path / "hf-home"), XDG_DATA_HOME=str(tmp_path / "data"),
                HF_HUB_DISABLE_TELEMETRY="1", **env)
    return subprocess.run([sys.executable, "-m", "sam3dbody_gui.cli", "download", *map(str, args)],
                          env=base, capture_output=True, text=True, timeout=120)


def test_cli_download_without_token_says_what_to_do(tmp_path, server):
    r = _cli(tmp_path, HF_ENDPOINT=server.url)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert hub.MODEL_PAGE in lines[0] and "SAM License" in lines[0] and "hf auth login" in lines[0]
    assert "Traceback" not in r.stderr


def test_cli_download_then_offline(tmp_path, server):
    r = _cli(tmp_path, "--model-only", "--token", GRANTED, HF_ENDPOINT=server.url)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "data" / "sam3dbody-gui" / "models" / "sam-3d-body-dinov3"
    assert f"model folder: {folder}" in r.stdout and "model.ckpt" in r.stderr  # the progress bar
    server.stop()
    r = _cli(tmp_path, "--model-only", HF_ENDPOINT=server.url, HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr
    assert "offline (HF_HUB_OFFLINE=1)" in r.stdout and f"model folder: {folder}" in r.stdout
    r = _cli(tmp_path, HF_ENDPOINT=server.url, HF_HUB_OFFLINE="1")  # the backbone exports were never fetched
    assert r.returncode == 2 and "missing: embedl/sam-3d-body/embedl_sam3dbody_int8.onnx" in r.stderr


# ------------------------------------------------------------------------ verification ---
def test_verify_reports_instead_of_raising(tmp_path, tiny_model_dir):
    import shutil

    good = verify_model_folder(tiny_model_dir)
    assert good.ok and any(c.name == "weights" and c.level == "warning" for c in good.checks)

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    data = (bad / "model.ckpt").read_bytes()
    (bad / "model.ckpt").write_bytes(data[: len(data) // 2])
    report = verify_model_folder(bad)
    assert not report.ok and report.first_error().startswith("checkpoint:") and "model.ckpt" in report.text()

    (bad / "model.ckpt").write_bytes(data)
    cfg = (bad / "model_config.yaml").read_text()
    (bad / "model_config.yaml").write_text(cfg.replace("DEPTH: 6", "DEPTH: 7", 1) if "DEPTH: 6" in cfg else cfg + "\n:")
    report = verify_model_folder(bad)
    assert not report.ok, report.text()

    (bad / "assets" / "mhr_model.pt").unlink()
    report = verify_model_folder(bad)
    assert report.first_error().startswith("files:") and "assets/mhr_model.pt" in report.first_error()
