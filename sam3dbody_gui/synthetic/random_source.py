"""Random numbers for synthetic weights that are the same on every machine.

torch's CPU generator is not: `torch.randn` takes a vectorised path chosen by the CPU's instruction
set (AVX-512, AVX2, plain) whose sin/log differ in the last bits, and its algorithms change between
torch releases — so the same seed gave three different models on three machines, and goldens made
on one failed on the others. NumPy's PCG64 bit stream is specified bit for bit, and a float32
uniform is exactly 24 of those bits times 2**-24. Normal-like values are formed from uniforms with
additions and one multiplication only (IEEE arithmetic is exact-rounded the same on every CPU and
SIMD width): the sum of four uniforms (Irwin–Hall), centred and scaled to unit variance. Its tails
stop at ±3.46 σ, which random test weights do not miss.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# Var(U(0,1)) = 1/12, so the sum of four has variance 1/3: scale by sqrt(3) for unit variance.
_UNIT_VARIANCE = np.float32(np.sqrt(3.0))
# Fill this many values per draw: bounds the float32 work arrays for the largest tensors.
_CHUNK = 1 << 22


class RandomSource:
    """Deterministic draws from a seed (an int or a sequence of ints, as numpy's SeedSequence)."""

    def __init__(self, seed: int | Sequence[int]) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def uniform(self, shape: int | Sequence[int], low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """float32 in [low, high)."""
        u = self._rng.random(_shape(shape), dtype=np.float32)
        return torch.from_numpy(u * np.float32(high - low) + np.float32(low))

    def normal(self, shape: int | Sequence[int], std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        """float32, mean `mean`, standard deviation `std` (bell-shaped, bounded at ±3.46 std)."""
        shape = _shape(shape)
        count = int(np.prod(shape, dtype=np.int64))
        out = np.empty(count, dtype=np.float32)
        for start in range(0, count, _CHUNK):
            n = min(_CHUNK, count - start)
            u = self._rng.random((4, n), dtype=np.float32)
            # Parenthesised: the order of the additions is part of the definition.
            out[start : start + n] = ((u[0] + u[1]) + (u[2] + u[3]) - np.float32(2.0)) * _UNIT_VARIANCE
        return torch.from_numpy(out * np.float32(std) + np.float32(mean)).reshape(shape)


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
