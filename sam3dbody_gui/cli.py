"""Command line: `sam3dbody-gui [gui]`, `infer`, `demo`, `make-synthetic`, `download`.

Every problem the user can fix ends as one `error: …` line and a non-zero exit, with no
traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from .errors import UserError
from .runtime.choices import BACKENDS, PRECISIONS

EXIT_USER_ERROR = 2
EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM
MODEL_ENV = "SAM3DBODY_GUI_MODEL"
SAMPLE_IMAGE = "sample_astronaut.jpg"
SAMPLE_BOX = (20.0, 10.0, 370.0, 512.0)


def sample_image_path() -> Path:
    return Path(str(resources.files("sam3dbody_gui") / "resources" / SAMPLE_IMAGE))


def demo_model_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sam3dbody-gui")) / "demo-model-tiny"


def ensure_demo_model(progress=print) -> Path:
    """The synthetic (random-weight) tiny model in the user cache, made on first use."""
    from .synthetic.make import is_synthetic, make_synthetic_model

    folder = demo_model_dir()
    if not is_synthetic(folder):
        progress(f"making the demo model (random weights) in {folder}")
        make_synthetic_model(folder, size="tiny", seed=0, exports=(), progress=lambda m: None)
    return folder


# ------------------------------------------------------------------------------------------
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
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="backbone runtime: auto, tensorrt, pt2 (torch.export), pytorch (eager) or compiled")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="PyTorch backbone precision (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--backbone-file", type=Path, help="backbone ONNX (tensorrt) or .pt2 (pt2); default: from the model folder")
    p.add_argument("--mode", default="body", choices=("body", "full"),
                   help="body: one backbone + one decoder pass (fast); full: + hand refinement, upstream's "
                        "default (two hand crops through the backbone, the hand decoder, a prompted body re-run)")
    p.add_argument("--frame", default="camera", choices=("camera", "upright"),
                   help="mesh coordinates: camera (OpenCV camera frame, lines up with the photo) "
                        "or upright (Y up, centred)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sam3dbody-gui",
        description="3-D human mesh recovery from a photo with SAM 3D Body. Without a command, opens the window.",
    )
    _add_gui_options(parser)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("infer", help="photo + person box → mesh (OBJ/PLY/GLB), overlay, PCA map, parameters")
    p.add_argument("image", type=Path)
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="person box in pixels (default: the whole image)")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics in pixels (default: focal = image diagonal, centred)")
    p.add_argument("--out", type=Path, help="mesh file: .obj, .ply or .glb")
    p.add_argument("--overlay", type=Path, help="PNG/JPEG of the mesh over the photo")
    p.add_argument("--pca", type=Path, help="PNG of the backbone features' PCA")
    p.add_argument("--json", type=Path, help="parameters, keypoints, camera and timings as JSON")
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
    p.add_argument("--exports", default="onnx,pt2",
                   help="backbone exports to write: comma list of onnx, pt2, or 'none' (default: onnx,pt2)")

    p = sub.add_parser("bench", help="backbone cost per configuration and end-to-end latency, as one table")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--device", default="auto")
    p.add_argument("--configs", help="backbone configurations, comma list of backend:precision "
                                     "(e.g. pytorch:fp32,pytorch:bf16,compiled:bf16,pt2,tensorrt); default: all available")
    p.add_argument("--e2e", help="end-to-end configurations, e.g. pytorch:fp32,compiled:bf16+graph ('+graph': "
                                 "decoder as a CUDA graph); 'none' to skip")
    p.add_argument("--iterations", type=int, help="timed iterations (default: 300 on GPU after a 2 s warm-up, 5 on CPU)")
    p.add_argument("--autotune", action="store_true",
                   help="compile with max-autotune (minutes to build; default: CUDA graphs only, which measured faster)")
    p.add_argument("--json", type=Path, help="write the same figures as JSON")

    p = sub.add_parser("compare", help="feature and mesh deviation of a candidate configuration against fp32")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--device", default="auto")
    p.add_argument("--reference", default="pytorch:fp32")
    p.add_argument("--candidate", default="pytorch:bf16", help="e.g. compiled:bf16+graph, pt2, tensorrt")
    p.add_argument("--autotune", action="store_true")
    p.add_argument("--json", type=Path)

    p = sub.add_parser("download", help="download the model files from Hugging Face (facebook/sam-3d-body-dinov3 "
                                        "is gated: accept the SAM License on its page first)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--backbone-only", action="store_true",
                      help="only embedl/sam-3d-body's int8 backbone exports (ONNX ~3.4 GB for TensorRT, .pt2)")
    what.add_argument("--model-only", action="store_true",
                      help="only facebook/sam-3d-body-dinov3 (model.ckpt, model_config.yaml, assets/mhr_model.pt)")
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


# ------------------------------------------------------------------------------------------
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _check_suffix(path: Path | None, suffixes: set[str], what: str) -> None:
    if path is not None and path.suffix.lower() not in suffixes:
        raise UserError(f"{what} {path}: unsupported extension; use {', '.join(sorted(suffixes))}")


def _check_output(path: Path | None, suffixes: set[str], what: str) -> None:
    """Fail before any work if an output cannot be written, so no run ends half-saved."""
    if path is None:
        return
    _check_suffix(path, suffixes, what)
    folder = path.expanduser().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {path}: folder {folder} is not writable")


# Rows and columns around the body crop's square also read from a large photo in full mode, as
# a fraction of its side: the hand crops come from inside it (a hand box padded by 0.9).
FULL_MODE_MARGIN = 0.25


def _crop_pixels(photo, box, crop_size: int, mode: str):
    """The array the pipeline crops from (for a large photo, only the pixels its crops read),
    made before the model loads; a box too large to compute is refused here."""
    import numpy as np

    from .errors import BoxError
    from .pipeline.box import format_box
    from .pipeline.preprocess import crop_geometry, sampled_rows_cols, square_rows_cols

    with np.errstate(all="ignore"):  # overflow is the finding here, reported below, not a warning
        geom = crop_geometry(box, photo.size_hw, crop_size=crop_size)
    if not (np.isfinite(geom.affine).all() and np.isfinite(geom.inverse_affine).all()):
        # e.g. 0 0 1e300 1e300: finite, on the photo, but its crop (in float32, as upstream) is not
        raise BoxError(f"person box {format_box(geom.bbox_xyxy)} is too large for the {photo.size_hw[1]}x"
                       f"{photo.size_hw[0]} photo: its crop cannot be computed; draw the box around the person")
    if not photo.reduced:
        return photo.full
    rows, cols = square_rows_cols(geom, FULL_MODE_MARGIN) if mode == "full" else sampled_rows_cols(geom)
    return photo.pixels(rows, cols)


def _run_and_save(image_path: Path, box, model_dir: Path, args, out_mesh, out_overlay, out_pca, out_json) -> None:
    import json

    from .export.display import result_on_display
    from .export.feature_pca import feature_pca_image
    from .export.mesh_file import MESH_FORMATS, mesh_in_frame, save_mesh
    from .export.output_set import Output, check_outputs, publish
    from .export.overlay import render_overlay
    from .export.result_checks import json_ready, require_finite
    from .model.config import load_model_config
    from .model.model_folder import find_model_files
    from .pipeline.box import validate_box
    from .pipeline.image_io import load_photo
    from .pipeline.pipeline import build_pipeline
    from .pipeline.preprocess import intrinsics_from

    # Everything that can be checked is checked before the model loads (1 B parameters):
    # the outputs, the photo, the box, the camera, the model folder's config.
    wanted = [(out_mesh, set(MESH_FORMATS), "mesh"), (out_overlay, IMAGE_SUFFIXES, "overlay"),
              (out_pca, IMAGE_SUFFIXES, "PCA image"), (out_json, {".json"}, "JSON")]
    for path, suffixes, what in wanted:
        _check_suffix(path, suffixes, what)
    outputs = {what: Output(path, what) for path, _, what in wanted if path is not None}
    protected = [Output(image_path, "input photo")]
    replace = not getattr(args, "no_clobber", False)
    check_outputs(list(outputs.values()), inputs=protected, replace=replace)
    photo = load_photo(image_path)
    validate_box(box, photo.size_hw)
    k = intrinsics_from(*args.intrinsics) if getattr(args, "intrinsics", None) else None
    mode = getattr(args, "mode", "body")
    crop_size = load_model_config(find_model_files(model_dir).config).crop_size
    pixels = _crop_pixels(photo, box, crop_size, mode)

    pipeline = _with_oom_message(lambda: build_pipeline(
        model_dir, args.device, args.precision, backend=args.backend, backbone_file=args.backbone_file, progress=print))
    print(f"model: {model_dir} ({pipeline.loaded.report.summary()})")
    print(f"backbone: {pipeline.backbone.info.label()}; decoder: {pipeline.decoder_label}")
    result = _with_oom_message(lambda: pipeline.run(pixels, box, k, mode=mode))
    del pixels  # a large photo's crop pixels are not needed any more
    require_finite(result)

    writers, report = [], []
    if out_mesh:
        vertices = mesh_in_frame(result.vertices_camera, args.frame)
        writers.append((outputs["mesh"], lambda tmp: save_mesh(tmp, vertices, result.faces)))
        report.append(f"mesh: {out_mesh} ({result.vertices.shape[0]} vertices, {result.faces.shape[0]} faces, "
                      f"{args.frame} frame)")
    if out_overlay:
        # A large photo is drawn on its display copy: the full-size picture is never in memory.
        shown = result_on_display(result, photo.display.shape[:2]) if photo.reduced else result
        overlay = render_overlay(photo.display, shown)
        writers.append((outputs["overlay"], lambda tmp: _save_image(overlay, out_overlay, tmp)))
        note = (f" ({overlay.width}x{overlay.height}: photo reduced {photo.size_hw[1] // overlay.width}x for display)"
                if photo.reduced else "")
        report.append(f"overlay: {out_overlay}{note}")
    if out_pca:
        pca = feature_pca_image(result.features)
        writers.append((outputs["PCA image"], lambda tmp: _save_image(pca, out_pca, tmp)))
        report.append(f"PCA map: {out_pca}")
    if out_json:
        text = json.dumps(json_ready(result.to_json_dict()), indent=1, allow_nan=False).encode("utf-8")
        writers.append((outputs["JSON"], lambda tmp: tmp.write_bytes(text)))
        report.append(f"parameters: {out_json}")
    publish(writers, inputs=protected, replace=replace)  # all files, or none
    for line in report:
        print(line)
    print(format_timings(result.timings_ms))


def _save_image(picture, path: Path, tmp: Path) -> None:
    """Save `picture` into `tmp` in the format `path`'s extension names."""
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None
    picture.save(tmp, format=fmt or picture.format or path.suffix.lstrip(".").upper().replace("TIF", "TIFF"))


