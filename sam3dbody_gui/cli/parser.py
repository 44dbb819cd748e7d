"""The command line's arguments: one parser, a sub-command each."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..app_paths import MODEL_ENV
from ..export.mesh_file import FRAME_HELP, FRAMES, MESH_SUFFIXES
from ..runtime.choices import AUTO_BACKEND, AUTO_PRECISION, BACKENDS, MODE_HELP, MODES, PRECISIONS
from .batch import add_batch_parser
from .video import add_video_parser

DEFAULT_MAX_PEOPLE = 20


class _Parser(argparse.ArgumentParser):
    """argparse, but '-1e9', '-.5E-3' and '-inf' are numbers, as '-5' and '-0.5' already are:
    argparse alone takes anything starting with '-' that is not a plain decimal for an option
    ("--bbox: expected 4 arguments"). No option of ours looks like a number."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^-(?:inf|infinity|nan)$", re.IGNORECASE)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-clobber", action="store_true",
                   help="refuse to replace existing output files (default: replace them)")


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=f"backbone runtime (auto: {AUTO_BACKEND})")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=f"backbone precision (auto: {AUTO_PRECISION})")
    p.add_argument("--backbone-file", type=Path, help="backbone ONNX (tensorrt) or .pt2 (pt2); default: from the model folder")
    p.add_argument("--mode", default="body", choices=MODES, help="; ".join(f"{m}: {h}" for m, h in MODE_HELP.items()))
    p.add_argument("--frame", default="camera", choices=FRAMES,
                   help="mesh coordinates: " + "; ".join(f"{f}: {h}" for f, h in FRAME_HELP.items()))


