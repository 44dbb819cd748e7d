"""`infer` and `demo`: a photo and its people → the files asked for, all or none.

Everything that can be checked is checked before the model loads (1 B parameters): the outputs,
the photo, the boxes, the camera, the model folder's config; with --detect, the detector runs
first and the per-person outputs are checked once the people are known.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..app_paths import MODEL_ENV
from ..bundled import SAMPLE_BOX, sample_image_path
from ..errors import UserError

# Rows and columns around the body crop's square also read from a large photo in full mode, as
# a fraction of its side: the hand crops come from inside it (a hand box padded by 0.9).
FULL_MODE_MARGIN = 0.25


def _crop_pixels(photo, box, crop_size: int, mode: str):
    """The array the pipeline crops from (for a large photo, only the pixels its crops read),
    made before the model loads; a box too large to compute is refused here."""
    import numpy as np

    from ..errors import BoxError
    from ..pipeline.box import format_box
    from ..pipeline.preprocess import crop_geometry, sampled_rows_cols, square_rows_cols

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


def _pixels_for_people(photo, boxes, crop_size: int, mode: str):
    """One array every person's crop reads from (a large photo: the union of what each reads)."""
    if not photo.reduced:
        for box in boxes:
            _crop_pixels(photo, box, crop_size, mode)  # refuses a box whose crop overflows
        return photo.full
    if len(boxes) == 1:
        return _crop_pixels(photo, boxes[0], crop_size, mode)
    import numpy as np

    from ..pipeline.preprocess import crop_geometry, sampled_rows_cols, square_rows_cols

    rows, cols = [], []
    for box in boxes:
        _crop_pixels(photo, box, crop_size, "body")  # the overflow check
        geom = crop_geometry(box, photo.size_hw, crop_size=crop_size)
        r, c = square_rows_cols(geom, FULL_MODE_MARGIN) if mode == "full" else sampled_rows_cols(geom)
        rows.append(r)
        cols.append(c)
    return photo.pixels(np.unique(np.concatenate(rows)), np.unique(np.concatenate(cols)))


def format_timings(timings: dict[str, float]) -> str:
    return "latency (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())


def with_oom_message(fn):
    import torch

    try:
        return fn()
    except torch.cuda.OutOfMemoryError:
        raise UserError("the GPU ran out of memory; close other GPU programs or use --device cpu") from None
    except MemoryError:
        raise UserError("out of memory: the model does not fit in this machine's RAM") from None


def model_dir_from(arg: Optional[Path]) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    raise UserError(
        f"no model folder: pass --model DIR or set {MODEL_ENV}. "
        "For a demo with random weights: sam3dbody-gui make-synthetic DIR --size tiny"
    )


