"""The interface every diffusion formulation (DDPM, EDM, ...) offers its callers.

Callers (training, the regularizer, sampling) hold a `Formulation` and never ask which one:
what differs is declared here as attributes and methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from torch import Tensor, nn


class NoiseOperator(Protocol):
    """A data-dependent prior N(0, Sigma), Sigma = L L^T, bound to one batch's condition: `colour` is L (white
    noise -> the prior's noise), `whiten` L^-1 or an approximation of it (the loss's Sigma^-1/2 weighting).
    Shapes: (B, C, T) in and out, B and T those of the condition's batch and samples."""

    def colour(self, z: Tensor) -> Tensor:
        """White noise z ~ N(0, I) -> the prior's noise L z: training's eps and every sampler draw."""

    def whiten(self, err: Tensor) -> Tensor:
        """An error in noise space -> L^-1 err, whose squared or absolute mean is the denoising loss."""


@runtime_checkable
class Formulation(Protocol):
    """A diffusion formulation in the sigma view (x = x0 + sigma eps).

    Attributes:
        level_name: keyword under which `training_terms` takes the training level: "t" (a DDPM
            step) or "sigma" (a noise level).
        level_draw: which per-example random number `levels_from` maps to levels: "u" (uniform
            in [0, 1)) or "z" (standard normal).
        discrete: trained on integer steps (DDPM): the "fast" and "ddpm" samplers and
            `regularizer.t_range` need it.
        loss_weighted: the denoising loss carries a weight lambda(sigma) (EDM), so the regularizer's
            "weighted" lambda means something.
        sigma_min, sigma_max: the sampling range.
    """

    level_name: str
    level_draw: str
    discrete: bool
    loss_weighted: bool
    sigma_min: float
    sigma_max: float

    def prior_std(self, sigma_max: float | None = None) -> float:
        """Std of the starting sample at `sigma_max` (default: the formulation's)."""

    def prior_noise(self, cond: Tensor | None) -> NoiseOperator | None:
        """The data-dependent prior N(0, L L^T) of a batch condition (None: N(0, I)) as a `NoiseOperator`;
        the samplers colour every noise draw, the starting one included, by it."""

    def denoise(self, net: nn.Module, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        """x0_hat from x (B, ...) at noise levels sigma (B,)."""

    def levels_from(self, draw: Tensor) -> Tensor:
        """Training levels (B,) from per-example draws (B,) of the kind `level_draw` names."""

    def sample_training(self, x0: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        """Training levels (B,) and Gaussian noise like x0, drawn from `generator` (default: global)."""

    def training_terms(self, net: nn.Module, x0: Tensor, cond: Tensor | None = None, **sample) -> dict[str, Tensor]:
        """Per-example denoising loss and the regularizer's inputs (see DDPM/EDM.training_terms)."""

    def step_sigmas(self, steps: int) -> Tensor | None:
        """`steps` evenly spaced training levels then 0 (discrete formulations), else None."""

    def fractional_steps(self, sigmas: Tensor) -> list[float]:
        """Training-step positions of `sigmas` that fall between integer steps (discrete only)."""


def fill_draws(formulation, x0: Tensor, level: Tensor | None, noise: Tensor | None) -> tuple[Tensor, Tensor]:
    """`level` and `noise` as given, what is missing drawn by `formulation.sample_training(x0)`.

    Both are drawn (in that order) whenever one is missing, so the global RNG advances the same way.
    """
    if level is None or noise is None:
        new_level, new_noise = formulation.sample_training(x0)
        level = new_level if level is None else level
        noise = new_noise if noise is None else noise
    return level, noise


def training_sample(formulation: Formulation, draws: Mapping[str, Tensor], noise: Tensor) -> dict[str, Tensor]:
    """Keyword arguments of `SpectralObjective` for one batch: {level_name: levels (B,), "noise": noise}.

    Args:
        draws: per-example random numbers {"u": uniform (B,), "z": normal (B,)}; the formulation
            uses the one its `level_draw` names.
    """
    return {formulation.level_name: formulation.levels_from(draws[formulation.level_draw]), "noise": noise}
