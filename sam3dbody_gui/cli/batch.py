"""`batch INPUT… --model DIR --out OUTDIR`: every person of many photos, resumable (batch/)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..app_paths import MODEL_ENV
from ..export.mesh_file import FRAME_HELP, FRAMES
from ..runtime.choices import AUTO_BACKEND, AUTO_PRECISION, BACKENDS, MODE_HELP, MODES, PRECISIONS

DEFAULT_MAX_PEOPLE = 20  # as `infer --detect`
ENGINES = ("local", "ray")


def default_writers() -> int:
    """Half the cores, 1 to 8: the rest decode, detect and feed the GPU. A GLB person took 23 ms of
    a core on the H200's host: a quarter of its 16 cores (4 writers) would cap a run at ~170
    persons/s, below what the GPU does; 8 writers allow ~350."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch", help="folders, globs or lists of photos and videos → every person's mesh + OUTDIR/manifest.jsonl "
             "(resumable; locally or on Ray)",
        description="Every person of every photo (and of every frame of a video) → mesh files and one line each "
                    "in OUTDIR/manifest.jsonl. A rerun skips what is done (same file content, same settings); a "
                    "bad file is a manifest line, not a stop. Ctrl+C leaves no half-written file.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a folder (searched recursively), a glob ('shots/**/*.jpg'), a .txt/.lst list of paths "
                        "(one a line), or a file; videos (mp4, mov, mkv, webm, avi, m4v): every frame")
    p.add_argument("--model", type=Path, help=f"model folder (default: ${MODEL_ENV})")
    p.add_argument("--out", type=Path, required=True, metavar="OUTDIR", help="output folder (made if missing)")
    people = p.add_mutually_exclusive_group()
    people.add_argument("--detect", action="store_true", help="every person the person detector finds")
    people.add_argument("--whole-image", action="store_true",
                        help="the photo as one person's crop (the default; for photos already cropped to one person)")
    p.add_argument("--detector", type=Path, metavar="DIR",
                   help="detector folder (default: the downloaded one; `download --detector`)")
    p.add_argument("--min-score", type=float, default=0.5, help="detector score a person needs (default 0.5)")
    p.add_argument("--max-people", type=int, default=DEFAULT_MAX_PEOPLE,
                   help=f"at most this many people a photo, the highest scores first (default {DEFAULT_MAX_PEOPLE})")
    p.add_argument("--formats", default="obj",
                   help="files per person, comma list of obj, ply, glb, stl, json (params.json) (default: obj)")
    p.add_argument("--frame", default="camera", choices=FRAMES,
                   help="mesh coordinates: " + "; ".join(f"{f}: {h}" for f, h in FRAME_HELP.items()))
    p.add_argument("--mode", default="body", choices=MODES, help="; ".join(f"{m}: {h}" for m, h in MODE_HELP.items()))
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N] (local engine)")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=f"backbone runtime (auto: {AUTO_BACKEND})")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help=f"backbone precision (auto: {AUTO_PRECISION})")
    p.add_argument("--engine", default="local", choices=ENGINES,
                   help="local: this process (default); ray: a Ray Data pipeline, one model per GPU "
                        "(pip install 'sam3dbody-gui[cluster]')")
    p.add_argument("--address", help="--engine ray: the cluster to join ('auto': the one this machine is part of; "
                                     "default: start a Ray instance on this machine)")
    p.add_argument("--actors", type=int, help="--engine ray: model actors (default: one per GPU of the cluster, "
                                              "or 1 without GPUs)")
    p.add_argument("--readers", type=int, default=2, help="--engine local: decoding threads (default 2)")
    p.add_argument("--writers", type=int, default=default_writers(),
                   help="--engine local: processes writing the mesh files (an OBJ of the real model's person is "
                        f"~90 ms of a core, a GLB ~10 ms; default here {default_writers()}: half the cores, "
                        "1 = the writer thread, no extra process)")
    p.add_argument("--parquet", action="store_true", help="also OUTDIR/manifest.parquet (needs pyarrow)")
    return p


def cmd_batch(args) -> None:
    from ..batch.inputs import count_kinds, expand_inputs
    from ..batch.settings import BatchSettings, parse_formats
    from ..errors import UserError
    from .infer import model_dir_from

    detector_dir = None
    if args.detect:
        from ..hub_detector import find_installed_detector

        detector_dir = args.detector or find_installed_detector()
    elif args.detector is not None:
        raise UserError("--detector is for --detect: give both, or neither")
    if args.readers < 1 or args.writers < 1:
        raise UserError("--readers and --writers must be at least 1")
    if args.actors is not None and args.actors < 1:
        raise UserError("--actors must be at least 1")
    if args.engine != "ray" and (args.address or args.actors):
        raise UserError("--address and --actors are for --engine ray")
    settings = BatchSettings(
        model_dir=model_dir_from(args.model), formats=parse_formats(args.formats), frame=args.frame, mode=args.mode,
        people="detect" if args.detect else "whole", detector_dir=detector_dir, min_score=args.min_score,
        max_people=args.max_people, device=args.device, backend=args.backend, precision=args.precision).checked()
    sources = expand_inputs(args.inputs, args.out)
    kinds = count_kinds(sources)
    print(f"batch: {kinds.get('photo', 0)} photos" + (f", {kinds['video']} videos" if kinds.get("video") else "") +
          f" → {args.out} (settings {settings.fingerprint()}, engine {args.engine})")
    if args.engine == "ray":
        from ..batch.ray_engine import run_ray

        tally = run_ray(sources, settings, args.out, address=args.address, actors=args.actors, parquet=args.parquet)
    else:
        from ..batch.local_engine import run_local

        tally = run_local(sources, settings, args.out, readers=args.readers, writers=args.writers,
                          parquet=args.parquet)
    print(tally.summary())
    print(f"manifest: {args.out / 'manifest.jsonl'}")
