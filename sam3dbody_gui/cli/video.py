"""`video`: a clip → its people tracked, their motion smoothed, an animation and an overlay video.

    sam3dbody-gui video clip.mp4 --model DIR --detect --out anim.glb --bvh anim.bvh
        --json frames.jsonl --overlay-video overlay.mp4 [--smooth S] [--detect-every K]

Order of work: every check that needs no model first (the options, the outputs, the clip), then
the pass over the clip, frame by frame into the work file (Ctrl+C or a crash loses nothing: the
same command resumes after the last frame done), then the motion (ids fixed, identity, smoothing),
then every output at once, all or none (output_set.publish).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UserError
from ..runtime.choices import AUTO_BACKEND, AUTO_PRECISION, BACKENDS, PRECISIONS

DEFAULT_SMOOTH = 0.5
PROGRESS_EVERY_S = 2.0


def add_video_parser(subparsers) -> None:
    from ..app_paths import MODEL_ENV

    p = subparsers.add_parser("video", help="video clip → people tracked, smoothed motion, animated glTF, BVH, "
                                            "per-frame JSON Lines, overlay video")
    p.add_argument("clip", type=Path, help="the video (mp4, mov, mkv, webm: anything FFmpeg reads)")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    who = p.add_argument_group("who is in the clip")
    who.add_argument("--detect", action="store_true", help="find the people with the person detector, and track them")
    who.add_argument("--detector", type=Path, metavar="DIR",
                     help="detector folder (default: the downloaded one; `download --detector`)")
    who.add_argument("--detect-every", type=int, default=1, metavar="K",
                     help="run the detector on every K-th frame; the frames between carry each box (default 1)")
    who.add_argument("--min-score", type=float, default=0.5, help="detector score a person needs (default 0.5)")
    who.add_argument("--max-people", type=int, default=20, help="at most this many people a frame (default 20)")
    who.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), action="append",
                     help="a person's box on the first frame, once per person (ids 1, 2, … in this order); "
                          "later frames carry it from the person's keypoints")
    who.add_argument("--keep-ids", metavar="IDS", help="keep only these ids, e.g. 1,3")
    who.add_argument("--merge-ids", metavar="A:B", action="append", default=[],
                     help="B is A (a person lost and found again under a new id); repeatable")
    who.add_argument("--swap-ids", metavar="A:B@FRAME", action="append", default=[],
                     help="from FRAME on, A and B trade ids (a swap where two people crossed); repeatable")
    motion = p.add_argument_group("motion")
    motion.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH, metavar="S",
                        help=f"smoothing over time, 0 (off) to 1 (strong); default {DEFAULT_SMOOTH}")
    motion.add_argument("--identity", default="clip", choices=("clip", "frame"),
                        help="body shape and bone scales: one per person for the clip (the median; default) or "
                             "each frame's own")
    motion.add_argument("--max-frames", type=int, metavar="N", help="only the first N frames")
    out = p.add_argument_group("outputs (all written at the end, together or not at all)")
    out.add_argument("--out", type=Path, help="animated skinned glTF (.glb): one skin per person, a keyframe a frame")
    out.add_argument("--correctives", default="baked", choices=("baked", "none"),
                     help="--out: 'baked' adds a morph target per frame holding what the skin cannot (MHR's pose "
                          "correctives: exact at every frame, a larger file); 'none': the plain skin")
    out.add_argument("--bvh", type=Path, help="BVH motion of one person (the lowest id kept), a frame per frame")
    out.add_argument("--json", type=Path, help="per-frame parameters as JSON Lines (.jsonl)")
    out.add_argument("--overlay-video", type=Path, help="the clip with the meshes drawn over it (.mp4)")
    out.add_argument("--no-clobber", action="store_true", help="refuse to replace existing output files")
    work = p.add_argument_group("resuming")
    work.add_argument("--work-dir", type=Path, metavar="DIR",
                      help="where the per-frame work is kept (default: the user cache); a stopped run resumes from it")
    work.add_argument("--fresh", action="store_true", help="ignore earlier work on this clip and start over")
    run = p.add_argument_group("runtime")
    run.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    run.add_argument("--backend", default="auto", choices=BACKENDS, help=f"backbone runtime (auto: {AUTO_BACKEND})")
    run.add_argument("--precision", default="auto", choices=PRECISIONS,
                     help=f"backbone precision (auto: {AUTO_PRECISION})")
    run.add_argument("--backbone-file", type=Path, help="backbone ONNX (tensorrt) or .pt2 (pt2)")
    run.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                     help="camera intrinsics in pixels (default: focal = frame diagonal, centred)")


def _check_args(args) -> None:
    if args.detect and args.bbox:
        raise UserError("give either --bbox boxes or --detect, not both")
    if not args.detect and not args.bbox:
        raise UserError("who is in the clip? give --detect (the person detector) or --bbox X1 Y1 X2 Y2 per person")
    if not any((args.out, args.bvh, args.json, args.overlay_video)):
        raise UserError("nothing to write: give --out anim.glb and/or --bvh, --json, --overlay-video")
    if not 0.0 <= args.smooth <= 1.0:
        raise UserError(f"--smooth goes from 0 (off) to 1 (strong), got {args.smooth:g}")
    _request(args).check_suffixes()


def _request(args):
    from ..export.clip_outputs import ClipOutputs

    return ClipOutputs(animation=args.out, bvh=args.bvh, jsonl=args.json, overlay_video=args.overlay_video,
                       correctives=args.correctives)


def _printer(what: str):
    state = {"t": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - state["t"] >= PROGRESS_EVERY_S:
            state["t"] = now
            print(f"{what}: {done}/{total}", flush=True)

    return progress


def cmd_video(args) -> None:
    from ..export.output_set import Output, check_outputs
    from ..video.clip_processor import ClipOptions, ClipProcessor, pass_settings
    from ..video.reader import VideoReader
    from ..video.tracking import IdFixes, parse_ids, parse_merges, parse_swaps
    from ..video.work_settings import model_settings
    from .infer import model_dir_from, with_oom_message

    _check_args(args)
    fixes = IdFixes(keep=parse_ids(args.keep_ids), merge=parse_merges(args.merge_ids), swap=parse_swaps(args.swap_ids))
    options = ClipOptions(boxes=tuple(tuple(b) for b in args.bbox or ()), detect_every=args.detect_every,
                          min_score=args.min_score, max_people=args.max_people, max_frames=args.max_frames,
                          intrinsics=tuple(args.intrinsics) if args.intrinsics else None)
    options.check(with_detector=args.detect)
    clip = Output(args.clip, "input clip")
    replace = not args.no_clobber
    check_outputs(_request(args).outputs(), inputs=[clip], replace=replace)
    model_dir = model_dir_from(args.model)
    reader = VideoReader(args.clip)
    with reader:
        info = reader.info
        print(f"clip: {args.clip} ({info.width}x{info.height}, {info.fps:.3g} fps, ~{info.frame_count} frames, "
              f"{info.codec})")
        detector, detector_settings = _detector(args) if args.detect else (None, None)
        from ..pipeline.build import build_pipeline

        pipe = with_oom_message(lambda: build_pipeline(model_dir, args.device, args.precision, backend=args.backend,
                                                       backbone_file=args.backbone_file, progress=print))
        print(f"model: {model_dir} ({pipe.loaded.report.summary()}); backbone: {pipe.backbone.info.label()}")
        settings = pass_settings(options, model_settings(model_dir, pipe, args.precision), detector_settings)
        work = _open_work(args, settings)
        processor = ClipProcessor(pipe, reader, options, work, detector)
        if len(work):
            print(f"resuming: {len(work)} frames done earlier ({work.path})")
        try:
            done = with_oom_message(lambda: processor.run(progress=_printer("frames"), on_note=print))
        except BaseException as exc:  # Ctrl+C, SIGTERM, a crash: every frame done is in the work file
            if not isinstance(exc, UserError):
                print(f"stopped with {len(work)} frames done: run the same command again to resume", flush=True)
            raise
        finally:
            work.close()
    _finish(args, pipe, info, done, fixes, work, replace, clip)


def _detector(args):
    from ..device import resolve_device
    from ..hub_detector import find_installed_detector
    from ..model.detector import load_detector
    from ..video.work_settings import detector_settings

    folder = args.detector or find_installed_detector()
    if folder is None:
        raise UserError("no person detector: download it with `sam3dbody-gui download --detector`, or give "
                        "--detector DIR (or give the people's boxes with --bbox)")
    detector = load_detector(folder, device=resolve_device(args.device))
    note = "; a synthetic detector with random weights" if detector.synthetic else ""
    print(f"detector: {folder}{note}")
    return detector, detector_settings(folder)


def _open_work(args, settings: dict):
    from ..video.work_file import WorkFile
    from ..video.work_settings import default_work_dir

    work = WorkFile.open(args.work_dir or default_work_dir(), args.clip, settings, fresh=args.fresh)
    if work.dropped_tail:
        print("the last frame of the earlier run was cut short: it is done again")
    return work


def _finish(args, pipe, info, done, fixes, work, replace, clip) -> None:
    from ..export.clip_outputs import clip_header, clip_writers
    from ..export.output_set import publish
    from ..video.motion import clip_motion

    if not done.complete:
        raise UserError(f"the pass stopped at {len(done.records)} frames; run the same command again to resume")
    if done.skipped:
        print(f"skipped {len(done.skipped)} frames that do not decode: "
              + ", ".join(str(f) for f, _ in done.skipped[:10]) + (" …" if len(done.skipped) > 10 else ""))
    intrinsics = None
    if args.intrinsics:
        from ..pipeline.preprocess import intrinsics_from

        intrinsics = intrinsics_from(*args.intrinsics)
    motion = clip_motion(done.records, pipe.model, info.size_hw, info.fps, strength=args.smooth,
                         identity=args.identity, fixes=fixes, intrinsics=intrinsics,
                         backend=pipe.backbone.info.label())
    printers = {}

    def progress(what: str, n: int, total: int) -> None:
        printers.setdefault(what, _printer(what))(n, total)

    header = clip_header(args.clip, info.fps, info.size_hw, args.smooth, args.identity)
    writers = clip_writers(_request(args), motion, pipe.model, args.clip, info.fps, header, stop=args.max_frames,
                           progress=progress)
    if args.bvh and len(motion.people) > 1:
        print(f"BVH: id {min(motion.people)} (of {len(motion.people)}; choose another with --keep-ids)")
    publish(writers, inputs=[clip], replace=replace)
    print(f"frames: {len(motion.frames)} decoded, {len(motion.skipped)} skipped; people: "
          + ", ".join(f"id {pid} ({len(p.frames)} frames)" for pid, p in motion.people.items()))
    if done.computed:
        print(f"speed: {done.fps:.2f} frames/s over {done.computed} frames computed now "
              f"(decoding, detector, tracking and pipeline; {done.resumed} resumed)")
    print("jitter (mean joint acceleration, mm/frame²), before → after smoothing: "
          + "; ".join(f"id {pid} {_mm(p.jitter_before_mm)} → {_mm(p.jitter_after_mm)}"
                      for pid, p in motion.people.items()))
    for path in (args.out, args.bvh, args.json, args.overlay_video):
        if path:
            print(f"wrote {path}")
    print(f"work file: {work.path} (kept: other --smooth or id choices reuse it; --fresh starts over)")


def _mm(value: float) -> str:
    return "n/a (under 3 frames in a row)" if value != value else f"{value:.2f}"
