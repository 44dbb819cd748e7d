"""The model configuration, read from upstream's `model_config.yaml`.

Upstream reads the file with OmegaConf + yacs and looks keys up all over its code. We read the
same file with PyYAML into one frozen dataclass, so every value the model depends on is named
in one place and a wrong or missing value is reported before any tensor is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelFolderError


@dataclass(frozen=True)
class DecoderConfig:
    dim: int = 1024
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    repeat_pe: bool = True
    enable_twoway: bool = False
    condition_type: str = "cliff"
    use_intrin_center: bool = True
    do_interm_preds: bool = True
    do_keypoint_tokens: bool = True
    do_keypoint3d_tokens: bool = True
    do_hand_detect_tokens: bool = True
    keypoint_token_update: str = "v2"
    layer_scale_init: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    image_size: tuple[int, int] = (512, 512)
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    backbone_type: str = "dinov3_vith16plus"
    # Upstream runs the backbone in this dtype (TRAIN.USE_FP16 / FP16_TYPE); the rest in fp32.
    backbone_half: bool = True
    backbone_half_type: str = "float16"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    max_num_clicks: int = 2
    prompt_keypoints: str = "mhr70"
    mask_embed_type: str | None = "v2"
    mhr_head_mlp_depth: int = 2
    mhr_head_channel_div: int = 1
    camera_head_mlp_depth: int = 2
    camera_head_channel_div: int = 1
    default_scale_factor_hand: float = 10.0

    @property
    def crop_size(self) -> int:
        return int(self.image_size[0])

    def to_yaml_dict(self) -> dict[str, Any]:
        """The upstream-style nested dict (what `model_config.yaml` holds)."""
        d = self.decoder
        return {
            "MODEL": {
                "IMAGE_SIZE": list(self.image_size),
                "IMAGE_MEAN": list(self.image_mean),
                "IMAGE_STD": list(self.image_std),
                "BACKBONE": {"TYPE": self.backbone_type, "DROP_PATH_RATE": 0.0},
                "DECODER": {
                    "TYPE": "sam",
                    "DIM": d.dim,
                    "DEPTH": d.depth,
                    "HEADS": d.heads,
                    "DIM_HEAD": d.dim_head,
                    "MLP_DIM": d.mlp_dim,
                    "LAYER_SCALE_INIT": d.layer_scale_init,
                    "DROP_RATE": 0.0,
                    "ATTN_DROP_RATE": 0.0,
                    "DROP_PATH_RATE": 0.0,
                    "FFN_TYPE": "origin",
                    "REPEAT_PE": d.repeat_pe,
                    "ENABLE_TWOWAY": d.enable_twoway,
                    "CONDITION_TYPE": d.condition_type,
                    "USE_INTRIN_CENTER": d.use_intrin_center,
                    "DO_INTERM_PREDS": d.do_interm_preds,
                    "DO_KEYPOINT_TOKENS": d.do_keypoint_tokens,
                    "DO_KEYPOINT3D_TOKENS": d.do_keypoint3d_tokens,
                    "DO_HAND_DETECT_TOKENS": d.do_hand_detect_tokens,
                    "KEYPOINT_TOKEN_UPDATE": d.keypoint_token_update,
                    "FROZEN": False,
                },
                "PROMPT_ENCODER": {
                    "ENABLE": True,
                    "MAX_NUM_CLICKS": self.max_num_clicks,
                    "PROMPT_KEYPOINTS": self.prompt_keypoints,
                    "MASK_EMBED_TYPE": self.mask_embed_type,
                },
                "PERSON_HEAD": {"POSE_TYPE": "mhr", "CAMERA_TYPE": "perspective"},
                "MHR_HEAD": {
                    "MLP_DEPTH": self.mhr_head_mlp_depth,
                    "MLP_CHANNEL_DIV_FACTOR": self.mhr_head_channel_div,
                    "MHR_MODEL_PATH": "",
                },
                "CAMERA_HEAD": {
                    "MLP_DEPTH": self.camera_head_mlp_depth,
                    "MLP_CHANNEL_DIV_FACTOR": self.camera_head_channel_div,
                    "DEFAULT_SCALE_FACTOR_HAND": self.default_scale_factor_hand,
                },
                "ENABLE_BODY": True,
                "ENABLE_HAND": True,
            },
            "TRAIN": {"USE_FP16": self.backbone_half, "FP16_TYPE": self.backbone_half_type},
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(tree: dict, *path: str) -> dict:
    node: Any = tree
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def parse_model_config(tree: dict[str, Any]) -> ModelConfig:
    """Build a ModelConfig from upstream's nested dict; absent keys take upstream's defaults."""
    model = _section(tree, "MODEL")
    if not model:
        raise ModelFolderError("model_config.yaml has no MODEL section: not a SAM 3D Body config.")
    dec = _section(tree, "MODEL", "DECODER")
    prompt = _section(tree, "MODEL", "PROMPT_ENCODER")
    mhr = _section(tree, "MODEL", "MHR_HEAD")
    cam = _section(tree, "MODEL", "CAMERA_HEAD")
    train = _section(tree, "TRAIN")
    base = DecoderConfig()
    try:
        decoder = DecoderConfig(
            dim=int(dec.get("DIM", base.dim)),
            depth=int(dec.get("DEPTH", base.depth)),
            heads=int(dec.get("HEADS", base.heads)),
            dim_head=int(dec.get("DIM_HEAD", base.dim_head)),
            mlp_dim=int(dec.get("MLP_DIM", base.mlp_dim)),
            repeat_pe=bool(dec.get("REPEAT_PE", base.repeat_pe)),
            enable_twoway=bool(dec.get("ENABLE_TWOWAY", base.enable_twoway)),
            condition_type=str(dec.get("CONDITION_TYPE", base.condition_type)),
            use_intrin_center=bool(dec.get("USE_INTRIN_CENTER", False)),
            do_interm_preds=bool(dec.get("DO_INTERM_PREDS", False)),
            do_keypoint_tokens=bool(dec.get("DO_KEYPOINT_TOKENS", False)),
            do_keypoint3d_tokens=bool(dec.get("DO_KEYPOINT3D_TOKENS", False)),
            do_hand_detect_tokens=bool(dec.get("DO_HAND_DETECT_TOKENS", False)),
            keypoint_token_update=str(dec.get("KEYPOINT_TOKEN_UPDATE", "") or ""),
            layer_scale_init=float(dec.get("LAYER_SCALE_INIT", 0.0) or 0.0),
        )
        size = model.get("IMAGE_SIZE", [512, 512])
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
        cfg = ModelConfig(
            image_size=size,
            image_mean=tuple(float(v) for v in model.get("IMAGE_MEAN", ModelConfig.image_mean)),
            image_std=tuple(float(v) for v in model.get("IMAGE_STD", ModelConfig.image_std)),
            backbone_type=str(_section(tree, "MODEL", "BACKBONE").get("TYPE", "")),
            backbone_half=bool(train.get("USE_FP16", False)),
            backbone_half_type=str(train.get("FP16_TYPE", "float16")),
            decoder=decoder,
            max_num_clicks=int(prompt.get("MAX_NUM_CLICKS", 2)),
            prompt_keypoints=str(prompt.get("PROMPT_KEYPOINTS", "mhr70")),
            mask_embed_type=prompt.get("MASK_EMBED_TYPE", None),
            mhr_head_mlp_depth=int(mhr.get("MLP_DEPTH", 1)),
            mhr_head_channel_div=int(mhr.get("MLP_CHANNEL_DIV_FACTOR", 1)),
            camera_head_mlp_depth=int(cam.get("MLP_DEPTH", 1)),
            camera_head_channel_div=int(cam.get("MLP_CHANNEL_DIV_FACTOR", 1)),
            default_scale_factor_hand=float(cam.get("DEFAULT_SCALE_FACTOR_HAND", 1.0)),
        )
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(f"model_config.yaml has a value of the wrong type: {exc}") from None
    _check_supported(cfg)
    return cfg


def _check_supported(cfg: ModelConfig) -> None:
    """Reject configurations that this implementation (body path of the released model) lacks."""
    d = cfg.decoder
    problems = []
    if d.enable_twoway:
        problems.append("DECODER.ENABLE_TWOWAY true")
    if d.condition_type != "cliff":
        problems.append(f"DECODER.CONDITION_TYPE {d.condition_type!r} (only 'cliff')")
    if not (d.do_interm_preds and d.do_keypoint_tokens and d.do_keypoint3d_tokens and d.do_hand_detect_tokens):
        problems.append("DECODER.DO_INTERM_PREDS/DO_KEYPOINT_TOKENS/DO_KEYPOINT3D_TOKENS/DO_HAND_DETECT_TOKENS must be true")
    if d.keypoint_token_update != "v2":
        problems.append(f"DECODER.KEYPOINT_TOKEN_UPDATE {d.keypoint_token_update!r} (only 'v2')")
    if cfg.prompt_keypoints != "mhr70":
        problems.append(f"PROMPT_ENCODER.PROMPT_KEYPOINTS {cfg.prompt_keypoints!r} (only 'mhr70')")
    if cfg.mask_embed_type not in ("v2", None):
        problems.append(f"PROMPT_ENCODER.MASK_EMBED_TYPE {cfg.mask_embed_type!r} (only 'v2')")
    if cfg.image_size[0] != cfg.image_size[1] or cfg.image_size[0] % 16:
        problems.append(f"IMAGE_SIZE {list(cfg.image_size)} (square, multiple of 16)")
    if problems:
        raise ModelFolderError("model_config.yaml describes a model this app does not support: " + "; ".join(problems))


def load_model_config(path: Path) -> ModelConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFolderError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelFolderError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise ModelFolderError(f"{path} is not a SAM 3D Body model config.")
    return parse_model_config(tree)


def save_model_config(cfg: ModelConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False), encoding="utf-8")
