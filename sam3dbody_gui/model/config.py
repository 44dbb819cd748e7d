"""The model configuration, read from upstream's `model_config.yaml`.

Upstream reads the file with OmegaConf + yacs and looks keys up all over its code. We read the
same file with PyYAML into one frozen dataclass, so every value the model depends on is named
in one place and a wrong or missing value is reported before any tensor is built.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelFolderError, first_line


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


# ------------------------------------------------------------------------ the schema ---
# Every value the architecture reads, with its type and the range this app can build. Values
# are checked before anything is built: a DECODER.DEPTH of 10^9 used to build layers until the
# memory ran out, a zero IMAGE_STD divided by zero, `bool("false")` is True. The ranges are far
# wider than any released model (depth 6, width 1024, 512 px crops) yet keep a meta-device
# build instant.
_INT, _FLOAT, _BOOL, _STR = "a whole number", "a number", "true or false", "a string"


@dataclass(frozen=True)
class _Key:
    path: str  # under MODEL unless it starts with TRAIN.
    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    positive: bool = False  # a number > 0 (for floats, where `lo` cannot say "exclusive")
    length: int | None = None  # a list of exactly this many values
    nullable: bool = False  # null means the default
    choices: tuple | None = None


_SCHEMA = (
    _Key("IMAGE_SIZE", _INT, (512, 512), lo=16, hi=4096, length=2),
    _Key("IMAGE_MEAN", _FLOAT, ModelConfig.image_mean, lo=-1e4, hi=1e4, length=3),
    _Key("IMAGE_STD", _FLOAT, ModelConfig.image_std, positive=True, hi=1e4, length=3),
    _Key("BACKBONE.TYPE", _STR, ""),
    _Key("DECODER.DIM", _INT, 1024, lo=1, hi=16384),
    _Key("DECODER.DEPTH", _INT, 6, lo=1, hi=64),
    _Key("DECODER.HEADS", _INT, 8, lo=1, hi=256),
    _Key("DECODER.DIM_HEAD", _INT, 64, lo=1, hi=1024),
    _Key("DECODER.MLP_DIM", _INT, 1024, lo=1, hi=65536),
    _Key("DECODER.REPEAT_PE", _BOOL, True),
    _Key("DECODER.ENABLE_TWOWAY", _BOOL, False),
    _Key("DECODER.CONDITION_TYPE", _STR, "cliff"),
    _Key("DECODER.USE_INTRIN_CENTER", _BOOL, False),
    _Key("DECODER.DO_INTERM_PREDS", _BOOL, False),
    _Key("DECODER.DO_KEYPOINT_TOKENS", _BOOL, False),
    _Key("DECODER.DO_KEYPOINT3D_TOKENS", _BOOL, False),
    _Key("DECODER.DO_HAND_DETECT_TOKENS", _BOOL, False),
    _Key("DECODER.KEYPOINT_TOKEN_UPDATE", _STR, "", nullable=True),
    _Key("DECODER.LAYER_SCALE_INIT", _FLOAT, 0.0, lo=-1e6, hi=1e6, nullable=True),
    _Key("PROMPT_ENCODER.MAX_NUM_CLICKS", _INT, 2, lo=0, hi=1000),
    _Key("PROMPT_ENCODER.PROMPT_KEYPOINTS", _STR, "mhr70"),
    _Key("PROMPT_ENCODER.MASK_EMBED_TYPE", _STR, None, nullable=True),
    _Key("MHR_HEAD.MLP_DEPTH", _INT, 1, lo=1, hi=16),
    _Key("MHR_HEAD.MLP_CHANNEL_DIV_FACTOR", _INT, 1, lo=1, hi=16384),
    _Key("CAMERA_HEAD.MLP_DEPTH", _INT, 1, lo=1, hi=16),
    _Key("CAMERA_HEAD.MLP_CHANNEL_DIV_FACTOR", _INT, 1, lo=1, hi=16384),
    _Key("CAMERA_HEAD.DEFAULT_SCALE_FACTOR_HAND", _FLOAT, 1.0, positive=True, hi=1e6),
    _Key("TRAIN.USE_FP16", _BOOL, False),
    _Key("TRAIN.FP16_TYPE", _STR, "float16", choices=("float16", "bfloat16")),
)
_ABSENT = object()


def _lookup(tree: dict, key: _Key) -> Any:
    parts = key.path.split(".") if key.path.startswith("TRAIN.") else ["MODEL", *key.path.split(".")]
    node: Any = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _scalar(value: Any, key: _Key) -> tuple[Any, str]:
    """(value, "") or (None, what is wrong)."""
    if key.kind == _BOOL:
        # 0/1 as YAML 1.1 writers sometimes emit them; anything else is ambiguous.
        if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
            return bool(value), ""
        return None, f"must be {_BOOL}"
    if key.kind == _STR:
        if not isinstance(value, str):
            return None, f"must be {_STR}"
        if key.choices is not None and value not in key.choices:
            return None, "must be one of " + ", ".join(map(repr, key.choices))
        return value, ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"must be {key.kind}"
    if key.kind == _INT and isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return None, f"must be {_INT}"
        value = int(value)
    if key.kind == _FLOAT:
        value = float(value)
        if not math.isfinite(value):
            return None, "must be a finite number"
    if key.positive and not value > 0:
        return None, "must be greater than 0"
    if (key.lo is not None and value < key.lo) or (key.hi is not None and value > key.hi):
        if key.lo is None:
            return None, f"must be greater than 0 and at most {key.hi:g}"
        return None, f"must be from {key.lo:g} to {key.hi:g}"
    return value, ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read(tree: dict, key: _Key, problems: list[str]) -> Any:
    value = _lookup(tree, key)
    if value is _ABSENT or (value is None and key.nullable):
        return key.default
    if value is None:
        problems.append(f"{key.path} is empty (null)")
        return key.default
    if key.length is not None:
        if key.path == "IMAGE_SIZE" and not isinstance(value, (list, tuple)):
            value = [value, value]  # upstream accepts one number for a square crop
        if not isinstance(value, (list, tuple)) or len(value) != key.length:
            problems.append(f"{key.path} is {_show(value)}: it must be a list of {key.length} values")
            return key.default
        out = []
        for i, item in enumerate(value):
            checked, why = _scalar(item, key)
            if why:
                problems.append(f"{key.path}[{i}] is {_show(item)}: it {why}")
                return key.default
            out.append(checked)
        return tuple(out)
    checked, why = _scalar(value, key)
    if why:
        problems.append(f"{key.path} is {_show(value)}: it {why}")
        return key.default
    return checked


def parse_model_config(tree: dict[str, Any]) -> ModelConfig:
    """Build a ModelConfig from upstream's nested dict; absent keys take upstream's defaults.
    Every value is checked against the schema first; all problems are reported together."""
    if not isinstance(tree.get("MODEL"), dict) or not tree["MODEL"]:
        raise ModelFolderError("model_config.yaml has no MODEL section: not a SAM 3D Body config.")
    problems: list[str] = []
    v = {key.path: _read(tree, key, problems) for key in _SCHEMA}
    from .backbone import BACKBONE_ARCHS  # a name check only; nothing is built

    if v["BACKBONE.TYPE"] not in BACKBONE_ARCHS and not any(p.startswith("BACKBONE.TYPE") for p in problems):
        problems.append(f"BACKBONE.TYPE is {_show(v['BACKBONE.TYPE'])}: it must be one of "
                        + ", ".join(sorted(BACKBONE_ARCHS)))
    for head in ("MHR_HEAD", "CAMERA_HEAD"):
        div = v[f"{head}.MLP_CHANNEL_DIV_FACTOR"]
        if div > v["DECODER.DIM"]:  # the head's hidden width DIM // div would be 0
            problems.append(f"{head}.MLP_CHANNEL_DIV_FACTOR is {div}: it must not exceed DECODER.DIM "
                            f"({v['DECODER.DIM']})")
    if problems:
        raise ModelFolderError("model_config.yaml has values this app cannot use: " + "; ".join(problems))
    decoder = DecoderConfig(
        dim=v["DECODER.DIM"], depth=v["DECODER.DEPTH"], heads=v["DECODER.HEADS"], dim_head=v["DECODER.DIM_HEAD"],
        mlp_dim=v["DECODER.MLP_DIM"], repeat_pe=v["DECODER.REPEAT_PE"], enable_twoway=v["DECODER.ENABLE_TWOWAY"],
        condition_type=v["DECODER.CONDITION_TYPE"], use_intrin_center=v["DECODER.USE_INTRIN_CENTER"],
        do_interm_preds=v["DECODER.DO_INTERM_PREDS"], do_keypoint_tokens=v["DECODER.DO_KEYPOINT_TOKENS"],
        do_keypoint3d_tokens=v["DECODER.DO_KEYPOINT3D_TOKENS"],
        do_hand_detect_tokens=v["DECODER.DO_HAND_DETECT_TOKENS"],
        keypoint_token_update=v["DECODER.KEYPOINT_TOKEN_UPDATE"] or "",
        layer_scale_init=v["DECODER.LAYER_SCALE_INIT"] or 0.0,
    )
    cfg = ModelConfig(
        image_size=v["IMAGE_SIZE"], image_mean=v["IMAGE_MEAN"], image_std=v["IMAGE_STD"],
        backbone_type=v["BACKBONE.TYPE"], backbone_half=v["TRAIN.USE_FP16"],
        backbone_half_type=v["TRAIN.FP16_TYPE"], decoder=decoder,
        max_num_clicks=v["PROMPT_ENCODER.MAX_NUM_CLICKS"], prompt_keypoints=v["PROMPT_ENCODER.PROMPT_KEYPOINTS"],
        mask_embed_type=v["PROMPT_ENCODER.MASK_EMBED_TYPE"],
        mhr_head_mlp_depth=v["MHR_HEAD.MLP_DEPTH"], mhr_head_channel_div=v["MHR_HEAD.MLP_CHANNEL_DIV_FACTOR"],
        camera_head_mlp_depth=v["CAMERA_HEAD.MLP_DEPTH"],
        camera_head_channel_div=v["CAMERA_HEAD.MLP_CHANNEL_DIV_FACTOR"],
        default_scale_factor_hand=v["CAMERA_HEAD.DEFAULT_SCALE_FACTOR_HAND"],
    )
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


MAX_CONFIG_BYTES = 1 << 20  # the released file is ~2 kB; more is not a config (and YAML is slow)


def load_model_config(path: Path) -> ModelConfig:
    from ..errors import describe_os_error

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ModelFolderError(f"cannot read {path}: {describe_os_error(exc)}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ModelFolderError(f"{path} is over {MAX_CONFIG_BYTES // 1024} kB: not a SAM 3D Body model config")
    try:
        text = data.decode("utf-8-sig")  # a BOM is harmless (some editors write one)
    except UnicodeDecodeError as exc:
        hint = " (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ModelFolderError(f"{path} is not UTF-8 text: byte {data[exc.start]:#04x} at offset {exc.start}"
                               f"{hint}") from None
    if "\0" in text:
        raise ModelFolderError(f"{path} is not UTF-8 text: it holds NUL bytes (a binary file?)")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelFolderError(f"{path} is not valid YAML: {first_line(exc)}") from None
    except RecursionError:
        raise ModelFolderError(f"{path} is not valid YAML: nested too deeply") from None
    if not isinstance(tree, dict):
        raise ModelFolderError(f"{path} is not a SAM 3D Body model config.")
    return parse_model_config(tree)


def save_model_config(cfg: ModelConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False), encoding="utf-8")
