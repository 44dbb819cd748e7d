"""Sizes for people: decimal units, as the Hub and download tools show them."""

from __future__ import annotations

from typing import Optional


def format_size(n: Optional[int]) -> str:
    """1_500_000 → '1.5 MB'; None (unknown) → '?'."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
