"""The rig's skeleton and skin recovered from its outputs alone, for a rig whose TorchScript
does not expose them (MHR's README: "limited access to model properties").

What the outputs can tell, and how:
  * bind pose: the joint transforms at the zero pose (MHR's rest mesh is skinned from there);
  * which model parameters move which joints: one parameter at a time, from two base poses;
  * rigid groups: joints whose relative transform never changes over sampled poses (a joint with
    no parameters of its own moves rigidly with its parent). Inside a group the outputs cannot
    tell who hangs from whom (any member is an equally valid parent, the posed skeleton is the
    same), so members hang from the group's pivot: the member that stays put when the group's
    own parameters turn it;
  * a group's parent: among the groups whose parameters are a proper subset of its own, the one
    relative to which it does not move while those parameters change, the nearest such ancestor
    (most parameters) winning;
  * skin weights: per vertex, a non-negative, sum-to-one least-squares fit of linear blend
    skinning to the rig's vertices over sampled poses (as skinning decomposition does): eight
    candidate bones (the best single-bone fits), then the four heaviest refitted. Weights land on
    the group's pivot joint, since all members of a group move alike.
Errors are in millimetres, on poses not used in the fit. `rig_skeleton` is the entry point:
it reads the skeleton where the rig has it and fits it otherwise.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .rig_skeleton import (NUM_MODEL_PARAMS, RigLayoutError, RigSkeleton, call_rig, check_poses, generic_names,
                           lbs_error_mm, read_rig_skeleton, skin_vertices, zero_inputs)
from .skel_state import invert_similarity

STEP = 0.25  # how far one parameter is moved to see what it moves (rad, cm/10 or log2 units)
ROT_TOL, POS_TOL = 1e-4, 1e-3  # what counts as "moved": rotation entries / centimetres, above fp32 noise
CANDIDATES = 24
# Fit poses twice as wide as the check poses: the second-order differences between twist joints
# (which turn about one axis by different fractions) only show at larger angles.
FIT_SPREAD = 0.6
BATCH = 32


def _worlds(rig, params: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (B, V, 3) and joint transforms (B, J, 4, 4) for a batch of model parameters."""
    verts, worlds = [], []
    for chunk in params.split(BATCH):
        shape, _, expr = zero_inputs(len(chunk))
        v, w = call_rig(rig, shape, chunk, expr)
        verts.append(v)
        worlds.append(w)
    return np.concatenate(verts), np.concatenate(worlds)


def _moved(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 4, 4) pairs → whether they differ by more than rounding."""
    rot = np.abs(a[..., :3, :3] - b[..., :3, :3]).max(axis=(-1, -2))
    pos = np.abs(a[..., :3, 3] - b[..., :3, 3]).max(axis=-1)
    return (rot > ROT_TOL) | (pos > POS_TOL)


def _change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A size of the difference of (..., 4, 4) transforms, in the units of the tolerances."""
    rot = np.abs(a[..., :3, :3] - b[..., :3, :3]).max(axis=(-1, -2)) / ROT_TOL
    pos = np.abs(a[..., :3, 3] - b[..., :3, 3]).max(axis=-1) / POS_TOL
    return np.maximum(rot, pos)


class _Perturbations:
    """Joint transforms at base poses and with each model parameter stepped from them."""

    def __init__(self, rig, bases: torch.Tensor) -> None:
        steps = []
        for base in bases:
            stepped = base.repeat(NUM_MODEL_PARAMS, 1) + STEP * torch.eye(NUM_MODEL_PARAMS)
            steps.append(torch.cat([base[None], stepped]))
        _, worlds = _worlds(rig, torch.cat(steps))
        worlds = worlds.reshape(len(bases), NUM_MODEL_PARAMS + 1, *worlds.shape[1:])
        self.base = worlds[:, 0]  # (nb, J, 4, 4)
        self.stepped = worlds[:, 1:]  # (nb, P, J, 4, 4)
        # drives[p, j]: parameter p moves joint j (from some base pose).
        self.drives = _moved(self.stepped, self.base[:, None]).any(axis=0)

    def relative_change(self, frame: int, joint: int, params: np.ndarray) -> float:
        """How much `joint` moves relative to `frame` when any of `params` is stepped."""
        if len(params) == 0:
            return 0.0
        stepped = self.stepped[:, params]  # (nb, n, J, 4, 4)
        rel = invert_similarity(stepped[:, :, frame]) @ stepped[:, :, joint]
        rel0 = invert_similarity(self.base[:, frame]) @ self.base[:, joint]
        return float(_change(rel, rel0[:, None]).max())

    def position_change(self, joint: int, params: np.ndarray) -> float:
        if len(params) == 0:
            return 0.0
        moved = self.stepped[:, params][:, :, joint, :3, 3] - self.base[:, None, joint, :3, 3]
        return float(np.abs(moved).max())