def format_timings(timings: dict[str, float]) -> str:
    return "latency (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())


def _with_oom_message(fn):
    import torch

    try:
        return fn()
    except torch.cuda.OutOfMemoryError:
        raise UserError("the GPU ran out of memory; close other GPU programs or use --device cpu") from None
    except MemoryError:
        raise UserError("out of memory: the model does not fit in this machine's RAM") from None


def _model_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    raise UserError(
        f"no model folder: pass --model DIR or set {MODEL_ENV}. "
        "For a demo with random weights: sam3dbody-gui make-synthetic DIR"
    )


def cmd_infer(args) -> None:
    if not any((args.out, args.overlay, args.pca, args.json)):
        raise UserError("nothing to write: give --out mesh.obj and/or --overlay, --pca, --json")
    _run_and_save(args.image, args.bbox, _model_dir(args.model), args, args.out, args.overlay, args.pca, args.json)


def cmd_demo(args) -> None:
    model_dir = args.model or ensure_demo_model()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    print(f"sample photo: {sample_image_path().name}, box {list(SAMPLE_BOX)}")
    _run_and_save(sample_image_path(), SAMPLE_BOX, model_dir, args, out / "mesh.obj", out / "overlay.png",
                  out / "pca.png", out / "params.json")
    if args.model is None:
        print("note: the demo model has RANDOM weights (real weights: facebook/sam-3d-body-dinov3)")


