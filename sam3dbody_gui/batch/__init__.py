"""`sam3dbody-gui batch`: many photos and videos → every person's mesh (a video: in every
frame) and one manifest line each, resumable, on one machine or on a Ray cluster.

    inputs.py        INPUT arguments (folders, globs, lists of paths) → the sources, in order
    settings.py      what a run computes, and its fingerprint (part of every job's key)
    resume.py        content hashes, job keys, what a previous run finished, leftover temp files
    photo_work.py    one photo's steps, shared by both engines: read, people, infer, write
    video_work.py    a video as jobs: its frames, decoded in order (video/reader.py), then its line
    manifest.py      manifest.jsonl (append-only, one line per person or per failed input), Parquet
    progress.py      the progress bar (tqdm on a terminal, a plain line otherwise)
    local_engine.py  one process: reader threads → detector → model → writer thread
    ray_engine.py    the same steps as a Ray Data pipeline (the `cluster` extra)

Both engines run the same functions of photo_work.py and video_work.py, so they write the same
files and lines.
"""
