"""The MHR stand-in: real call and shapes, a closed body-shaped mesh, buffers that agree with the rig."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import trimesh

from sam3dbody_gui.model.mhr_params import PoseParamConverter
from sam3dbody_gui.model.rotations import euler_xyz_from_rotmat, rotmat_from_euler_xyz, rotmat_from_quat_xyzw
from sam3dbody_gui.synthetic.mhr_standin import (
    BODY_OFFSET,
    RELAXED_HAND,
    SCALE_OFFSET,
    build_mhr_standin,
    save_mhr_standin,
)

# Upstream loads the rig with torch.jit.load, so the tests do too (deprecated in recent PyTorch).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

CHECKPOINT_KEYS = Path(__file__).parent / "fixtures" / "sam3dbody_checkpoint_keys.txt"
FULL_VERTICES, FULL_FACES = 18439, 36874
LEFT_KNEE_PARAM = BODY_OFFSET + 47
# MHR70 keypoint rows (upstream metadata/mhr70.py)
NOSE, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_HIP, R_HIP = 0, 5, 6, 7, 8, 9, 10
L_KNEE, R_KNEE, L_ANKLE, R_ANKLE, R_WRIST, L_WRIST, NECK = 11, 12, 13, 14, 41, 62, 69
R_LOWARM, R_WRIST_TWIST, R_WRIST_JOINT = 40, 41, 42


@pytest.fixture(scope="module")
def tiny():
    return build_mhr_standin("tiny", seed=0)


@pytest.fixture(scope="module")
def full():
    return build_mhr_standin("full", seed=0)  # ~3 s and ~0.7 GB: the real sizes


def call(standin, model_params=None, shape=None, expr=None, batch=1):
    model_params = torch.zeros(batch, 204) if model_params is None else model_params
    batch = model_params.shape[0]
    shape = torch.zeros(batch, 45) if shape is None else shape
    expr = torch.zeros(batch, 72) if expr is None else expr
    with torch.no_grad():
        return standin.module(shape, model_params, expr)


def random_inputs(seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 45, generator=g), torch.randn(batch, 204, generator=g) * 0.3,
            torch.randn(batch, 72, generator=g))


def checkpoint_head_shapes(prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
    shapes = {}
    for line in CHECKPOINT_KEYS.read_text().splitlines():
        m = re.match(rf"{re.escape(prefix)}\.(\w+) \(([\d, ]*)\) (\w+)$", line.strip())
        if m and not m.group(1).startswith("proj"):
            shapes[m.group(1)] = (tuple(int(x) for x in m.group(2).split(",") if x.strip()), m.group(3))
    return shapes


def test_full_head_buffers_have_the_checkpoint_keys_shapes_and_dtypes(full):
    for prefix in ("head_pose", "head_pose_hand"):
        expected = checkpoint_head_shapes(prefix)
        assert set(full.head_buffers) == set(expected)
        for name, tensor in full.head_buffers.items():
            shape, dtype = expected[name]
            assert tuple(tensor.shape) == shape, name
            assert str(tensor.dtype).removeprefix("torch.") == dtype, name


def test_tiny_head_buffers_differ_from_full_only_in_mesh_size(tiny):
    nv, nf = tiny.num_vertices, tiny.faces.shape[0]
    assert 500 <= nv <= 1500
    for name, (shape, dtype) in checkpoint_head_shapes("head_pose").items():
        if name == "faces":
            shape = (nf, 3)
        elif name == "keypoint_mapping":
            shape = (308, nv + 127)
        assert tuple(tiny.head_buffers[name].shape) == shape, name


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_mesh_is_closed_outward_and_genus_zero(size, request):
    standin = request.getfixturevalue(size)
    verts, faces = standin.rest_vertices.numpy(), standin.faces.numpy()
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert mesh.euler_number == 2 and len(mesh.split(only_watertight=False)) == 1
    assert len(faces) == 2 * len(verts) - 4
    if size == "full":
        assert (len(verts), len(faces)) == (FULL_VERTICES, FULL_FACES)
    assert 40_000 < mesh.volume < 120_000  # cm^3: an adult body is ~70 litres


def test_call_shapes_and_zero_pose_is_the_rest_body(tiny):
    verts, skeleton = call(tiny, batch=2)
    assert verts.shape == (2, tiny.num_vertices, 3) and skeleton.shape == (2, 127, 8)
    assert verts.dtype == skeleton.dtype == torch.float32
    torch.testing.assert_close(verts[1], tiny.rest_vertices, atol=1e-3, rtol=0)
    torch.testing.assert_close(skeleton[0, :, :3], tiny.rest_joints, atol=1e-3, rtol=0)
    torch.testing.assert_close(skeleton[..., 3:7].norm(dim=-1), torch.ones(2, 127))
    torch.testing.assert_close(skeleton[..., 7], torch.ones(2, 127))
    # Shape coefficients of batch 1 broadcast over the batch, as MHR's identity does.
    s, p, e = random_inputs(0, batch=3)
    v_broadcast, _ = call(tiny, p, s[:1], e)
    v_each, _ = call(tiny, p, s[:1].expand(3, -1), e)
    torch.testing.assert_close(v_broadcast, v_each)
    assert torch.isfinite(call(tiny, p, s, e)[0]).all()


def test_zero_pose_stands_like_a_person(tiny):
    verts = tiny.rest_vertices
    height = verts[:, 1].max() - verts[:, 1].min()
    assert 150 < height < 200 and abs(float(verts[:, 1].min())) < 1.0  # cm, feet on the floor
    assert abs(float(verts[:, 0].mean())) < 0.5  # left/right symmetric
    kp = keypoints(tiny, *call(tiny))[0]
    assert kp[L_SHOULDER, 0] > 10 and kp[R_SHOULDER, 0] < -10  # the person's left is +x
    assert kp[NOSE, 2] > kp[NECK, 2]  # facing +z
    ys = kp[:, 1]
    assert ys[NOSE] > ys[NECK] > ys[L_SHOULDER] > ys[L_ELBOW] > ys[L_HIP] > ys[L_KNEE] > ys[L_ANKLE] > 0
    assert ys[R_SHOULDER] > ys[R_ELBOW] > ys[R_WRIST] and ys[L_ELBOW] > ys[L_WRIST]


def keypoints(standin, verts, skeleton):
    mapping = standin.head_buffers["keypoint_mapping"][:70]
    return torch.einsum("kn,bnc->bkc", mapping, torch.cat([verts, skeleton[..., :3]], dim=1))


def test_keypoint_mapping_rows_are_convex_blends(tiny):
    mapping = tiny.head_buffers["keypoint_mapping"]
    assert (mapping >= 0).all()
    torch.testing.assert_close(mapping.sum(dim=1), torch.ones(308))
    assert (mapping[:70] > 0).sum(dim=1).max() <= 3  # one joint, or a few nearby vertices


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tiny):
    again = build_mhr_standin("tiny", seed=0)
    other = build_mhr_standin("tiny", seed=1)
    state, state_again, state_other = (dict(s.module.state_dict()) for s in (tiny, again, other))
    for name, tensor in state.items():
        assert tensor.numpy().tobytes() == state_again[name].numpy().tobytes(), name
    for name, tensor in tiny.head_buffers.items():
        assert tensor.numpy().tobytes() == again.head_buffers[name].numpy().tobytes(), name
    assert not torch.equal(state["blendshapes"], state_other["blendshapes"])
    assert torch.equal(state["template"], state_other["template"])  # the body itself is fixed


def test_saved_torchscript_loads_without_our_code_and_matches(tiny, tmp_path):
    path = save_mhr_standin(tiny, tmp_path / "mhr_model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mhr_model.pt"]  # no temp file left
    loaded = torch.jit.load(str(path), map_location="cpu")
    inputs = random_inputs(1)
    with torch.no_grad():
        for got, want in zip(loaded(*inputs), tiny.module(*inputs)):
            assert torch.equal(got, want)


def test_bending_the_left_knee_moves_only_the_left_lower_leg(tiny):
    params = torch.zeros(1, 204)
    params[0, LEFT_KNEE_PARAM] = 1.0
    moved = (call(tiny, params)[0][0] - tiny.rest_vertices).norm(dim=1)
    rest = tiny.rest_vertices
    far = (rest[:, 0] < -2.0) | (rest[:, 1] > 75.0)  # right half, or above mid-thigh
    assert moved[far].max() < 1e-4
    foot = (rest[:, 0] > 2.0) & (rest[:, 1] < 10.0)
    assert moved[foot].min() > 10.0  # cm: a 1 rad knee bend swings the foot


def test_hand_index_lists(tiny):
    left = tiny.head_buffers["hand_joint_idxs_left"].tolist()
    right = tiny.head_buffers["hand_joint_idxs_right"].tolist()
    nonhand = tiny.head_buffers["nonhand_param_idxs"].tolist()
    assert len(set(left)) == len(set(right)) == 27 and not set(left) & set(right)
    # Upstream's body head zeroes body params 62..115 for the hands: columns 68..121 of the 136.
    assert set(left) | set(right) == set(range(BODY_OFFSET + 62, BODY_OFFSET + 116))
    assert len(set(nonhand)) == 145 and all(0 <= p < 204 for p in nonhand)
    assert not set(nonhand) & (set(range(6)) | set(right) | {SCALE_OFFSET + 8})
    assert set(left) <= set(nonhand)


def test_hand_pose_mean_decodes_to_a_relaxed_hand(tiny):
    angles = PoseParamConverter().hand(tiny.head_buffers["hand_pose_mean"][None])[0]
    torch.testing.assert_close(angles, torch.tensor(RELAXED_HAND, dtype=torch.float32), atol=1e-5, rtol=0)
    assert torch.equal(tiny.head_buffers["hand_pose_comps"], torch.eye(54))


def test_rest_rotations_agree_with_the_rig(tiny):
    """Upstream's wrist fix: zero-wrist pose = global(lower arm) @ joint_rotation[wrist twist]."""
    _, skeleton = call(tiny)
    world = rotmat_from_quat_xyzw(skeleton[0, :, 3:7])
    jr = tiny.head_buffers["joint_rotation"]
    for j, parent in enumerate(tiny.joint_parents[1:], start=1):
        torch.testing.assert_close(world[parent] @ jr[j], world[j], atol=1e-5, rtol=0)
    assert (jr[R_WRIST_TWIST] - torch.eye(3)).abs().max() > 0.5  # a real rotation, not identity
    torch.testing.assert_close(jr[R_WRIST_JOINT], torch.eye(3))
    torch.testing.assert_close(world[R_WRIST_JOINT], world[R_LOWARM] @ jr[R_WRIST_TWIST], atol=1e-5, rtol=0)


