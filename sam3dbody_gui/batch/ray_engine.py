"""The Ray engine: the same steps as the local engine, as a Ray Data pipeline over a cluster.

    from_items(sources) → flat_map(read: hash, skip, decode; CPU tasks; a video becomes its
            frames, decoded in order by one task, each frame a row of its own)
      → map_batches(people: a detector actor per GPU, DETECT_BATCH photos a call; or the
            whole photo, a task)
      → map_batches(infer: the model actor pool, one actor per GPU, the model loaded once per
            actor; the people of INFER_PHOTOS photos in model batches of up to PERSON_BATCH, as
            the local engine fills them, the crop made on the GPU)
      → map(write: mesh / JSON files, CPU tasks) → the driver appends the manifest lines

Same functions (photo_work.py), same folder names, same lines as the local engine. The driver
alone writes the manifest (one writer, input order kept: preserve_order), so resuming works as
locally; the files are written by the workers, so OUTDIR must be a folder every node sees (NFS,
Lustre, a mounted bucket) — and so must the inputs and the model folder.

A Job crosses stages as a pickled blob in one column: it holds a variable-size photo and a list
of people, which Arrow's columns would have to be taught; between stages of our own code a
pickle is the honest format. Ray is the `cluster` extra, imported only here.
"""

from __future__ import annotations

import logging
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TextIO

from ..errors import UserError
from . import photo_work
from .inputs import Source
from .local_engine import DETECT_BATCH, PERSON_BATCH, load_person_detector, load_pipeline, prepare_output
from .manifest import encode_lines, write_parquet
from .progress import Progress, Tally, outcome
from .settings import BatchSettings
from .video_work import source_jobs

INSTALL_HINT = "pip install 'sam3dbody-gui[cluster]' (or: pip install 'ray[data]>=2.9')"
# On GPUs the body model and the detector share each GPU (the detector is small); on a CPU-only
# cluster (and the tests) the actors take half a CPU each, so that the read and write tasks of a
# small machine still get a CPU beside them.
INFER_GPUS, DETECT_GPUS = 0.8, 0.2
CPU_ACTOR_CPUS = 0.5
PHOTOS_PER_BLOCK = 4
# Photos an inference actor takes at a time (1–4 people each fill a few model batches of up to
# PERSON_BATCH); more would hold finished photos back from the writers.
INFER_PHOTOS = 8


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    return ray


def _pack(job: photo_work.Job) -> dict:
    return {"index": job.index, "job": pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)}


def _unpack(row: dict) -> photo_work.Job:
    return pickle.loads(row["job"])


def _read(row: dict, fingerprint: str, done: set) -> Iterator[dict]:
    job = photo_work.Job(int(row["index"]), row["path"], row["kind"])
    for one in source_jobs(job, fingerprint, done):
        yield _pack(one)


def _whole_image(row: dict, settings: BatchSettings, fingerprint: str) -> dict:
    return _pack(photo_work.find_people(_unpack(row), settings, fingerprint))


def _actor_device(settings: BatchSettings) -> str:
    """An actor's device: "auto" is its GPU when Ray gave it one (Ray points CUDA_VISIBLE_DEVICES
    at it, so it is cuda:0 inside), else the CPU, even on a node with GPUs for others."""
    import ray

    if settings.device != "auto":
        return settings.device
    return "auto" if ray.get_gpu_ids() else "cpu"


def _jobs(batch: dict) -> list[photo_work.Job]:
    return [pickle.loads(blob) for blob in batch["job"]]


def _packed(jobs: Sequence[photo_work.Job]) -> dict:
    return {"index": [job.index for job in jobs],
            "job": [pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL) for job in jobs]}


def person_groups(jobs: Sequence[photo_work.Job], limit: int) -> Iterator[list[photo_work.Job]]:
    """Consecutive jobs in groups of at most `limit` people (a photo with more is a group of its
    own): the model's batch, as the local engine fills it."""
    group: list[photo_work.Job] = []
    for job in jobs:
        if group and sum(map(photo_work.persons_in, group)) + photo_work.persons_in(job) > limit:
            yield group
            group = []
        group.append(job)
    if group:
        yield group


class _Detect:
    """An actor: the detector loaded once, by the first photo that needs it (a rerun that skips
    everything loads nothing), run once for a batch of photos as the local engine does."""

    def __init__(self, settings: BatchSettings, fingerprint: str) -> None:
        self.settings, self.fingerprint, self.detector = settings, fingerprint, None

    def __call__(self, batch: dict) -> dict:
        jobs = _jobs(batch)
        if any(not job.settled for job in jobs) and self.detector is None:
            self.detector = load_person_detector(replace(self.settings, device=_actor_device(self.settings)))
        return _packed(photo_work.find_people_many(jobs, self.settings, self.fingerprint, self.detector))


