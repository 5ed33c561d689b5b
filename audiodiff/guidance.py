"""Class-conditional sampling: classifier-free guidance and the checks on its config keys.

A UNet with `model.unet.num_classes` and `model.unet.label_dropout` > 0 has a null label (the
unconditional denoiser); `sample.guidance` w mixes D = D(null) + w (D(label) - D(null)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from audiodiff.models.unet import null_label

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig


def guidance_problem(cfg: ExperimentConfig) -> str | None:
    """Why cfg.sample.guidance cannot be used with cfg's model (one line), or None if it can."""
    w = cfg.sample.guidance
    if w == 1:
        return None
    if not w >= 0:  # also NaN
        return f"sample.guidance={w} must be >= 0 (1: plain conditional, 0: unconditional)"
    unet = cfg.model.unet
    if cfg.model.kind != "unet" or null_label(unet) is None:
        have = (
            f"num_classes={unet.num_classes}, label_dropout={unet.label_dropout}"
            if cfg.model.kind == "unet"
            else f"model.kind={cfg.model.kind}"
        )
        return (
            f"sample.guidance={w} needs a class-conditional UNet trained with a null label "
            f"(model.unet.num_classes > 0 and model.unet.label_dropout > 0); this model has {have}"
        )
    return None


def label_dropout_problem(cfg: ExperimentConfig) -> str | None:
    """Why model.unet.label_dropout is out of range or has no classes to drop (one line), or None."""
    unet = cfg.model.unet
    if not 0 <= unet.label_dropout < 1:
        return f"model.unet.label_dropout={unet.label_dropout} must be in [0, 1)"
    if unet.label_dropout and not unet.num_classes:
        return f"model.unet.label_dropout={unet.label_dropout} needs model.unet.num_classes > 0 (class labels to drop)"
    return None


def guided(denoiser, guidance: float, null: int | None):
    """Classifier-free guidance around denoiser(x, sigma, labels) -> x0_hat, for every sampler.

    D = D(null) + w (D(labels) - D(null)), the two evaluated as one batch of 2B. w = 1 returns
    `denoiser` itself (the plain conditional model, one call per step); w = 0 calls it once with
    the null label (the unconditional model). `null` is the null label's index (None: the model
    has none, and only w = 1 is allowed).
    """
    if guidance == 1:
        return denoiser
    if null is None or guidance < 0:
        raise ValueError(f"sample.guidance={guidance} needs a model with a null label and guidance >= 0")

    def fn(x: Tensor, sigma: Tensor, labels: Tensor) -> Tensor:
        empty = torch.full_like(labels, null)
        if guidance == 0:
            return denoiser(x, sigma, empty)
        both = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, empty]))
        cond, uncond = both.chunk(2)
        return uncond + guidance * (cond - uncond)

    return fn
