"""A fingerprint of a set of tensors that compares with a tolerance.

A SHA-256 over the bytes says "same model" only where every last bit agrees; the synthetic rig's
geometry and matrix products round differently per CPU instruction set, so goldens pinned by a
checksum failed on other machines. A fingerprint (per tensor: the shape, the mean, the mean of
absolute values and up to 32 evenly spaced values, in float64) still tells a changed generator
(every value moves) from last-bit noise (relative 1e-7).
"""

from __future__ import annotations

import torch

SAMPLES = 32


def state_fingerprint(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.bool)):
            continue
        flat = t.reshape(-1).double()
        step = max(1, flat.numel() // SAMPLES)
        head = torch.tensor([float(flat.numel()), flat.mean().item() if flat.numel() else 0.0,
                             flat.abs().mean().item() if flat.numel() else 0.0], dtype=torch.float64)
        out[name] = torch.cat([head, flat[::step][:SAMPLES]])
    return out


def fingerprint_differences(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor],
                            rtol: float = 1e-5) -> list[str]:
    """Names (with why) where `got` and `want` differ by more than `rtol` of the tensor's scale."""
    problems = [f"{name}: missing" for name in sorted(set(want) - set(got))]
    problems += [f"{name}: unexpected" for name in sorted(set(got) - set(want))]
    for name in sorted(set(got) & set(want)):
        a, b = got[name], want[name]
        if a.shape != b.shape or a[0] != b[0]:
            problems.append(f"{name}: {int(a[0])} values, expected {int(b[0])}")
            continue
        scale = max(b[1:].abs().max().item(), 1e-6)  # all-zero tensors: last-bit noise is absolute
        err = (a[1:] - b[1:]).abs().max().item()
        if err > rtol * scale:
            problems.append(f"{name}: differs by {err / scale:.1e} of its scale")
    return problems
