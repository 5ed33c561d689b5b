"""The one training-example type every task's dataset yields."""

from __future__ import annotations

from typing import TypedDict

import torch
from torch import Tensor


class Example(TypedDict, total=False):
    """One training example with its own random draws (collated into a batch by the DataLoader).

    Keys:
        x: the clean example in data space: audio (1, T), log-mel (n_mels, frames) or image (C, H, W);
            the task's `to_model` turns a batch of them into model space.
        noise: Gaussian diffusion noise in model space (the shape of the task's model input).
        u, z: a uniform [0, 1) and a standard-normal number () for the noise level (see
            `Formulation.level_draw`).
        index: position of the example in its dataset.
        label: class label () where the data has one (images).
    """

    x: Tensor
    noise: Tensor
    u: Tensor
    z: Tensor
    index: int
    label: Tensor


def make_example(x: Tensor, g: torch.Generator, index: int, noise_shape: tuple[int, ...], **extra) -> Example:
    """An Example around `x`, drawing noise, u and z (in that order) from the example's generator `g`."""
    noise = torch.randn(noise_shape, generator=g)
    u, z = torch.rand((), generator=g), torch.randn((), generator=g)
    return Example(x=x, noise=noise, u=u, z=z, index=index, **extra)
