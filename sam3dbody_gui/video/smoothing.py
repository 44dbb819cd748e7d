"""Motion over time: the One-Euro filter on rotation-safe channels, and how much a motion jitters.

Channels. The decoder's pose is already continuous (upstream's choice, because Euler angles are
not): a 6-D rotation (two columns of the matrix) per 3-DoF joint and for the body's orientation,
(sin, cos) per 1-DoF joint, translations, the hands' PCA coefficients (a linear map of their own
6-D and (sin, cos) angles) and the camera translation. Each 6-D block is first made canonical
(the two orthonormal columns of the rotation it stands for) and each pair put on the unit circle,
so frames are averaged as rotations, not as raw network outputs of varying length; a filtered
block goes back through the same Gram–Schmidt, so any result is a rotation, and nothing wraps
at ±180° as Euler angles would.

Filter. The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012; the authors' implementation,
package OneEuroFilter, BSD-3-Clause): a low-pass whose cutoff rises with speed, so slow motion
loses its jitter and fast motion keeps its timing. A clip is known whole, so it runs forward and
then backward (the second pass cancels the first one's lag); a live source would run it forward.

Jitter: the mean length of the joints' second difference over consecutive frames, mm/frame²
(the acceleration a still person's mesh shows as shaking).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..model.mhr_params import BODY_1DOF_PARAMS, BODY_3DOF_PARAMS

GLOBAL_6D = slice(0, 6)  # pred_pose_raw: the body's orientation (6-D, columns variant)
BODY_START = 6
N3 = len(BODY_3DOF_PARAMS)
N1 = len(BODY_1DOF_PARAMS)
# Strength 0..1 → the filter's minimum cutoff, as a fraction of the frame rate (log scale):
# 0 passes everything, 0.5 keeps 7% of the rate (2 Hz at 30 fps), 1 keeps 1% (0.3 Hz).
CUTOFF_AT_ZERO, CUTOFF_AT_ONE = 0.5, 0.01
BETA = 2.0  # cutoff rise per unit/s of speed: fast limbs are followed, slow drift is filtered
DERIVATIVE_CUTOFF_HZ = 1.0
PAD_FRAMES = 30  # reflected at each end of a stretch (see one_euro)
MAX_GAP_FRAMES = 3  # a person missing longer than this starts a new stretch of filtering


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def canonical_pose(pose_raw: np.ndarray) -> np.ndarray:
    """(F, 266) decoder pose → the same rotations as canonical 6-D blocks and unit pairs."""
    out = np.array(pose_raw, np.float64)
    # Body orientation, rotmat_from_6d_columns: b1 = a1/|a1|, b2 = a2 ⟂ b1, normalised.
    a1, a2 = out[:, 0:3], out[:, 3:6]
    b1 = _unit(a1)
    b2 = _unit(a2 - (b1 * a2).sum(-1, keepdims=True) * b1)
    out[:, 0:3], out[:, 3:6] = b1, b2
    # Body 3-DoF joints, rotmat_from_6d_cross: x = a1/|a1|, z = x × a2 normalised, y = z × x.
    blocks = out[:, BODY_START:BODY_START + 6 * N3].reshape(len(out), N3, 6)
    x = _unit(blocks[..., 0:3])
    z = _unit(np.cross(x, blocks[..., 3:6]))
    y = np.cross(z, x)
    out[:, BODY_START:BODY_START + 6 * N3] = np.concatenate([x, y], axis=-1).reshape(len(out), -1)
    # Body 1-DoF joints: (sin, cos) on the unit circle.
    lo = BODY_START + 6 * N3
    pairs = out[:, lo:lo + 2 * N1].reshape(len(out), N1, 2)
    out[:, lo:lo + 2 * N1] = _unit(pairs).reshape(len(out), -1)
    return out


def cutoff_for(strength: float, fps: float) -> float:
    """The minimum cutoff (Hz) a strength gives."""
    s = float(np.clip(strength, 0.0, 1.0))
    return fps * CUTOFF_AT_ZERO * (CUTOFF_AT_ONE / CUTOFF_AT_ZERO) ** s


def stretches(frames: Sequence[int]) -> list[slice]:
    """Runs of frames without a gap longer than MAX_GAP_FRAMES."""
    frames = np.asarray(frames)
    if len(frames) == 0:
        return []
    cuts = np.flatnonzero(np.diff(frames) > MAX_GAP_FRAMES) + 1
    edges = [0, *cuts.tolist(), len(frames)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _one_euro_pass(values: np.ndarray, times: np.ndarray, fps: float, cutoff: float) -> np.ndarray:
    from OneEuroFilter import OneEuroFilter

    filters = [OneEuroFilter(fps, cutoff, BETA, DERIVATIVE_CUTOFF_HZ) for _ in range(values.shape[1])]
    out = np.empty_like(values)
    for i, (row, t) in enumerate(zip(values, times)):
        out[i] = [f(float(x), float(t)) for f, x in zip(filters, row)]
    return out


def one_euro(values: np.ndarray, frames: Sequence[int], fps: float, strength: float) -> np.ndarray:
    """(F, D) channels at `frames` (indices at `fps`) filtered forward and backward; strength 0
    returns them unchanged."""
    values = np.asarray(values, np.float64)
    if strength <= 0 or len(values) < 2:
        return values.copy()
    cutoff = cutoff_for(strength, fps)
    frames = np.asarray(frames)
    out = values.copy()
    for part in stretches(frames):
        x, f = values[part], frames[part].astype(np.float64)
        if len(x) < 2:
            continue
        # Odd reflection at both ends (as scipy's filtfilt pads): a filter starting cold bends a
        # steady motion at the clip's ends; reflected through the end point, a motion at constant
        # speed stays at constant speed, so the ends gain no acceleration.
        pad = min(len(x) - 1, PAD_FRAMES)
        x = np.concatenate([2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2:-pad - 2:-1]])
        f = np.concatenate([2 * f[0] - f[pad:0:-1], f, 2 * f[-1] - f[-2:-pad - 2:-1]])
        # The filter takes timestamps (seconds, > 0): a skipped frame keeps its time step.
        t = (f - f[0]) / fps + 1.0
        forward = _one_euro_pass(x, t, fps, cutoff)
        backward = _one_euro_pass(forward[::-1], (t[-1] - t[::-1]) + 1.0, fps, cutoff)[::-1]
        out[part] = backward[pad:len(backward) - pad]
    return out


def jitter_mm(points: np.ndarray, frames: Sequence[int]) -> float:
    """Mean |p(t+1) − 2 p(t) + p(t−1)| over points and frames t whose neighbours are both there,
    mm/frame² for (F, N, 3) points in metres; NaN with fewer than three consecutive frames."""
    points = np.asarray(points, np.float64)
    frames = np.asarray(frames)
    if len(frames) < 3:
        return float("nan")
    ok = (np.diff(frames[:-1]) == 1) & (np.diff(frames[1:]) == 1)
    if not ok.any():
        return float("nan")
    acc = points[2:] - 2 * points[1:-1] + points[:-2]
    return float(np.linalg.norm(acc[ok], axis=-1).mean() * 1000.0)