class _Infer:
    """An actor: the model loaded once per actor (per GPU), by its first photo; the people of a
    batch of photos run as one model batch of up to PERSON_BATCH, as in the local engine."""

    def __init__(self, settings: BatchSettings, fingerprint: str) -> None:
        self.settings, self.fingerprint, self.pipe = settings, fingerprint, None

    def __call__(self, batch: dict) -> dict:
        jobs = _jobs(batch)
        if any(not job.settled for job in jobs) and self.pipe is None:
            self.pipe = load_pipeline(replace(self.settings, device=_actor_device(self.settings)), lambda m: None)
        done: list[photo_work.Job] = []
        for group in person_groups(jobs, PERSON_BATCH):
            done.extend(photo_work.infer_many(group, self.pipe, self.settings, self.fingerprint))
        return _packed(done)


def _write(row: dict, out_dir: str, settings: BatchSettings, fingerprint: str) -> dict:
    job = _unpack(row)
    lines = photo_work.write(job, Path(out_dir), settings, fingerprint)
    status, persons = outcome(lines)
    return {"index": job.index, "kind": job.kind, "skipped": job.skipped, "status": status, "persons": persons,
            "lines": encode_lines(lines)}


def build_dataset(sources: Sequence[Source], settings: BatchSettings, out_dir: Path, done: set, actors: int,
                  gpus: bool):
    """The pipeline, not yet run (Ray Data is lazy): rows come out of iter_rows()."""
    import ray.data

    fp = settings.fingerprint()
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the manifest in input order, as the local engine's
    ctx.enable_progress_bars = False  # ours counts inputs, rates and time left; Ray's would interleave
    items = [{"index": i, "path": str(s.path), "kind": s.kind} for i, s in enumerate(sources)]
    # Small blocks: a block is the unit a stage hands on, so a few photos each keeps every stage
    # busy from the first photos on, and a lost worker costs only its block.
    ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // PHOTOS_PER_BLOCK)))
    actor = {"num_gpus": INFER_GPUS} if gpus else {"num_cpus": CPU_ACTOR_CPUS}
    ds = ds.flat_map(_read, fn_kwargs={"fingerprint": fp, "done": done})
    if settings.people == "detect":
        detect = {"num_gpus": DETECT_GPUS} if gpus else {"num_cpus": CPU_ACTOR_CPUS}
        ds = ds.map_batches(_Detect, fn_constructor_args=(settings, fp),
                            compute=ray.data.ActorPoolStrategy(size=actors), batch_size=DETECT_BATCH,
                            batch_format="numpy", **detect)
    else:
        ds = ds.map(_whole_image, fn_kwargs={"settings": settings, "fingerprint": fp}, num_cpus=0.1)
    ds = ds.map_batches(_Infer, fn_constructor_args=(settings, fp), compute=ray.data.ActorPoolStrategy(size=actors),
                        batch_size=INFER_PHOTOS, batch_format="numpy", **actor)
    return ds.map(_write, fn_kwargs={"out_dir": str(out_dir), "settings": settings, "fingerprint": fp},
                  num_cpus=CPU_ACTOR_CPUS)


def run_ray(sources: Sequence[Source], settings: BatchSettings, out_dir: Path, *, address: Optional[str] = None,
            actors: Optional[int] = None, parquet: bool = False, log: Callable[[str], None] = print,
            progress_out: TextIO = sys.stderr, bar: Optional[bool] = None) -> Tally:
    """Run the batch on a Ray cluster: the one at `address`, the one this process already joined
    (ray.init before), or a new one on this machine."""
    ray = _ray()
    settings = settings if settings.identities else settings.checked()
    out_dir = Path(out_dir).resolve()  # workers may start elsewhere: every path they get is absolute
    settings = replace(settings, model_dir=Path(settings.model_dir).resolve(),
                       detector_dir=Path(settings.detector_dir).resolve() if settings.detector_dir else None)
    manifest = prepare_output(out_dir, settings, log)
    # Ray Data's INFO lines (execution plans, per-operator progress) would bury ours.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            manifest.close()
            raise UserError(f"cannot join the Ray cluster at {address or 'this machine'}: {exc}") from None
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(1, gpus)
    log(f"ray: {actors} model actor{'s' if actors > 1 else ''} on "
        f"{f'{gpus} GPUs' if gpus else 'CPUs'} ({int(ray.cluster_resources().get('CPU', 0))} CPUs in the cluster)")
    tally = Tally(inputs=len(sources))
    progress = Progress(tally, progress_out, bar)
    try:
        ds = build_dataset(sources, settings, out_dir, manifest.done, actors, gpus > 0)
        for row in ds.iter_rows():
            manifest.append_encoded(row["lines"])
            progress.update(row["kind"], row["status"], int(row["persons"]), bool(row["skipped"]))
    finally:
        progress.close()
        manifest.close()
    if parquet:
        written = write_parquet(out_dir)
        log(f"parquet manifest: {written}" if written else "no Parquet manifest: pyarrow is not installed")
    return tally
