"""The rig reader's contract with `assets/mhr_model.pt`, checked on the stand-in.

What the reader relies on, and where each comes from in Meta's source (so a reviewer can hold
it against the real asset: `torch.jit.load(path).named_buffers()`):
  `mhr` (PyPI, mhr/mhr.py, class MHR): `self.character_torch = pymomentum.torch.character.Character(...)`
  momentum (pymomentum/torch/character.py):
    class Character:            .skeleton (Skeleton), .linear_blend_skinning (LinearBlendSkinning)
    class Skeleton:             buffer joint_parents (int32, (J,), -1 = root), joint_translation_offsets
                                (J, 3), joint_prerotations (J, 4, quaternion x y z w); attribute joint_names
    class LinearBlendSkinning:  buffer inverse_bind_pose (skel_state (J, 8): t, q xyzw, scale),
                                skin_indices_flattened / skin_weights_flattened / vert_indices_flattened
                                (pymomentum/backend/utils.py flatten_skinning_weights_and_indices)
  Skinning (pymomentum/backend/skel_state_backend.py skinning_from_momentum_state):
    v = Σ w · (world_state · inverse_bind_pose) · rest, the product the reader's check recomputes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam3dbody_gui.model.rig_skeleton import (REAL_LAYOUT, RigLayoutError, call_rig, check_poses, lbs_error_mm,
                                              read_rig_skeleton, zero_inputs)
from sam3dbody_gui.model.skel_state import invert_similarity, matrix_from_quat, state_to_matrix

# name → (dtype, shape with J joints and N influences written as -1)
EXPECTED = {
    "character_torch.skeleton.joint_parents": (torch.int32, (127,)),
    "character_torch.skeleton.joint_translation_offsets": (torch.float32, (127, 3)),
    "character_torch.skeleton.joint_prerotations": (torch.float32, (127, 4)),
    "character_torch.linear_blend_skinning.inverse_bind_pose": (torch.float32, (127, 8)),
    "character_torch.linear_blend_skinning.skin_indices_flattened": (torch.int32, (-1,)),
    "character_torch.linear_blend_skinning.skin_weights_flattened": (torch.float32, (-1,)),
    "character_torch.linear_blend_skinning.vert_indices_flattened": (torch.int64, (-1,)),
}


@pytest.fixture(scope="module")
def standin():
    from sam3dbody_gui.synthetic.mhr_standin import build_mhr_standin

    return build_mhr_standin("tiny", seed=0)


@pytest.fixture(scope="module")
def rig(standin, tmp_path_factory):
    """The stand-in as the app meets it: saved and loaded back as TorchScript."""
    from sam3dbody_gui.synthetic.mhr_standin import save_mhr_standin

    return torch.jit.load(str(save_mhr_standin(standin, tmp_path_factory.mktemp("rig") / "mhr_model.pt")))


def test_the_reader_relies_only_on_listed_names_that_the_scripted_rig_has(rig):
    buffers = dict(rig.named_buffers())
    read = {n for n in REAL_LAYOUT if n != "character_torch.skeleton.joint_names"}
    assert read <= set(EXPECTED)
    for name, (dtype, shape) in EXPECTED.items():
        t = buffers[name]
        assert t.dtype == dtype, name
        assert len(t.shape) == len(shape) and all(s in (-1, got) for s, got in zip(shape, t.shape)), name
    names = rig.character_torch.skeleton.joint_names
    assert len(names) == 127 and names[:2] == ["body_world", "root"] and len(set(names)) == 127


def test_layout_buffers_agree_with_what_the_rig_computes(rig, standin):
    sk = rig.character_torch.skeleton
    lbs = rig.character_torch.linear_blend_skinning
    assert tuple(sk.joint_parents.tolist()) == standin.joint_parents
    _, bind = call_rig(rig, *zero_inputs())
    bind = bind[0]
    # pymomentum's forward kinematics of the zero pose: world = parent · [prerotation | offset].
    offsets = sk.joint_translation_offsets.double().numpy()
    pre = matrix_from_quat(sk.joint_prerotations.double().numpy())
    world = np.zeros((127, 4, 4))
    for j, p in enumerate(standin.joint_parents):
        local = np.eye(4)
        local[:3, :3], local[:3, 3] = pre[j], offsets[j]
        world[j] = local if p < 0 else world[p] @ local
    assert np.abs(world - bind).max() < 1e-4
    # The inverse bind pose is the inverse of that bind pose (skel_state, quaternion x y z w).
    assert np.abs(invert_similarity(state_to_matrix(lbs.inverse_bind_pose.double().numpy())) - bind).max() < 1e-4
    # The flattened skin is the forward's dense skin, influence by influence.
    dense = np.zeros(rig.skin_weights.shape)
    np.add.at(dense, (lbs.vert_indices_flattened.numpy(), lbs.skin_indices_flattened.numpy()),
              lbs.skin_weights_flattened.numpy())
    assert np.array_equal(dense.astype(np.float32), rig.skin_weights.numpy())


def test_read_skeleton_skins_like_the_rig(rig, standin):
    skeleton = read_rig_skeleton(rig)
    assert skeleton.source == "read" and skeleton.names == standin.joint_names
    assert skeleton.dropped_weight == 0.0  # the stand-in skins with at most four bones
    err = lbs_error_mm(rig, skeleton, check_poses(8, seed=11))
    print(f"\nread skin vs rig over 8 poses (the gap is pose correctives): {err}")
    assert err["median"] < 0.2 and err["p99"] < 2.0 and err["max"] < 5.0


def test_a_misread_layout_is_refused(rig, standin, tmp_path):
    """The same rig with its inverse bind pose read as w, x, y, z: the check catches it."""
    from sam3dbody_gui.synthetic.mhr_standin import save_mhr_standin

    bad = torch.jit.load(str(save_mhr_standin(standin, tmp_path / "bad.pt")))
    ibp = bad.character_torch.linear_blend_skinning.inverse_bind_pose
    ibp.copy_(ibp[:, [0, 1, 2, 6, 3, 4, 5, 7]])
    with pytest.raises(RigLayoutError, match="does not reproduce"):
        read_rig_skeleton(bad)


class _Opaque(torch.nn.Module):
    """A rig that only answers forward (as a traced file with no properties would)."""

    def __init__(self, rig) -> None:
        super().__init__()
        self.inner = rig

    def forward(self, shape, params, expr):
        return self.inner(shape, params, expr)


def test_a_rig_without_the_buffers_is_not_read(rig):
    with pytest.raises(RigLayoutError, match="has no character_torch"):
        read_rig_skeleton(_Opaque(rig))