def cmd_make_synthetic(args) -> None:
    from .synthetic.make import EXPORT_KINDS, make_synthetic_model

    exports = () if args.exports.strip().lower() == "none" else tuple(e.strip() for e in args.exports.split(",") if e.strip())
    unknown = [e for e in exports if e not in EXPORT_KINDS]
    if unknown:
        raise UserError(f"unknown --exports {unknown}: use onnx, pt2 or none")
    make_synthetic_model(args.dest, size=args.size, seed=args.seed, exports=exports, progress=print)


def cmd_download(args) -> None:
    from .hub import cli_download

    cli_download(model=not args.backbone_only, backbone=not args.model_only, dest=args.dest, token=args.token)


def cmd_gui(args) -> None:
    try:
        from .ui.app import run_gui
    except ImportError as exc:  # e.g. PySide6 missing its system libraries (libEGL, libxkbcommon)
        raise UserError(f"the window cannot start: {exc}. The headless commands (infer, demo) still work") from None
    code = run_gui(image=getattr(args, "gui_image", None), bbox=getattr(args, "gui_bbox", None),
                   model=getattr(args, "gui_model", None), backend=getattr(args, "gui_backend", None))
    if code:
        raise SystemExit(code)


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [] if value.strip().lower() == "none" else [v.strip() for v in value.split(",") if v.strip()]


def cmd_bench(args) -> None:
    from .bench import run_bench
    from .device import resolve_device

    _check_output(args.json, {".json"}, "JSON")
    text = _with_oom_message(lambda: run_bench(
        _model_dir(args.model), resolve_device(args.device), _split(args.configs), _split(args.e2e), args.json,
        args.iterations, max_autotune=args.autotune))
    print(text)


def cmd_compare(args) -> None:
    from .compare import run_compare
    from .device import resolve_device

    _check_output(args.json, {".json"}, "JSON")
    print(_with_oom_message(lambda: run_compare(
        _model_dir(args.model), resolve_device(args.device), args.reference, args.candidate, args.json,
        max_autotune=args.autotune)))


class Terminated(BaseException):
    """SIGTERM, raised wherever the program is (like KeyboardInterrupt for SIGINT), so every
    cleanup runs: no temporary file is left and no output is half-published. A BaseException,
    so that no `except Exception` swallows it."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


COMMANDS = {"infer": cmd_infer, "demo": cmd_demo, "make-synthetic": cmd_make_synthetic, "bench": cmd_bench,
            "download": cmd_download,
            "compare": cmd_compare, "gui": cmd_gui, None: cmd_gui}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The window keeps Qt's own handling (an exception raised inside Qt's event loop aborts).
    terminable = _sigterm_raises() if args.command not in (None, "gui") else _no_change()
    try:
        with terminable:
            COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    return 0


@contextmanager
def _no_change() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
