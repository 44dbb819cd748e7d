"""The submodules of the real MHR TorchScript that our rig reader relies on, for the stand-in.

The released `assets/mhr_model.pt` is Meta's `MHR` module (package `mhr`, `mhr/mhr.py`) traced:
its `character_torch` is pymomentum's torch `Character` (facebookresearch/momentum,
`pymomentum/torch/character.py`), whose `skeleton` (class `Skeleton`) and
`linear_blend_skinning` (class `LinearBlendSkinning`) hold the rig's hierarchy, rest transforms
and skin as buffers. The stand-in carries the same submodules with the same buffer names, dtypes
and layouts, filled from its own skeleton and skin, so `model/rig_skeleton.py` reads the stand-in
exactly as it reads the real file. The stand-in's forward does not use them (its outputs stay
what they were); `tests/test_rig_structure.py` checks that they agree with what it computes.

Layouts (pymomentum): a skeleton state / skel_state is (..., 8) = translation (3), rotation
quaternion (x, y, z, w), uniform scale; skin is stored flattened, one entry per (vertex, joint)
influence with weight > 1e-5 (`backend/utils.py: flatten_skinning_weights_and_indices`).
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch import nn

from ..model.skel_state import quat_from_matrix


def flatten_skin(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, J) weights → (joint index int32, weight float32, vertex index int64), vertex by vertex,
    heaviest influence first (pymomentum keeps the (V, 8) slot order; any order reads the same)."""
    dense = np.asarray(dense)
    order = np.argsort(-dense, axis=1, kind="stable")
    w = np.take_along_axis(dense, order, axis=1)
    keep = w > 1e-5
    verts = np.repeat(np.arange(dense.shape[0])[:, None], dense.shape[1], axis=1)
    return order[keep].astype(np.int32), w[keep].astype(np.float32), verts[keep].astype(np.int64)


class Skeleton(nn.Module):
    """pymomentum/torch/character.py `Skeleton`: offsets (J, 3) and pre-rotations (J, 4, xyzw) of
    each joint in its parent's frame, parents (J,) int32 with -1 for the root, and the names."""

    def __init__(self, names: List[str], parents: List[int], offsets: np.ndarray, prerotations: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("joint_translation_offsets", torch.from_numpy(np.asarray(offsets, np.float32)))
        self.register_buffer("joint_prerotations", torch.from_numpy(quat_from_matrix(prerotations).astype(np.float32)))
        self.register_buffer("joint_parents", torch.tensor(parents, dtype=torch.int32))
        self.joint_names: List[str] = list(names)


class LinearBlendSkinning(nn.Module):
    """pymomentum/torch/character.py `LinearBlendSkinning`: the inverse bind pose as skel_states
    (J, 8) and the flattened skin."""

    def __init__(self, inverse_bind: np.ndarray, dense_weights: np.ndarray) -> None:
        super().__init__()
        ib = np.asarray(inverse_bind, dtype=np.float64)
        scale = np.linalg.norm(ib[:, :3, 0], axis=-1, keepdims=True)
        state = np.concatenate([ib[:, :3, 3], quat_from_matrix(ib[:, :3, :3] / scale[..., None]), scale], axis=-1)
        self.register_buffer("inverse_bind_pose", torch.from_numpy(state.astype(np.float32)))
        joints, weights, verts = flatten_skin(dense_weights)
        self.register_buffer("skin_indices_flattened", torch.from_numpy(joints))
        self.register_buffer("skin_weights_flattened", torch.from_numpy(weights))
        self.register_buffer("vert_indices_flattened", torch.from_numpy(verts))
        self.num_vertices: int = int(np.asarray(dense_weights).shape[0])


class Character(nn.Module):
    """pymomentum/torch/character.py `Character` (what `mhr.MHR.character_torch` is), with the two
    submodules the reader uses. The real one also has `mesh`, `parameter_transform`,
    `parameter_limits` and `blend_shape`; the stand-in keeps its own forms of those."""

    def __init__(self, skeleton: Skeleton, skinning: LinearBlendSkinning) -> None:
        super().__init__()
        self.skeleton = skeleton
        self.linear_blend_skinning = skinning


def character_layout(names, parents, rest_local_rotations, rest_local_offsets, inverse_bind, dense_weights) -> Character:
    """The stand-in's rig data in the real file's submodules (float64 numpy in, as built)."""
    return Character(Skeleton(list(names), list(parents), rest_local_offsets, rest_local_rotations),
                     LinearBlendSkinning(inverse_bind, dense_weights))