def test_wrist_parameters_compose_as_upstreams_xzy_fix(tiny):
    """Upstream writes XZY Euler angles of the wrist (relative to lower arm @ joint_rotation of
    the twist joint) into body params 31/33/32: our rig must compose them the same way."""
    a, b, c = 0.5, -0.3, 0.8
    params = torch.zeros(1, 204)
    params[0, BODY_OFFSET + 31], params[0, BODY_OFFSET + 33], params[0, BODY_OFFSET + 32] = a, b, c
    params[0, BODY_OFFSET + 30] = 0.7  # and a bent elbow
    world = rotmat_from_quat_xyzw(call(tiny, params)[1][0, :, 3:7])
    zero_wrist = world[R_LOWARM] @ tiny.head_buffers["joint_rotation"][R_WRIST_TWIST]
    rx = rotmat_from_euler_xyz(torch.tensor([a, 0.0, 0.0]))
    ry = rotmat_from_euler_xyz(torch.tensor([0.0, c, 0.0]))
    rz = rotmat_from_euler_xyz(torch.tensor([0.0, 0.0, b]))
    torch.testing.assert_close(world[R_WRIST_JOINT], zero_wrist @ rx @ rz @ ry, atol=1e-5, rtol=0)


def test_hand_head_formula_puts_the_right_wrist_at_the_origin(tiny):
    """Upstream's hand head turns the body about root_coords so that the right wrist gets the
    predicted global rotation and lands at the predicted translation (here 0)."""
    b = tiny.head_buffers
    r_pred = rotmat_from_euler_xyz(torch.tensor([0.4, -0.7, 1.1]))
    global_rot = euler_xyz_from_rotmat(r_pred @ b["local_to_world_wrist"])
    r = rotmat_from_euler_xyz(global_rot)
    global_trans = -(r @ (b["right_wrist_coords"] - b["root_coords"]) + b["root_coords"])  # metres
    params = torch.zeros(1, 204)
    params[0, :3] = global_trans * 10
    params[0, 3:6] = global_rot
    _, skeleton = call(tiny, params)
    torch.testing.assert_close(skeleton[0, R_WRIST_JOINT, :3], torch.zeros(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(rotmat_from_quat_xyzw(skeleton[0, R_WRIST_JOINT, 3:7]), r_pred, atol=1e-5, rtol=0)


def test_full_rig_call(full):
    assert full.num_vertices == FULL_VERTICES and full.faces.shape == (FULL_FACES, 3)
    state = full.module.state_dict()
    assert state["corrective_out"].shape == (3000, FULL_VERTICES * 3)  # the real layer's size
    assert state["blendshapes"].shape == (45 + 72, FULL_VERTICES * 3)
    verts, skeleton = call(full, *random_inputs(2, batch=1)[1:2])
    assert verts.shape == (1, FULL_VERTICES, 3) and torch.isfinite(verts).all()
    rest = call(full)[0][0]
    assert 150 < float(rest[:, 1].max() - rest[:, 1].min()) < 200


@pytest.mark.slow
def test_full_torchscript_round_trip(full, tmp_path):
    path = save_mhr_standin(full, tmp_path / "mhr_model.pt")
    loaded = torch.jit.load(str(path), map_location="cpu")
    inputs = random_inputs(3, batch=1)
    with torch.no_grad():
        for got, want in zip(loaded(*inputs), full.module(*inputs)):
            assert torch.equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(tiny, tmp_path):
    path = save_mhr_standin(tiny, tmp_path / "mhr_model.pt")
    rig = torch.jit.load(str(path), map_location="cuda")
    inputs = random_inputs(4)
    with torch.no_grad():
        got = rig(*(x.cuda() for x in inputs))
        want = tiny.module(*inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.cpu(), w, atol=1e-3, rtol=1e-4)
