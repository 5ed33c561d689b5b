"""Helpers shared by the spectral losses: input checks, dtype promotion, reductions."""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("sum", "mean")
SPECTRAL_NDIMS = ("auto", 1, 2)


def check_pair(x0_hat: Tensor, x0: Tensor, loss: str, ndims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Validate a (prediction, target) pair and promote half precision to float32.

    Args:
        x0_hat: model estimate, (B, C, T) for audio or (B, C, H, W) for images/mels.
        x0: target with the same shape.
        loss: name of the calling loss, used in error messages.
        ndims: allowed tensor ranks (3 for audio, 4 for images/mels).

    Returns:
        Both tensors, in float32 when they came as float16/bfloat16.
    """
    if x0_hat.shape != x0.shape:
        raise ValueError(f"{loss}: x0_hat {tuple(x0_hat.shape)} and x0 {tuple(x0.shape)} must have the same shape")
    if x0.ndim not in ndims:
        kinds = {3: "(B, C, T) audio", 4: "(B, C, H, W) image/mel"}
        allowed = " or ".join(kinds[n] for n in ndims)
        raise ValueError(f"{loss}: expected {allowed} input, got shape {tuple(x0.shape)}")
    if x0.dtype in (torch.float16, torch.bfloat16) or x0_hat.dtype in (torch.float16, torch.bfloat16):
        return x0_hat.float(), x0.float()
    return x0_hat, x0


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming `name` when `value` is not one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def spectral_ndim(x: Tensor, ndim: str | int) -> int:
    """Number of trailing axes a transform acts on: 1 for (B, C, T), 2 for (B, C, H, W)."""
    if ndim == "auto":
        return x.ndim - 2
    if ndim > x.ndim - 2:
        raise ValueError(f"ndim={ndim} transform needs a (B, C, H, W) input, got shape {tuple(x.shape)}")
    return int(ndim)
