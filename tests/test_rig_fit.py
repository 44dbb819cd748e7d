"""The fitted path: skeleton and skin recovered from the rig's outputs alone, on the stand-in
(whose true skeleton and skin the read path gives)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam3dbody_gui.model.rig_fit import rig_skeleton
from sam3dbody_gui.model.rig_skeleton import call_rig, check_poses, read_rig_skeleton, skin_vertices, zero_inputs


class _Opaque(torch.nn.Module):
    """The rig with every property hidden: only its forward answers."""

    def __init__(self, rig) -> None:
        super().__init__()
        self.inner = rig

    def forward(self, shape, params, expr):
        return self.inner(shape, params, expr)


@pytest.fixture(scope="module")
def standin():
    from sam3dbody_gui.synthetic.mhr_standin import build_mhr_standin

    return build_mhr_standin("tiny", seed=0)


@pytest.fixture(scope="module")
def rigs(standin, tmp_path_factory):
    from sam3dbody_gui.synthetic.mhr_standin import save_mhr_standin

    return torch.jit.load(str(save_mhr_standin(standin, tmp_path_factory.mktemp("rig") / "mhr_model.pt")))


@pytest.fixture(scope="module")
def fitted(rigs):
    return rig_skeleton(_Opaque(rigs))


def _own_parameters(rig) -> np.ndarray:
    """(J,) whether any model parameter drives the joint's own channels (the stand-in's truth)."""
    transform = rig.parameter_transform.numpy().reshape(204, 127, 7)
    return (transform != 0).any(axis=(0, 2))


def test_an_opaque_rig_is_fitted_and_says_so(fitted):
    assert fitted.source == "fitted" and "not read" in fitted.detail
    assert fitted.names[0] == "joint_000"  # no names to read


def test_fitted_parents_are_the_rigs_where_the_outputs_can_tell(rigs, fitted):
    true = read_rig_skeleton(rigs)
    own = _own_parameters(rigs)
    wrong = np.flatnonzero(fitted.parents != true.parents)
    print(f"\nfitted parents differing from the stand-in's: {[true.names[j] for j in wrong]}")
    # Every joint with parameters of its own has its true parent.
    assert own[wrong].sum() == 0
    # A joint without parameters moves rigidly with its group; its fitted parent must be in that
    # group: rigid with the true parent over any poses.
    _, worlds = call_rig(rigs, torch.zeros(6, 45), check_poses(6, seed=21), torch.zeros(6, 72))
    for j in wrong:
        rel = np.linalg.inv(worlds[:, true.parents[j]]) @ worlds[:, fitted.parents[j]]
        assert np.abs(rel - rel[:1]).max() < 1e-3
    assert len(wrong) <= 3
    np.testing.assert_allclose(fitted.bind_world, true.bind_world, atol=1e-4)


def test_fitted_skin_reproduces_the_rig_on_poses_not_fitted(rigs, fitted):
    true = read_rig_skeleton(rigs)
    params = check_poses(16, seed=31)
    shape, _, expr = zero_inputs(len(params))
    rest, _ = call_rig(rigs, *zero_inputs())
    posed, worlds = call_rig(rigs, shape, params, expr)
    fit = skin_vertices(rest[0], worlds, fitted.inverse_bind, fitted.skin_joints, fitted.skin_weights)
    truth = skin_vertices(rest[0], worlds, true.inverse_bind, true.skin_joints, true.skin_weights)
    vs_skin = np.linalg.norm(fit - truth, axis=-1) * 10  # mm: the fit's own error
    vs_rig = np.linalg.norm(fit - posed, axis=-1) * 10  # mm: the fit's error plus pose correctives
    correctives = np.linalg.norm(truth - posed, axis=-1) * 10
    print(f"\nfitted skin, 16 poses not fitted: vs the true skin max {vs_skin.max():.2f} p99 "
          f"{np.quantile(vs_skin, 0.99):.2f} mm; vs the rig max {vs_rig.max():.2f} p99 {np.quantile(vs_rig, 0.99):.2f}"
          f" rms {np.sqrt((vs_rig ** 2).mean()):.3f} mm; the true skin vs the rig (correctives) max "
          f"{correctives.max():.2f} p99 {np.quantile(correctives, 0.99):.2f} mm")
    assert vs_skin.max() < 2.0
    assert np.quantile(vs_rig, 0.99) < 2.0 and vs_rig.max() < correctives.max() + 0.5
    assert fitted.check_error_mm["p99"] < 2.0
    assert np.allclose(fitted.skin_weights.sum(axis=1), 1.0) and (fitted.skin_weights >= 0).all()


def test_a_fitted_rig_exports_and_skins_back(standin, rigs, fitted, tmp_path):
    """A GLB from the fitted skeleton: the pose the rig gives comes back out of the file."""
    import pygltflib as gl
    from test_rig_export import _skinned

    from sam3dbody_gui.export.rigged_gltf import save_rigged_gltf
    from sam3dbody_gui.export.rigged_person import RiggedPerson, in_metres
    from sam3dbody_gui.model.rig_skeleton import unpose_vertices

    verts, worlds = call_rig(rigs, torch.zeros(1, 45), check_poses(1, seed=41), torch.zeros(1, 72))
    bind = unpose_vertices(verts[0], worlds[0], fitted.inverse_bind, fitted.skin_joints, fitted.skin_weights)
    person = RiggedPerson(name="person_0", skeleton=fitted, world=in_metres(worlds[0]), bind_vertices=bind / 100,
                          faces=standin.faces.numpy(), posed_vertices=verts[0] / 100,
                          posed_joints=worlds[0, :, :3, 3] / 100)
    doc = gl.GLTF2().load(str(save_rigged_gltf(tmp_path / "fitted.glb", [person])))
    posed, joints = _skinned(doc, next(i for i, n in enumerate(doc.nodes) if n.skin is not None))
    assert np.linalg.norm(posed - verts[0] / 100, axis=1).max() < 1e-3
    assert np.linalg.norm(joints - worlds[0, :, :3, 3] / 100, axis=1).max() < 1e-3
