"""The two Hugging Face repositories the app's files come from, those files, and how the Hub is
reached (cache, folder, token, endpoint): what the rest of `hub*` builds on. hub.py says how
the whole download side fits together."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import UserError

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