def _rigid_groups(worlds: np.ndarray, drives: np.ndarray) -> list[list[int]]:
    """Joints whose relative transforms stay the same over all sampled poses (same parameters
    is necessary; constant relative transform is the test)."""
    nj = worlds.shape[1]
    label = list(range(nj))

    def find(j):
        while label[j] != j:
            label[j] = label[label[j]]
            j = label[j]
        return j

    keys: dict[bytes, list[int]] = {}
    for j in range(nj):
        keys.setdefault(drives[:, j].tobytes(), []).append(j)
    for same in keys.values():
        for i, a in enumerate(same):
            rel = invert_similarity(worlds[:, a])[:, None] @ worlds[:, same[i + 1:]]  # (K, n, 4, 4)
            rigid = ~(_change(rel, rel[:1]) > 1.0).any(axis=0)
            for b, ok in zip(same[i + 1:], rigid):
                if ok:
                    label[find(b)] = find(a)
    groups: dict[int, list[int]] = {}
    for j in range(nj):
        groups.setdefault(find(j), []).append(j)
    return sorted(groups.values())


def _skeleton_tree(pert: _Perturbations, groups: list[list[int]]) -> tuple[np.ndarray, list[int]]:
    """Parents from the groups (see the module docstring) and each group's pivot joint."""
    drives = pert.drives
    params_of = [frozenset(np.flatnonzero(drives[:, g[0]]).tolist()) for g in groups]
    parent_group: list[int | None] = []
    for gi, g in enumerate(groups):
        if not params_of[gi]:
            parent_group.append(None)
            continue
        best = None
        for hi, h in enumerate(groups):
            if hi == gi or not params_of[hi] < params_of[gi]:
                continue
            score = pert.relative_change(h[0], g[0], np.array(sorted(params_of[hi]), dtype=np.int64))
            key = (score > 1.0, score if score > 1.0 else 0.0, -len(params_of[hi]), h[0])
            best = min(best, (key, hi)) if best is not None else (key, hi)
        parent_group.append(None if best is None else best[1])
    pivots = []
    for gi, g in enumerate(groups):
        inherited = params_of[parent_group[gi]] if parent_group[gi] is not None else frozenset()
        own = np.array(sorted(params_of[gi] - inherited), dtype=np.int64)
        motion = [pert.position_change(j, own) for j in g]
        pivots.append(g[int(np.argmin(np.round(np.array(motion) / POS_TOL)))])  # ties: lowest index
    parents = np.full(sum(len(g) for g in groups), -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        for j in g:
            if j != pivots[gi]:
                parents[j] = pivots[gi]
        if parent_group[gi] is not None:
            parents[pivots[gi]] = pivots[parent_group[gi]]
    return parents, pivots


def _solve_sets(gram: np.ndarray, rhs: np.ndarray, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row n and candidate set sets[n] (c indices into the n-th Gram matrix): the
    weights w >= 0, sum(w) = 1 minimising |Σ w_i p_i - y|², and that residual less |y|².
    Batched active set: solve the equality-constrained problem, drop the most negative weight,
    repeat (at most one drop per member)."""
    n, c = sets.shape
    rows = np.arange(n)[:, None]
    normal = gram[rows[:, :, None], sets[:, :, None], sets[:, None, :]]  # (n, c, c)
    b = rhs[rows, sets]  # (n, c)
    normal = normal + 1e-10 * np.trace(normal, axis1=1, axis2=2)[:, None, None] * np.eye(c)
    active = np.ones((n, c), dtype=bool)
    w = np.zeros((n, c))
    for _ in range(c):
        a = active.astype(np.float64)
        kkt = np.zeros((n, c + 1, c + 1))
        kkt[:, :c, :c] = normal * a[:, :, None] * a[:, None, :] + np.eye(c) * (1 - a)[:, None, :]
        kkt[:, :c, c] = a
        kkt[:, c, :c] = a
        w = np.linalg.solve(kkt, np.concatenate([b * a, np.ones((n, 1))], axis=1)[..., None])[..., 0][:, :c] * a
        negative = (w < -1e-12) & active
        bad = np.flatnonzero(negative.any(axis=1))
        if len(bad) == 0:
            break
        active[bad, np.argmin(np.where(active[bad], w[bad], np.inf), axis=1)] = False
    w = np.clip(w, 0.0, None)
    w = w / w.sum(axis=1, keepdims=True)
    residual = np.einsum("nc,ncd,nd->n", w, normal, w) - 2 * (w * b).sum(axis=1)
    return w, residual


def _best_of(gram, rhs, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sets (n, m, c): per row the set of least residual → (set (n, c), weights, residual)."""
    n, m, c = sets.shape
    w, res = _solve_sets(np.repeat(gram, m, axis=0), np.repeat(rhs, m, axis=0), sets.reshape(n * m, c))
    pick = np.argmin(res.reshape(n, m), axis=1)
    at = np.arange(n) * m + pick
    return sets[np.arange(n), pick], w[at], res[at]


def _select(gram: np.ndarray, rhs: np.ndarray, keep: int, swaps: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per row, `keep` of the C candidates (and their weights): greedy forward selection, then
    single swaps while they lower the residual. Candidates repeated in a set count once (a zero
    weight), so a vertex may end with fewer influences."""
    n, c = rhs.shape
    chosen = np.zeros((n, 0), dtype=np.int64)
    everyone = np.broadcast_to(np.arange(c), (n, c))
    for _ in range(keep):
        sets = np.concatenate([np.repeat(chosen[:, None], c, axis=1), everyone[..., None]], axis=2)
        chosen, w, res = _best_of(gram, rhs, sets)
    for _ in range(swaps):
        trials = [chosen[:, None].copy()]
        for slot in range(keep):
            t = np.repeat(chosen[:, None], c, axis=1)
            t[:, :, slot] = everyone
            trials.append(t)
        chosen, w, res = _best_of(gram, rhs, np.concatenate(trials, axis=1))
    # A member chosen twice holds its weight in one slot only.
    for slot in range(1, keep):
        dup = (chosen[:, slot:slot + 1] == chosen[:, :slot]).any(axis=1)
        first = np.argmax(chosen[:, :slot] == chosen[:, slot:slot + 1], axis=1)
        w[dup, first[dup]] += w[dup, slot]
        w[dup, slot] = 0.0
    return chosen, w


def _fit_weights(rest: np.ndarray, posed: np.ndarray, group_motion: np.ndarray, pivots: list[int],
                 keep: int) -> tuple[np.ndarray, np.ndarray]:
    """rest (V, 3), posed (K, V, 3), group_motion (K, G, 4, 4) = pivot(pose) · pivot(bind)⁻¹ →
    (V, keep) joints, (V, keep) weights. Candidates: the CANDIDATES groups that alone fit a
    vertex best; the fit itself works on their Gram matrix (the normal equations)."""
    nv = rest.shape[0]
    joints = np.zeros((nv, keep), dtype=np.int64)
    weights = np.zeros((nv, keep))
    for lo in range(0, nv, 256):
        r = rest[lo:lo + 256]
        pred = np.einsum("kgij,vj->vkgi", group_motion[..., :3, :3], r) + group_motion[None, ..., :3, 3]  # (n, K, G, 3)
        target = posed[:, lo:lo + 256].transpose(1, 0, 2)  # (n, K, 3)
        single = ((pred - target[:, :, None]) ** 2).sum(axis=(1, 3))  # (n, G)
        cand = np.argsort(single, axis=1, kind="stable")[:, :CANDIDATES]
        design = np.take_along_axis(pred, cand[:, None, :, None], axis=2)  # (n, K, C, 3)
        gram = np.einsum("nkci,nkdi->ncd", design, design)
        rhs = np.einsum("nkci,nki->nc", design, target)
        chosen, w = _select(gram, rhs, keep)
        joints[lo:lo + 256] = np.asarray(pivots)[np.take_along_axis(cand, chosen, axis=1)]
        weights[lo:lo + 256] = w
    order = np.argsort(-weights, axis=1, kind="stable")
    joints, weights = np.take_along_axis(joints, order, axis=1), np.take_along_axis(weights, order, axis=1)
    return np.where(weights > 0, joints, 0), weights / weights.sum(axis=1, keepdims=True)


def fit_rig_skeleton(rig, poses: int = 64, seed: int = 0, keep: int = 4) -> RigSkeleton:
    """Skeleton and skin of `rig` from its outputs (see the module docstring)."""
    rest, bind = call_rig(rig, *zero_inputs())
    rest, bind = rest[0], bind[0]
    nj = bind.shape[0]
    bases = torch.cat([torch.zeros(1, NUM_MODEL_PARAMS), check_poses(1, seed=seed + 1)])
    pert = _Perturbations(rig, bases)
    fit_params = torch.cat([torch.zeros(1, NUM_MODEL_PARAMS), check_poses(poses, seed=seed + 2, spread=FIT_SPREAD)])
    posed, worlds = _worlds(rig, fit_params)
    groups = _rigid_groups(worlds, pert.drives)
    parents, pivots = _skeleton_tree(pert, groups)
    if (parents < 0).sum() != 1:
        raise RigLayoutError(f"the fitted skeleton has {(parents < 0).sum()} roots")
    inverse_bind = invert_similarity(bind)
    motion = worlds[:, pivots] @ inverse_bind[pivots]
    joints, weights = _fit_weights(rest, posed, motion, pivots, keep)
    try:  # a traced file may keep the names even where it lost the buffers
        names = tuple(str(n) for n in rig.character_torch.skeleton.joint_names)
        names = names if len(names) == nj else generic_names(nj)
    except Exception:  # noqa: BLE001 - any missing attribute means: no names
        names = generic_names(nj)
    unidentified = sum(len(g) - 1 for g in groups)
    skeleton = RigSkeleton(
        names=names, parents=parents, bind_world=bind, inverse_bind=inverse_bind, skin_joints=joints,
        skin_weights=weights, source="fitted",
        detail=(f"fitted from the rig's outputs over {poses} poses: {len(groups)} rigid groups; the parents of "
                f"{unidentified} joints that move rigidly with their group are set to the group's pivot"))
    train = skin_vertices(rest, worlds, inverse_bind, joints, weights)
    train_mm = np.linalg.norm(train - posed, axis=-1) * 10.0
    check = lbs_error_mm(rig, skeleton, check_poses(16, seed=seed + 3))
    check["fit_rms"] = float(np.sqrt((train_mm ** 2).mean()))
    check["fit_max"] = float(train_mm.max())
    return replace(skeleton, check_error_mm=check)


_CACHE: dict[int, tuple[object, RigSkeleton]] = {}


def rig_skeleton(rig, fit_if_needed: bool = True) -> RigSkeleton:
    """The rig's skeleton and skin: read where the rig has them (rig_skeleton.REAL_LAYOUT), fitted
    from its outputs otherwise (`source` says which, `detail` why). Cached per rig object: a fit
    takes seconds (40 s for the full-size rig on two CPU cores)."""
    cached = _CACHE.get(id(rig))
    if cached is not None and cached[0] is rig:
        return cached[1]
    try:
        skeleton = read_rig_skeleton(rig)
    except RigLayoutError as exc:
        if not fit_if_needed:
            raise
        skeleton = fit_rig_skeleton(rig)
        skeleton = replace(skeleton, detail=f"{skeleton.detail} (not read: {exc})")
    _CACHE[id(rig)] = (rig, skeleton)
    return skeleton
