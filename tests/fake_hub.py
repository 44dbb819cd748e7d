"""A small stand-in for the Hugging Face Hub's file endpoints, served on 127.0.0.1.

It answers what huggingface_hub asks when it downloads a file, the way the Hub does:

    HEAD/GET /{repo}/resolve/{revision}/{path}
        200 (206 for a Range request) with X-Repo-Commit, ETag (a SHA-256 and X-Linked-Size for
        "LFS" files, a SHA-1 for small ones), Content-Length, Accept-Ranges
        401 X-Error-Code: GatedRepo      gated repository, no token sent
        403 X-Error-Code: GatedRepo      gated repository, the token's account has not accepted
        401 X-Error-Message: Invalid credentials in Authorization header   unknown token
        401/404 X-Error-Code: RepoNotFound   (401 without a token, as the Hub)
        404 X-Error-Code: EntryNotFound  (with X-Repo-Commit)
    anything else: 404

Test knobs: `cut_once` (send only N bytes of a file's first GET, then drop the connection),
`chunk_delay` (seconds between 64 KiB chunks), and a log of every request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LFS_MIN = 1024  # files at least this big are served as LFS files (SHA-256 ETag)


@dataclass
class Logged:
    method: str
    path: str
    auth: str | None
    range: str | None
    status: int
    bytes_sent: int = 0


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]]
    gated: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=lambda: {"hf_granted", "hf_not_accepted"})
    granted: set[str] = field(default_factory=lambda: {"hf_granted"})  # tokens whose account accepted
    cut_once: dict[str, int] = field(default_factory=dict)  # filename -> bytes sent before dropping
    chunk_delay: float = 0.0
    log: list[Logged] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in self.repos}
        self._lock = threading.Lock()

    # -- server --------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._answer(self, head=True)

            def do_GET(self):
                hub._answer(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets(self, filename: str) -> list[Logged]:
        return [e for e in self.log if e.method == "GET" and e.path.endswith("/" + filename)]

    # -- answers -------------------------------------------------------------------------
    def _error(self, h, status: int, code: str | None, message: str, commit: str | None = None) -> int:
        h.send_response(status)
        if code:
            h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        if commit:
            h.send_header("X-Repo-Commit", commit)
        body = message.encode()
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        return status

    def _answer(self, h, head: bool) -> None:
        auth = h.headers.get("Authorization")
        rng = h.headers.get("Range")
        entry = Logged(h.command, h.path, auth, rng, 0)
        try:
            entry.status = self._serve(h, head, auth, rng, entry)
        finally:
            with self._lock:
                self.log.append(entry)

    def _serve(self, h, head: bool, auth: str | None, rng: str | None, entry: Logged) -> int:
        path = unquote(h.path.split("?", 1)[0])
        if "/resolve/" not in path:
            return self._error(h, 404, None, "Not Found")
        repo, rest = path.lstrip("/").split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        token = auth.split(" ", 1)[1] if auth and " " in auth else None
        if token is not None and token not in self.tokens:
            return self._error(h, 401, None, "Invalid credentials in Authorization header")
        if repo not in self.repos:
            return self._error(h, 401 if token is None else 404, "RepoNotFound", "Repository not found")
        if repo in self.gated:
            if token is None:
                return self._error(h, 401, "GatedRepo", f"Access to model {repo} is restricted. You must have "
                                   "access to it and be authenticated to access it. Please log in.")
            if token not in self.granted:
                return self._error(h, 403, "GatedRepo", f"Access to model {repo} is restricted and you are not "
                                   "in the authorized list. Visit https://huggingface.co/{repo} to ask for access.")
        commit = self.commits[repo]
        if revision not in ("main", commit):
            return self._error(h, 404, "RevisionNotFound", "Invalid rev id")
        data = self.repos[repo].get(filename)
        if data is None:
            return self._error(h, 404, "EntryNotFound", "Entry not found", commit)

        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
        status = 206 if start else 200
        h.send_response(status)
        h.send_header("X-Repo-Commit", commit)
        if len(data) >= LFS_MIN:
            sha = hashlib.sha256(data).hexdigest()
            h.send_header("ETag", f'"{sha}"')
            h.send_header("X-Linked-Etag", f'"{sha}"')
            h.send_header("X-Linked-Size", str(len(data)))
        else:
            h.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return status
        body = data[start:]
        limit = None
        with self._lock:
            if filename in self.cut_once:
                limit = self.cut_once.pop(filename)
        sent = 0
        step = 64 * 1024
        while sent < len(body):
            if limit is not None and sent >= limit:
                h.close_connection = True
                try:
                    h.connection.shutdown(2)  # drop it mid-body, as a broken network would
                except OSError:
                    pass
                entry.bytes_sent = sent
                return status
            chunk = body[sent:sent + (step if limit is None else min(step, limit - sent))]
            try:
                h.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                entry.bytes_sent = sent
                return status
            sent += len(chunk)
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
        entry.bytes_sent = sent
        return status


def repos_from_model(folder) -> dict[str, dict[str, bytes]]:
    """The two repositories' files, filled from a synthetic model folder (real file formats)."""
    from pathlib import Path

    t = Path(folder)
    return {
        "facebook/sam-3d-body-dinov3": {
            "model.ckpt": (t / "model.ckpt").read_bytes(),
            "model_config.yaml": (t / "model_config.yaml").read_bytes(),
            "assets/mhr_model.pt": (t / "assets" / "mhr_model.pt").read_bytes()},
        "embedl/sam-3d-body": {
            "embedl_sam3dbody_int8.onnx": (t / "exports" / "backbone.onnx").read_bytes(),
            "embedl_sam3dbody_int8.onnx.data": (t / "exports" / "backbone.onnx.data").read_bytes(),
            "embedl_sam3dbody_int8.pt2": (t / "exports" / "backbone.pt2").read_bytes(),
            "sample_input.png": b"\x89PNG\r\n\x1a\n not really a photo"},
    }


def isolate_huggingface_hub(monkeypatch, tmp_path) -> None:
    """No saved token, no HF_TOKEN, no telemetry request, online; nothing outside tmp_path."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
