"""Small tensor helpers shared by the diffusion code."""

from __future__ import annotations

from torch import Tensor


def append_dims(x: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton axes so `x` broadcasts against an `ndim`-D tensor. (B,) -> (B, 1, ...)"""
    missing = ndim - x.ndim
    if missing < 0:
        raise ValueError(f"append_dims: input has {x.ndim} dims, more than the target {ndim}")
    return x[(...,) + (None,) * missing]