def run_and_save(image_path: Path, boxes: Optional[list], model_dir: Path, args, request, detect=None) -> None:
    """`boxes`: the given person boxes (None: the whole photo, one person). `detect`: a callable
    (photo pixels) → (boxes, scores, note) that finds the people instead."""
    from ..export.display import result_on_display
    from ..export.output_set import Output, check_outputs, publish
    from ..export.service import plan_writers
    from ..model.config import load_model_config
    from ..model.model_folder import find_model_files
    from ..pipeline.box import validate_box
    from ..pipeline.image_io import load_photo
    from ..pipeline.build import build_pipeline
    from ..pipeline.preprocess import intrinsics_from
    from .keypoint_args import parse_keypoint_args, prompts_per_person

    keypoints = parse_keypoint_args(getattr(args, "keypoint", None))  # unknown names: before any work
    boxes = list(boxes) if boxes else [None]
    cap = getattr(args, "max_people", None)
    if cap is not None and len(boxes) > cap:  # 200 boxes: a run of minutes and a huge scene, say so
        print(f"note: kept the first {cap} of {len(boxes)} boxes (--max-people {cap})")
        boxes = boxes[:cap]
    request.check_suffixes(None if detect else len(boxes))
    protected = [Output(image_path, "input photo")]
    replace = not getattr(args, "no_clobber", False)
    check_outputs(request.outputs(None if detect else len(boxes)), inputs=protected, replace=replace)
    photo = load_photo(image_path)
    sources, scores = ["user"] * len(boxes), [None] * len(boxes)
    if detect is not None:
        boxes, scores, note = detect(photo.display if photo.reduced else photo.full, photo)
        if not boxes:
            raise UserError(f"no person found in {image_path} ({note}); give a box with --bbox instead")
        print(f"detector: {len(boxes)} {'person' if len(boxes) == 1 else 'people'}{f' ({note})' if note else ''}")
        sources = ["detector"] * len(boxes)
        request.check_suffixes(len(boxes))
        check_outputs(request.outputs(len(boxes)), inputs=protected, replace=replace)
    for box in boxes:
        validate_box(box, photo.size_hw)
    from ..pipeline.photo_camera import photo_camera

    camera = photo_camera(image_path, photo.size_hw,
                          intrinsics_from(*args.intrinsics) if getattr(args, "intrinsics", None) else None)
    k = camera.intrinsics
    heights = list(getattr(args, "height", None) or [])
    if heights and len(heights) not in (1, len(boxes)):
        raise UserError(f"give one --height for everyone or one per person ({len(boxes)}), not {len(heights)}")
    mode = getattr(args, "mode", "body")
    config = load_model_config(find_model_files(model_dir).config)
    crop_size = config.crop_size
    prompts = prompts_per_person(keypoints, len(boxes))
    if prompts is not None:  # the model's limit and each person's crop, before the model loads
        from ..pipeline.preprocess import crop_geometry
        from ..pipeline.prompted_decode import person_prompts

        person_prompts(prompts, [crop_geometry(b, photo.size_hw, crop_size=crop_size) for b in boxes],
                       config.max_num_clicks)
    pixels = _pixels_for_people(photo, boxes, crop_size, mode)

    from ..pipeline.warm_start import warm_start_wanted

    # Warm: the photo runs on the eager path at once (warm_start.py), in the fast path's precision.
    # No background build: one photo could never use it, and the process must not end while a
    # compile runs on another thread (seen on the CPU: an abort at exit).
    pipeline = with_oom_message(lambda: build_pipeline(
        model_dir, args.device, args.precision, backend=args.backend, backbone_file=args.backbone_file, progress=print,
        warm_start=warm_start_wanted(), background_build=False))
    print(f"model: {model_dir} ({pipeline.loaded.report.summary()})")
    print(f"backbone: {pipeline.backbone.info.label()}; decoder: {pipeline.decoder_label}")
    results = with_oom_message(lambda: pipeline.run_people(pixels, boxes, k, mode=mode, prompts=prompts))
    if pipeline.fast_path_status:
        print(f"fast path: {pipeline.fast_path_status}; this photo ran on {results[0].backend}")
    for i, said in enumerate(prompts or []):
        if said:
            print(f"keypoint prompts{'' if len(boxes) == 1 else f' (person {i})'}: "
                  + ", ".join(f"{q.name} at ({q.x:g}, {q.y:g})" for q in said))
    del pixels  # a large photo's crop pixels are not needed any more
    results = _finish_people(pipeline, results, camera.source, heights)
    # A large photo's pictures are drawn on its display copy: the full-size picture is never in memory.
    shown = [result_on_display(r, photo.display.shape[:2]) for r in results] if photo.reduced else results
    writers, report = plan_writers(request, photo.display, results, shown, sources, scores, progress=print,
                                   rig=pipeline.model.mhr)
    publish(writers, inputs=protected, replace=replace)  # all files, or none
    if len(results) > 1:
        print(f"people: {len(results)}")
    for line in report:
        print(line)
    print(format_timings(results[0].timings_ms))


def _finish_people(pipeline, results, camera_source: str, heights: list[float]):
    """Known heights applied, the camera's source noted, and each person's warnings."""
    from ..pipeline.metric_scale import rest_height_m, scale_to_height
    from ..pipeline.person_warnings import person_warnings

    if heights:
        heights = heights * len(results) if len(heights) == 1 else heights
        results = [scale_to_height(r, h, rest_height_m(pipeline.model, r)) for r, h in zip(results, heights)]
    for result, said in zip(results, person_warnings(results)):
        result.camera_source = camera_source
        result.warnings = said
        for line in said:
            print(f"warning: {line}")
    return results


def cmd_infer(args) -> None:
    from ..export.service import OutputRequest

    request = OutputRequest(mesh=args.out, out_dir=args.out_dir, overlay=args.overlay, pca=args.pca, json=args.json,
                            sheet=args.sheet, turntable=args.turntable, frame=args.frame, rigged=args.rigged,
                            bvh=args.bvh)
    if not request.any():
        raise UserError("nothing to write: give --out mesh.obj and/or --overlay, --pca, --json, --sheet, --turntable, "
                        "--bvh")
    if args.detect and args.bbox:
        raise UserError("give either --bbox boxes or --detect, not both")
    detect = None
    if args.detect:
        from .detect import detector_for_cli

        detect = detector_for_cli(args)
    run_and_save(args.image, args.bbox, model_dir_from(args.model), args, request, detect)


def cmd_demo(args) -> None:
    from ..export.service import OutputRequest
    from ..synthetic.demo import ensure_demo_model

    model_dir = args.model or ensure_demo_model()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    print(f"sample photo: {sample_image_path().name}, box {list(SAMPLE_BOX)}")
    request = OutputRequest(mesh=out / "mesh.obj", overlay=out / "overlay.png", pca=out / "pca.png",
                            json=out / "params.json", frame=args.frame)
    run_and_save(sample_image_path(), [SAMPLE_BOX], model_dir, args, request)
    if args.model is None:
        print("note: the demo model is a small stand-in with RANDOM weights (1,114 vertices, not the real "
              "18,439-vertex MHR body): its mesh shows the pipeline working, not anyone's pose. The real model: "
              "accept the licence of facebook/sam-3d-body-dinov3 on Hugging Face, then `sam3dbody-gui download`.")