def _add_picture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sheet", type=Path, help="contact sheet PNG: the crop, the overlay, a 3/4 and a side view")
    p.add_argument("--turntable", type=Path, help="a full turn of the mesh: .gif or .mp4")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sam3dbody-gui",
        description="3-D human mesh recovery from a photo with SAM 3D Body. Without a command, opens the window.",
    )
    _add_gui_options(parser)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("infer", help="photo + person boxes → meshes, overlay, PCA map, parameters")
    p.add_argument("image", type=Path)
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), action="append",
                   help="a person box in pixels; give it once per person (default: the whole image)")
    p.add_argument("--detect", action="store_true", help="find the people with the person detector")
    p.add_argument("--detector", type=Path, metavar="DIR",
                   help="detector folder (default: the downloaded one; `download --detector`)")
    p.add_argument("--min-score", type=float, default=0.5, help="detector score a person needs (default 0.5)")
    p.add_argument("--max-people", type=int, default=DEFAULT_MAX_PEOPLE,
                   help=f"at most this many people: detected ones by score, given boxes the first (default {DEFAULT_MAX_PEOPLE})")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics in pixels (default: the focal length in the photo's EXIF, else "
                        "focal = image diagonal; centred)")
    p.add_argument("--height", type=float, action="append", metavar="M",
                   help="the person is M metres tall: body and distance scaled together (the photo is unchanged); "
                        "once for everyone or once per person")
    p.add_argument("--keypoint", nargs=3, action="append", metavar=("NAME", "X", "Y"),
                   help="a keypoint prompt: this MHR70 keypoint (upstream's names, e.g. left_wrist) is at pixel "
                        "X Y of the photo; the decoder runs again with it. Repeatable (the model takes at most "
                        "PROMPT_ENCODER.MAX_NUM_CLICKS per person, 2 in the released config); with several "
                        "people, PERSON:NAME says whose (0-based, e.g. 1:left_wrist)")
    p.add_argument("--out", type=Path, help=f"mesh file ({', '.join(MESH_SUFFIXES)}); with several people "
                                            "a scene with one object each (.glb, .obj, .ply)")
    p.add_argument("--out-dir", type=Path, help="also one mesh file per person in this folder (person_0.obj, …)")
    p.add_argument("--rigged", action="store_true",
                   help="--out is a rigged body: a skinned glTF (.glb) with the MHR skeleton, posed (one skin per person)")
    p.add_argument("--bvh", type=Path, help="the skeleton and pose as BVH (one person: the first)")
    p.add_argument("--overlay", type=Path, help="PNG/JPEG of the meshes over the photo")
    p.add_argument("--pca", type=Path, help="PNG of the backbone features' PCA")
    p.add_argument("--json", type=Path, help="parameters, keypoints, camera and timings as JSON")
    _add_picture_options(p)
    _add_output_options(p)
    _add_inference_options(p)

    p = sub.add_parser("demo", help="run the built-in sample photo through the demo model (random weights)")
    p.add_argument("--out-dir", type=Path, default=Path("sam3dbody-demo"))
    p.add_argument("--model", type=Path, help="model folder (default: a synthetic demo model in the user cache)")
    _add_output_options(p)
    _add_inference_options(p)

    p = sub.add_parser("make-synthetic", help="write a model folder with random weights in the released layout")
    p.add_argument("dest", type=Path)
    p.add_argument("--size", default="tiny", choices=("tiny", "full"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detector", action="store_true",
                   help="write a person detector with random weights instead (PekingU/rtdetr_v2_r18vd's layout)")
    p.add_argument("--exports", default="auto",
                   help="backbone exports to write: comma list of onnx, pt2, or 'none'; default 'auto': pt2, "
                        "and onnx where its packages are installed (pip install 'sam3dbody-gui[export]')")

    p = sub.add_parser("bench", help="backbone cost per configuration and end-to-end latency, as one table")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--device", default="auto")
    p.add_argument("--configs", help="backbone configurations, comma list of backend:precision "
                                     "(e.g. pytorch:fp32,pytorch:bf16,compiled:bf16,pt2,tensorrt); default: all available")
    p.add_argument("--e2e", help="end-to-end configurations, e.g. pytorch:fp32,compiled:bf16+graph ('+graph': "
                                 "decoder as a CUDA graph); 'none' to skip")
    p.add_argument("--people", help="also people per photo, comma list (e.g. 1,2,4,8,16): ms per photo and persons/s")
    p.add_argument("--video", help="also a clip's pass per people count, comma list (e.g. 1,4): frames/s with "
                                   "decoding, and the jitter before and after smoothing (a 1080p synthetic clip)")
    p.add_argument("--video-frames", type=int, default=90, help="frames of the synthetic clip (default 90)")
    p.add_argument("--iterations", type=int, help="timed iterations (default: 300 on GPU after a 2 s warm-up, 5 on CPU)")
    p.add_argument("--cpu-paths", action="store_true",
                   help="instead: the CPU table, fp32 against the path auto picks for this CPU (eager and compiled): "
                        "backbone, end-to-end and mesh deviation on the benchmark images")
    p.add_argument("--targets", action="store_true",
                   help="instead: the speed targets' table (backbone, end to end body / full, first full-mode run, "
                        "peak GPU memory, cold start with empty caches, mesh deviation), each against its target")
    p.add_argument("--no-cold", action="store_true", help="with --targets: leave out the cold start (a fresh process)")
    p.add_argument("--autotune", action="store_true",
                   help="compile with max-autotune (minutes to build; default: CUDA graphs only, which measured faster)")
    p.add_argument("--json", type=Path, help="write the same figures as JSON")

    p = sub.add_parser("compare", help="feature and mesh deviation of a candidate configuration against fp32")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--device", default="auto")
    p.add_argument("--reference", default="pytorch:fp32")
    p.add_argument("--candidate", default="pytorch:bf16", help="e.g. compiled:bf16+graph, pt2, tensorrt")
    p.add_argument("--backbone-file", type=Path,
                   help="backbone ONNX (tensorrt) or .pt2 (pt2) for the candidate; default: from the model folder")
    p.add_argument("--autotune", action="store_true")
    p.add_argument("--json", type=Path)

    add_batch_parser(sub)
    add_video_parser(sub)
    p = sub.add_parser("download", help="download the model files from Hugging Face (facebook/sam-3d-body-dinov3 "
                                        "is gated: accept the SAM License on its page first)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--backbone-only", action="store_true",
                      help="only embedl/sam-3d-body's int8 backbone exports (ONNX ~3.4 GB for TensorRT, .pt2)")
    what.add_argument("--model-only", action="store_true",
                      help="only facebook/sam-3d-body-dinov3 (model.ckpt, model_config.yaml, assets/mhr_model.pt)")
    what.add_argument("--detector", action="store_true", help="only the person detector (for infer --detect)")
    p.add_argument("--dest", type=Path, metavar="DIR",
                   help="download into this folder instead of the Hugging Face cache (HF_HUB_CACHE)")
    p.add_argument("--token", help="Hugging Face access token (default: HF_TOKEN, or the one saved by `hf auth login`)")

    # SUPPRESS: `sam3dbody-gui --model M gui` keeps M (the subcommand does not reset it to None).
    _add_gui_options(sub.add_parser("gui", help="open the window (the default)", argument_default=argparse.SUPPRESS))
    return parser


def _add_gui_options(p: argparse.ArgumentParser) -> None:
    """Start-up options of the window (with no command, or `gui`); for this session only."""
    g = p.add_argument_group("window start-up (no command, or 'gui')")
    g.add_argument("--image", dest="gui_image", type=Path, metavar="PATH",
                   help="photo to open (default: the built-in sample photo)")
    g.add_argument("--bbox", dest="gui_bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="person box in pixels (default: none, i.e. the whole photo; the sample's own box for it)")
    g.add_argument("--model", dest="gui_model", type=Path, metavar="DIR",
                   help=f"model folder (default: the one chosen in Settings, else ${MODEL_ENV})")
    g.add_argument("--backend", dest="gui_backend", choices=BACKENDS,
                   help="backbone backend (default: the one chosen in Settings)")
