"""A random-weight person detector in the layout of `PekingU/rtdetr_v2_r18vd`, for tests.

    make_synthetic_detector(dest, size="tiny" | "full", seed=0)

writes config.json (the published one's keys and values, COCO id2label included, as written by
the transformers release that converted it; "tiny" shrinks the widths and depths only),
preprocessor_config.json (the published one), model.safetensors and SYNTHETIC.txt. "full" is the
real RT-DETRv2-R18 (20 M parameters, ~81 MB): it times the detector without the real weights.

Random weights find nothing, so the class heads are set to make the outcome known: every query
scores "person" at sigmoid(PERSON_LOGIT) ~ 0.98 and every other class at sigmoid(-PERSON_LOGIT)
~ 0.02, give or take a little noise. The boxes are whatever the random network says (inside the
input, as any RT-DETR box). So the end-to-end test knows there are many confident people, and
the post-processing tests feed hand-made logits and boxes straight into select_people.

Deterministic by seed on every machine: values come from RandomSource (NumPy's PCG64), not from
torch's initialisers.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Callable

from ..atomic_file import atomic_folder
from ..errors import UserError
from ..model.detector_folder import (CONFIG_FILE, PREPROCESSOR_FILE, SYNTHETIC_MARKER, WEIGHTS_FILE,
                                     import_transformers)
from .random_source import RandomSource

SIZES = ("tiny", "full")
PERSON_LOGIT = 4.0
# COCO's 80 classes as the published config names them (the mmdet label file: "motorbike", "sofa").
COCO_LABELS = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa",
    "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
# The published preprocessor_config.json, byte for byte in content.
PREPROCESSOR_CONFIG = {
    "do_convert_annotations": True, "do_normalize": False, "do_pad": False, "do_rescale": True,
    "do_resize": True, "format": "coco_detection", "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "RTDetrImageProcessor", "image_std": [0.229, 0.224, 0.225], "pad_size": None,
    "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"height": 640, "width": 640},
}
_R18_CONFIG = {
    "activation_dropout": 0.0, "activation_function": "silu", "anchor_image_size": None,
    "architectures": ["RTDetrV2ForObjectDetection"], "attention_dropout": 0.0, "auxiliary_loss": True,
    "backbone": None,
    "backbone_config": {"depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512], "layer_type": "basic",
                        "model_type": "rt_detr_resnet", "out_features": ["stage2", "stage3", "stage4"],
                        "out_indices": [2, 3, 4]},
    "backbone_kwargs": None, "batch_norm_eps": 1e-05, "box_noise_scale": 1.0, "d_model": 256,
    "decoder_activation_function": "relu", "decoder_attention_heads": 8, "decoder_ffn_dim": 1024,
    "decoder_in_channels": [256, 256, 256], "decoder_layers": 3, "decoder_n_levels": 3, "decoder_n_points": 4,
    "decoder_offset_scale": 0.5, "disable_custom_kernels": True, "dropout": 0.0, "encode_proj_layers": [2],
    "encoder_activation_function": "gelu", "encoder_attention_heads": 8, "encoder_ffn_dim": 1024,
    "encoder_hidden_dim": 256, "encoder_in_channels": [128, 256, 512], "encoder_layers": 1,
    "eos_coefficient": 0.0001, "eval_size": None, "feat_strides": [8, 16, 32], "focal_loss_alpha": 0.75,
    "focal_loss_gamma": 2.0, "freeze_backbone_batch_norms": True, "hidden_expansion": 0.5,
    "id2label": {str(i): name for i, name in enumerate(COCO_LABELS)}, "initializer_bias_prior_prob": None,
    "initializer_range": 0.01, "is_encoder_decoder": True,
    "label2id": {name: i for i, name in enumerate(COCO_LABELS)}, "label_noise_ratio": 0.5,
    "layer_norm_eps": 1e-05, "learn_initial_query": False, "matcher_alpha": 0.25, "matcher_bbox_cost": 5.0,
    "matcher_class_cost": 2.0, "matcher_gamma": 2.0, "matcher_giou_cost": 2.0, "model_type": "rt_detr_v2",
    "normalize_before": False, "num_denoising": 100, "num_feature_levels": 3, "num_queries": 300,
    "positional_encoding_temperature": 10000, "torch_dtype": "float32", "transformers_version": "4.47.0.dev0",
    "use_focal_loss": True, "use_pretrained_backbone": False, "use_timm_backbone": False,
    "weight_loss_bbox": 5.0, "weight_loss_giou": 2.0, "weight_loss_vfl": 1.0, "with_box_refine": True,
}
# Narrow and shallow, same structure (three feature levels, box refinement, 300 queries).
_TINY = {"d_model": 32, "encoder_hidden_dim": 32, "decoder_in_channels": [32, 32, 32], "encoder_ffn_dim": 64,
         "decoder_ffn_dim": 64, "encoder_attention_heads": 2, "decoder_attention_heads": 2, "decoder_layers": 2,
         "encoder_in_channels": [16, 32, 64]}
_TINY_BACKBONE = {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 16, 32, 64], "embedding_size": 16}


def detector_config(size: str = "tiny") -> dict:
    if size not in SIZES:
        raise UserError(f"unknown detector size {size!r}: choose from {', '.join(SIZES)}")
    config = copy.deepcopy(_R18_CONFIG)
    if size == "tiny":
        config.update(copy.deepcopy(_TINY))
        config["backbone_config"].update(_TINY_BACKBONE)
    return config


def _is_norm(module) -> bool:
    return hasattr(module, "running_var") or type(module).__name__.endswith(("LayerNorm", "BatchNorm2d"))


def _is_head(name: str) -> bool:
    """The class heads and the box heads' last layers: small weights, so the biases and the anchors
    decide (as RT-DETR's own init, which zeroes the box heads' last layer)."""
    return "class_embed" in name or "enc_score_head" in name or (("bbox_embed" in name or "enc_bbox_head" in name)
                                                                   and ".layers.2." in name)


def random_state(model, seed: int) -> dict:
    """Every tensor of `model` drawn from `seed`: layers scaled to keep activations near unit size,
    norms near identity, and the class heads biased to "person" (PERSON_LOGIT)."""
    import torch

    rng = RandomSource([seed, 0xDE7EC7])
    owner = {}
    for mname, module in model.named_modules():
        for pname, _ in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            owner[f"{mname}.{pname}" if mname else pname] = module
    state = {}
    # Drawn in the order of the published names: the same file whichever transformers names them.
    for name, value in sorted(model.state_dict().items(), key=lambda item: published_name(item[0])):
        if not value.is_floating_point():
            state[name] = value.clone()
            continue
        module, leaf = owner.get(name), name.rsplit(".", 1)[-1]
        if leaf == "running_mean" or (name.startswith("model.enc_output.") and leaf == "bias"):
            # enc_output with no biases maps the zeroed features of the anchors outside the picture
            # to zero, so they score exactly the bias and never outrank the real anchors in the
            # query selection (their boxes are "infinite", trained weights learn to score them low).
            new = torch.zeros_like(value)
        elif leaf == "running_var":
            new = torch.ones_like(value)
        elif module is not None and _is_norm(module):
            new = rng.normal(value.shape, 0.05, 1.0 if leaf == "weight" else 0.0)
        elif value.dim() >= 2 and leaf == "weight":
            fan_in = max(1, value[0].numel())
            new = rng.normal(value.shape, (0.1 if _is_head(name) else 1.0) / fan_in ** 0.5)
        else:
            new = rng.normal(value.shape, 0.02)
        if ("class_embed" in name or "enc_score_head" in name) and leaf == "bias" and "denoising" not in name:
            new = torch.full_like(value, -PERSON_LOGIT)
            new[COCO_LABELS.index("person")] = PERSON_LOGIT
        state[name] = new.to(value.dtype).reshape(value.shape)
    return state


# transformers 5 renamed some tensors and renames the published (4.x) names as it loads them
# (its conversion_mapping for "rt_detr"): written back under the published names, the synthetic
# file tests that renaming too. (v5 name -> published name.)
_PUBLISHED_NAMES = (
    (re.compile(r"\.o_proj\."), ".out_proj."),
    (re.compile(r"layers\.(\d+)\.mlp\.fc([12])\."), r"layers.\1.fc\2."),
    (re.compile(r"encoder\.aifi\.(\d+)\.layers"), r"encoder.encoder.\1.layers"),
)


def published_name(name: str) -> str:
    for pattern, replacement in _PUBLISHED_NAMES:
        name = pattern.sub(replacement, name)
    return name


def _to_file(model, state: dict) -> dict:
    """The tensors to write: one name per tensor (the class and box heads are shared between the
    decoder and the top model; the decoder's name is kept, as save_pretrained does), under the
    published names."""
    seen, out = {}, {}
    for name, value in model.state_dict().items():
        seen.setdefault(value.data_ptr(), []).append(name)
    for names in seen.values():
        keep = next((n for n in names if n.startswith("model.")), names[0])
        out[published_name(keep)] = state[keep].contiguous()
    return out


def make_synthetic_detector(dest: Path, size: str = "tiny", seed: int = 0,
                            progress: Callable[[str], None] = lambda msg: None) -> Path:
    """Write the folder (a new or empty one); returns its path. Needs transformers (the `detect` extra)."""
    from safetensors.torch import save_file

    config = detector_config(size)
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} already exists and is not empty; choose a new folder (nothing was written)")
    _, config_class, model_class = import_transformers()
    progress(f"building a {size} RT-DETRv2 person detector with random weights (seed {seed})")
    model = model_class(config_class.from_dict(copy.deepcopy(config))).eval()
    state = _to_file(model, random_state(model, seed))
    with atomic_folder(dest) as work:
        (work / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (work / PREPROCESSOR_FILE).write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
        save_file(state, str(work / WEIGHTS_FILE), metadata={"format": "pt"})
        (work / SYNTHETIC_MARKER).write_text(
            "SYNTHETIC PERSON DETECTOR - RANDOM WEIGHTS\n"
            f"Made by sam3dbody-gui with size {size}, seed {seed}.\n"
            "Same files and config keys as PekingU/rtdetr_v2_r18vd, but the weights are random: every query\n"
            "scores as a person, and its boxes are not anyone's.\n", encoding="utf-8")
    progress(f"wrote {dest}")
    return dest
