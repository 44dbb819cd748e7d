"""Hugging Face's errors → one message that says what happened and what to do."""

from __future__ import annotations

from typing import Optional

from .errors import first_line
from .hub_repos import HF_SITE, TOKENS_PAGE, HubError, HubOptions, RepoFile, is_offline, token_source


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

