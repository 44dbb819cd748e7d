"""The other commands: make-synthetic, download, bench, compare, and the window."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserError
from .infer import model_dir_from, with_oom_message


def _check_output(path: Optional[Path], suffixes: set[str], what: str) -> None:
    """Fail before any work if an output cannot be written."""
    if path is None:
        return
    from ..export.output_set import Output, check_outputs

    if path.suffix.lower() not in suffixes:
        raise UserError(f"{what} {path}: unsupported extension; use {', '.join(sorted(suffixes))}")
    check_outputs([Output(path, what)])


def _split(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    return [] if value.strip().lower() == "none" else [v.strip() for v in value.split(",") if v.strip()]


def cmd_make_synthetic(args) -> None:
    if getattr(args, "detector", False):
        from ..synthetic.detector import make_synthetic_detector

        print(f"wrote {make_synthetic_detector(args.dest, size=args.size, seed=args.seed, progress=print)}")
        return
    from ..synthetic.make import EXPORT_KINDS, make_synthetic_model

    text = args.exports.strip().lower()
    exports = None if text == "auto" else () if text == "none" else tuple(_split(text))
    unknown = [e for e in exports or () if e not in EXPORT_KINDS]
    if unknown:
        raise UserError(f"unknown --exports {unknown}: use onnx, pt2, none or auto")
    make_synthetic_model(args.dest, size=args.size, seed=args.seed, exports=exports, progress=print)


def cmd_download(args) -> None:
    if getattr(args, "detector", False):
        from ..hub_detector import cli_download_detector

        cli_download_detector(dest=args.dest, token=args.token)
        return
    from ..hub import cli_download

    cli_download(model=not args.backbone_only, backbone=not args.model_only, dest=args.dest, token=args.token)


def cmd_gui(args) -> None:
    try:
        from ..ui.app import run_gui
    except ImportError as exc:  # e.g. PySide6 missing its system libraries (libEGL, libxkbcommon)
        raise UserError(f"the window cannot start: {exc}. The headless commands (infer, demo) still work") from None
    code = run_gui(image=getattr(args, "gui_image", None), bbox=getattr(args, "gui_bbox", None),
                   model=getattr(args, "gui_model", None), backend=getattr(args, "gui_backend", None))
    if code:
        raise SystemExit(code)


def cmd_bench(args) -> None:
    from ..bench import run_bench
    from ..device import resolve_device

    _check_output(args.json, {".json"}, "JSON")
    if getattr(args, "targets", False):
        from ..bench_targets import run_targets

        print(with_oom_message(lambda: run_targets(model_dir_from(args.model), resolve_device(args.device), args.json,
                                                   cold=not args.no_cold)))
        return
    if getattr(args, "cpu_paths", False):
        from ..bench_cpu import run_cpu_paths

        print(run_cpu_paths(model_dir_from(args.model), args.json, configs=_split(args.configs)))
        return
    people = [int(p) for p in _split(args.people)] if getattr(args, "people", None) else None
    if people is not None and (not people or min(people) < 1):
        raise UserError("--people takes positive counts, e.g. 1,2,4,8,16")
    video = [int(p) for p in _split(args.video)] if getattr(args, "video", None) else None
    if video is not None and (not video or min(video) < 1 or args.video_frames < 3):
        raise UserError("--video takes positive people counts, e.g. 1,4 (and --video-frames at least 3)")
    text = with_oom_message(lambda: run_bench(
        model_dir_from(args.model), resolve_device(args.device), _split(args.configs), _split(args.e2e), args.json,
        args.iterations, max_autotune=args.autotune, people=people, video=video, video_frames=args.video_frames))
    print(text)


def cmd_compare(args) -> None:
    from ..compare import run_compare
    from ..device import resolve_device

    _check_output(args.json, {".json"}, "JSON")
    print(with_oom_message(lambda: run_compare(
        model_dir_from(args.model), resolve_device(args.device), args.reference, args.candidate, args.json,
        max_autotune=args.autotune, backbone_file=args.backbone_file)))
