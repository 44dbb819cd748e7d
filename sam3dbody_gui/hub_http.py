"""The one non-public huggingface_hub call the downloader makes, in one place.

huggingface_hub's public `hf_hub_download` (2.x) writes into a process-unique temporary file and
deletes it when a download fails or is interrupted, so it cannot continue a 3.4 GB download
after the app was closed. Its `file_download.http_get` can (`resume_size=`, an HTTP Range
request). It is not public API, so it is called only here, and a test checks its signature
against the installed version (the range pyproject.toml allows)."""

from __future__ import annotations

import inspect
from typing import BinaryIO

# The keyword arguments we pass; a huggingface_hub that drops or renames one fails the contract.
HTTP_GET_KEYWORDS = ("resume_size", "headers", "expected_size", "displayed_filename", "tqdm_class")


def http_get_problem() -> str | None:
    """Why the installed huggingface_hub's http_get cannot resume for us, or None."""
    try:
        from huggingface_hub.file_download import http_get
    except ImportError as exc:
        return f"huggingface_hub has no file_download.http_get ({exc})"
    params = inspect.signature(http_get).parameters
    missing = [k for k in HTTP_GET_KEYWORDS if k not in params]
    if missing:
        return f"huggingface_hub's http_get lacks {', '.join(missing)}"
    return None


def http_get_resuming(url: str, fh: BinaryIO, resume_size: int, headers: dict, expected_size: int,
                      filename: str, tqdm_class) -> None:
    """Append the bytes of `url` from `resume_size` on to `fh` (positioned there)."""
    from huggingface_hub.file_download import http_get

    http_get(url, fh, resume_size=resume_size, headers=headers, expected_size=expected_size,
             displayed_filename=filename, tqdm_class=tqdm_class)
