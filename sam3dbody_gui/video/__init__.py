"""Video: a clip read frame by frame, people tracked through it, their motion smoothed.

Qt-free, at the pipeline's layer (it imports only base, model, weights, runtime and pipeline),
so the command line and the window drive the same code:

    reader.py          open a clip (PyAV), frames as (index, time, RGB), seek, corrupt frames skipped
    work_file.py       the per-frame work, appended as JSON Lines: a stopped run resumes
    work_settings.py   what the work file is keyed on (model, detector) and where it is kept
    tracking.py        detections → stable ids (norfair), and the user's id fixes
    box_carry.py       without a detector: each person's next box from their projected keypoints
    clip_processor.py  the pass over a clip: boxes, pipeline, work file, progress, cancel
    motion.py          per person: one identity, the pose filtered over time, re-rigged
    smoothing.py       the One-Euro filter on rotation-safe channels, and the jitter measure
"""
