"""The window's id list as edits of `IdFixes` (tracking.py): keep an id or not, merge two ids,
split one at a frame. Each edit gives new fixes and is checked against the pass's records
(`apply_id_fixes` refuses a merge of two people seen in one frame); nothing is recomputed but
the motion.

A split is written in the fixes' own terms, swaps then merges: from the frame on, every raw id
that shows as the person there trades places with a fresh id (a swap with an id nobody has is a
rename from that frame on), and the fresh ids are merged into the first of them, so a person
made of merged tracks splits as a whole. The command line's --swap-ids/--merge-ids say the same.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from ..errors import UserError
from .tracking import IdFixes, apply_id_fixes


def _people(records: Iterable[dict]) -> list[tuple[int, list[int]]]:
    return [(r["frame"], [p["id"] for p in r["people"]]) for r in records if not r.get("skipped")]


def raw_ids(records: Iterable[dict]) -> set[int]:
    return {pid for _, ids in _people(records) for pid in ids}


def id_frames(records: Sequence[dict], fixes: IdFixes) -> dict[int, int]:
    """Every id after the swaps and merges (kept or not) → the number of frames it is in."""
    mapping = apply_id_fixes(_people(records), replace(fixes, keep=None))
    counts: dict[int, int] = {}
    for new in mapping.values():
        counts[new] = counts.get(new, 0) + 1
    return dict(sorted(counts.items()))


def checked(fixes: IdFixes, records: Sequence[dict]) -> IdFixes:
    """`fixes` when they fit the records; UserError (the reason) when they do not."""
    apply_id_fixes(_people(records), fixes)
    return fixes


def with_kept(fixes: IdFixes, records: Sequence[dict], person: int, keep: bool) -> IdFixes:
    everyone = set(id_frames(records, fixes))
    kept = set(everyone if fixes.keep is None else fixes.keep)
    kept = (kept | {person}) if keep else (kept - {person})
    return replace(fixes, keep=None if kept >= everyone else frozenset(kept))


def merged(fixes: IdFixes, records: Sequence[dict], a: int, b: int) -> IdFixes:
    """The two ids as one person, under the lower id."""
    if a == b:
        raise UserError("choose two different ids to merge")
    keep_id, gone = min(a, b), max(a, b)
    keep = fixes.keep
    if keep is not None and (a in keep or b in keep):
        keep = frozenset((keep - {gone}) | {keep_id})
    return checked(replace(fixes, merge=fixes.merge + ((keep_id, gone),), keep=keep), records)


def split(fixes: IdFixes, records: Sequence[dict], person: int, frame: int) -> tuple[IdFixes, int]:
    """`person` from `frame` on as a new id; returns the fixes and the new id."""
    swapped, merging = IdFixes(swap=fixes.swap), IdFixes(merge=fixes.merge)
    # Ids after the swaps (what a swap appended last sees), by frame; merges do not depend on it.
    shown = [(f, [swapped.map(raw, f) for raw in ids]) for f, ids in _people(records)]
    sources = sorted({s for f, ids in shown if f >= frame for s in ids if merging.map(s, f) == person})
    if not sources:
        raise UserError(f"id {person} is not in frame {frame} or after it: nothing to split")
    if not any(merging.map(s, f) == person for f, ids in shown if f < frame for s in ids):
        raise UserError(f"id {person} begins at frame {frame}: split it at a later frame")
    taken = raw_ids(records) | {i for s in fixes.swap for i in s[:2]} | {i for m in fixes.merge for i in m}
    fresh = list(range(max(taken) + 1, max(taken) + 1 + len(sources)))
    swaps = tuple((s, new, frame) for s, new in zip(sources, fresh))
    merges = tuple((fresh[0], other) for other in fresh[1:])
    keep = fixes.keep if fixes.keep is None or person not in fixes.keep else fixes.keep | {fresh[0]}
    out = replace(fixes, swap=fixes.swap + swaps, merge=fixes.merge + merges, keep=keep)
    return checked(out, records), fresh[0]
