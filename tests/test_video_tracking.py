"""Ids through a clip (norfair), the user's id fixes, the boxes carried without a detector, and the
work file a stopped run resumes from. No model: these are the pieces around it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.video.box_carry import box_around_keypoints
from sam3dbody_gui.video.tracking import IdFixes, PeopleTracker, apply_id_fixes, parse_merges, parse_swaps
from sam3dbody_gui.video.work_file import WorkFile


def _crossing(frames: int):
    """Two people walking towards each other and past: per frame their true boxes (a, b)."""
    for f in range(frames):
        yield (np.array([10 + 5 * f, 20, 40 + 5 * f, 100.0]), np.array([130 - 5 * f, 22, 160 - 5 * f, 102.0]))


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ids_stay_with_their_people_through_a_crossing(seed):
    rng = np.random.default_rng(seed)
    tracker = PeopleTracker()
    first = None
    for f, (a, b) in enumerate(_crossing(24)):
        noisy = [a + rng.normal(0, 1.5, 4), b + rng.normal(0, 1.5, 4)]
        order = rng.permutation(2)  # a detector lists people in any order
        out = tracker.update([noisy[i] for i in order], [0.9, 0.8])
        assert len(out) == 2
        if abs(a[0] - b[0]) < 10:
            continue  # the frames of the crossing: which box is whose is not defined there
        ids = {}
        for t in out:  # which true person each id's box belongs to
            ids[t.id] = int(np.argmin([np.abs(np.asarray(t.box) - truth).sum() for truth in (a, b)]))
        if first is None:
            first = ids
        assert ids == first, f"frame {f}: ids swapped ({ids} vs {first})"
    # The test means something: at the crossing the two boxes overlap most of the way.
    a, b = list(_crossing(24))[12]
    assert _iou(a, b) > 0.9


def test_a_missed_detection_keeps_the_id_and_a_newcomer_gets_a_new_one():
    tracker = PeopleTracker()
    box = np.array([10.0, 10, 40, 90])
    assert [t.id for t in tracker.update([box])] == [1]
    assert tracker.update([]) == []  # nobody matched this frame: nobody reported
    assert [t.id for t in tracker.update([box + 2])] == [1]
    out = tracker.update([box + 3, [100, 10, 130, 90]])
    assert [t.id for t in out] == [1, 2]


def test_id_fixes_merge_swap_and_keep():
    frames = [(0, [1, 2]), (1, [1, 2]), (2, [1, 3]), (3, [2, 1])]
    # id 2 was lost at frame 2 and came back as 3; from frame 3 on ids 1 and 2 crossed over.
    fixes = IdFixes(merge=parse_merges(["2:3"]), swap=parse_swaps(["1:2@3"]))
    mapped = apply_id_fixes(frames, fixes)
    assert [mapped[(2, 3)], mapped[(3, 1)], mapped[(3, 2)]] == [2, 2, 1]
    kept = apply_id_fixes(frames, IdFixes(keep=frozenset({1})))
    assert sorted(kept) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    with pytest.raises(UserError, match="both in frame 0"):
        apply_id_fixes(frames, IdFixes(merge=((1, 2),)))
    with pytest.raises(UserError, match="A:B@FRAME"):
        parse_swaps(["1:2"])


def test_the_carried_box_is_the_padded_box_around_the_keypoints_in_the_picture():
    kp = np.array([[50.0, 20], [70, 20], [60, 60], [55, 100], [65, 100], [np.nan, 5], [500, 500]])
    box = box_around_keypoints(kp, (120, 160), pad=0.1)
    assert box == pytest.approx((50 - 8, 20 - 8, 70 + 8, 100 + 8))
    # Clipped to the picture; gone when the body has left it.
    assert box_around_keypoints(kp - [45, 0], (120, 160))[0] == 0.0
    assert box_around_keypoints(kp + [300, 0], (120, 160)) is None


def test_the_work_file_reads_back_what_was_appended_and_drops_a_line_cut_short(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"some clip bytes")
    settings = {"model": "m", "boxes": [[1, 2, 3, 4]]}
    work = WorkFile.open(tmp_path / "work", clip, settings)
    value = float(np.float32(0.1))  # what a float32 becomes in JSON must come back the same
    for f in range(3):
        work.append({"frame": f, "people": [{"x": value}]})
    work.close()
    with open(work.path, "a") as f:
        f.write('{"frame": 3, "peo')  # a crash in the middle of a line
    again = WorkFile.open(tmp_path / "work", clip, settings)
    assert sorted(again.records) == [0, 1, 2] and again.dropped_tail
    assert np.float32(again.records[2]["people"][0]["x"]) == np.float32(0.1)
    again.append({"frame": 3, "people": []})
    again.close()
    lines = again.path.read_text().splitlines()
    assert [json.loads(line).get("frame") for line in lines[1:]] == [0, 1, 2, 3]
    # Other settings, or another clip's content: another work file; --fresh forgets.
    assert len(WorkFile.open(tmp_path / "work", clip, {**settings, "model": "n"})) == 0
    clip.write_bytes(b"an edited clip")
    assert len(WorkFile.open(tmp_path / "work", clip, settings)) == 0
    clip.write_bytes(b"some clip bytes")
    assert len(WorkFile.open(tmp_path / "work", clip, settings)) == 4
    assert len(WorkFile.open(tmp_path / "work", clip, settings, fresh=True)) == 0
