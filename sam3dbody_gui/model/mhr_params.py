"""MHR's compact continuous pose representation → MHR model parameters (Euler angles).

The decoder predicts rotations in continuous form (6-D for 3-DoF joints, (sin, cos) for 1-DoF
joints) because Euler angles are discontinuous. These tables say which model parameter each
piece feeds; they are facts of the MHR rig (the released model's layout), not choices.
All conversions gather with fixed index tensors (no boolean masks), so they trace and capture.
"""

from __future__ import annotations

import torch

from .rotations import euler_xyz_from_rotmat, rotmat_from_6d_cross

# Body: 133 model parameters (global translation/rotation excluded).
BODY_3DOF_PARAMS = (
    (0, 2, 4), (6, 8, 10), (12, 13, 14), (15, 16, 17), (18, 19, 20), (21, 22, 23), (24, 25, 26),
    (27, 28, 29), (34, 35, 36), (37, 38, 39), (44, 45, 46), (53, 54, 55), (64, 65, 66),
    (85, 69, 73), (86, 70, 79), (87, 71, 82), (88, 72, 76), (91, 92, 93), (112, 96, 100),
    (113, 97, 106), (114, 98, 109), (115, 99, 103), (130, 131, 132),
)
BODY_1DOF_PARAMS = (
    1, 3, 5, 7, 9, 11, 30, 31, 32, 33, 40, 41, 42, 43, 47, 48, 49, 50, 51, 52, 56, 57, 58, 59,
    60, 61, 62, 63, 67, 68, 74, 75, 77, 78, 80, 81, 83, 84, 89, 90, 94, 95, 101, 102, 104, 105,
    107, 108, 110, 111, 116, 117, 118, 119, 120, 121, 122, 123,
)
BODY_TRANSLATION_PARAMS = (124, 125, 126, 127, 128, 129)
NUM_BODY_PARAMS = 133
NUM_BODY_CONT = 2 * 3 * len(BODY_3DOF_PARAMS) + 2 * len(BODY_1DOF_PARAMS) + len(BODY_TRANSLATION_PARAMS)  # 260

# Body parameters that the hand PCA owns (zeroed in the body prediction), and the jaw (last 3).
HAND_BODY_PARAMS = tuple(range(62, 116))
JAW_BODY_PARAMS = (130, 131, 132)

# Hand: 27 parameters per hand, joint by joint; degrees of freedom of each of the 16 joints.
HAND_JOINT_DOFS = (3, 1, 1, 3, 1, 1, 3, 1, 1, 3, 1, 1, 2, 3, 1, 1)
NUM_HAND_PARAMS = sum(HAND_JOINT_DOFS)  # 27
NUM_HAND_CONT = 2 * NUM_HAND_PARAMS  # 54


def _body_scatter_order() -> list[int]:
    """Model-parameter index of each converted value, in conversion output order."""
    order = [p for triple in BODY_3DOF_PARAMS for p in triple]
    order += list(BODY_1DOF_PARAMS) + list(BODY_TRANSLATION_PARAMS)
    return order


def _hand_layout() -> tuple[list[int], list[int], list[int], list[int]]:
    """(cont idx of 3-DoF 6-D blocks, cont idx of (sin,cos) pairs, param idx of each, ...)."""
    cont3, cont1, param3, param1 = [], [], [], []
    c = p = 0
    for dofs in HAND_JOINT_DOFS:
        if dofs == 3:
            cont3 += range(c, c + 6)
            param3 += range(p, p + 3)
        else:
            cont1 += range(c, c + 2 * dofs)
            param1 += range(p, p + dofs)
        c += 2 * dofs
        p += dofs
    return cont3, cont1, param3, param1


class PoseParamConverter(torch.nn.Module):
    """Holds the index tables as (non-persistent) buffers so they live on the model's device."""

    def __init__(self) -> None:
        super().__init__()
        for name, table in self._tables().items():
            self.register_buffer(name, table, persistent=False)

    @staticmethod
    def _tables() -> dict[str, torch.Tensor]:
        keep = torch.ones(NUM_BODY_PARAMS)
        keep[list(HAND_BODY_PARAMS) + list(JAW_BODY_PARAMS)] = 0
        cont3, cont1, param3, param1 = _hand_layout()
        return {
            "body_order": torch.tensor(_body_scatter_order()),
            "body_keep": keep,
            "hand_cont3": torch.tensor(cont3),
            "hand_cont1": torch.tensor(cont1),
            "hand_order": torch.tensor(param3 + param1),
        }

    def init_static_buffers(self) -> None:
        """Refill the tables after `to_empty` (a model built on the meta device has none)."""
        for name, table in self._tables().items():
            setattr(self, name, table.to(getattr(self, name).device))

    def body(self, cont: torch.Tensor) -> torch.Tensor:
        """(B, 260) → (B, 133) Euler/translation parameters, hands and jaw zeroed."""
        n3 = 6 * len(BODY_3DOF_PARAMS)
        n1 = 2 * len(BODY_1DOF_PARAMS)
        three = euler_xyz_from_rotmat(rotmat_from_6d_cross(cont[:, :n3].unflatten(-1, (-1, 6)))).flatten(1)
        pairs = cont[:, n3 : n3 + n1].unflatten(-1, (-1, 2))
        one = torch.atan2(pairs[..., 0], pairs[..., 1])
        values = torch.cat([three, one, cont[:, n3 + n1 :]], dim=1)
        out = torch.zeros(cont.shape[0], NUM_BODY_PARAMS, dtype=cont.dtype, device=cont.device)
        out = out.index_copy(1, self.body_order, values)
        return out * self.body_keep.to(out.dtype)

    def hand(self, cont: torch.Tensor) -> torch.Tensor:
        """(B, 54) → (B, 27) hand joint angles, ordered joint by joint."""
        three = cont.index_select(1, self.hand_cont3).unflatten(-1, (-1, 6))
        three = euler_xyz_from_rotmat(rotmat_from_6d_cross(three)).flatten(1)
        pairs = cont.index_select(1, self.hand_cont1).unflatten(-1, (-1, 2))
        one = torch.atan2(pairs[..., 0], pairs[..., 1])
        values = torch.cat([three, one], dim=1)
        out = torch.zeros(cont.shape[0], NUM_HAND_PARAMS, dtype=cont.dtype, device=cont.device)
        return out.index_copy(1, self.hand_order, values)
