"""`infer --detect`: the person detector finds the boxes before the model loads."""

from __future__ import annotations

from ..errors import UserError


def detector_for_cli(args):
    """A callable (pixels, photo) → (boxes, scores, note) for cli.infer.run_and_save, from
    --detector (or the downloaded detector), --min-score and --max-people."""
    from ..device import resolve_device
    from ..hub_detector import find_installed_detector
    from ..model.detector import load_detector

    folder = args.detector or find_installed_detector()
    if folder is None:
        raise UserError("no person detector: download it with `sam3dbody-gui download --detector`, or give "
                        "--detector DIR (or give the people's boxes with --bbox)")
    if args.max_people < 1:
        raise UserError("--max-people must be at least 1")

    def detect(pixels, photo):
        detector = load_detector(folder, device=resolve_device(args.device))
        found = detector.detect(pixels, min_score=args.min_score, max_people=args.max_people,
                                photo_hw=photo.size_hw)  # boxes in full-resolution pixels
        note = found.message()
        if detector.synthetic:
            note += "; a synthetic detector with random weights"
        return [tuple(p.box_xyxy) for p in found.people], [p.score for p in found.people], note

    return detect
