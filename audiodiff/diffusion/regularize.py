"""The spectral-regularized diffusion objective (arXiv 2603.02447, Section 3, Eq. 3/4).

    total = L_denoise + lambda_eff(sigma) * L_spec(x0_hat, x0),    per example

- `L_spec` is any weighted combination from the loss core (`SpectralLossSum`); empty gives the
  plain baseline, bit-identical to the unregularized objective.
- `lambda_eff` is `lambda` ("unweighted") or `lambda * EDM loss weight` ("weighted",
  paper Section 3.3), and is zero outside an optional sigma (or DDPM timestep) range.
- `x0_hat` is the one-step estimate of the training forward pass by default. With
  `x0_source="rollout"` it is the end of a short deterministic DDIM roll-out from the noisy
  input to sigma = 0 with gradients kept (the other reading of the paper's Section 5.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from audiodiff.diffusion.formulation import Formulation
from audiodiff.diffusion.utils import append_dims
from audiodiff.losses import SpectralLossSum

WEIGHTINGS = ("unweighted", "weighted")
X0_SOURCES = ("one_step", "rollout")


def ddim_rollout(
    denoise: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigma: Tensor,
    x0_first: Tensor,
    steps: int,
    sigma_min: float,
) -> Tensor:
    """Deterministic DDIM from (x, sigma) to sigma = 0 in `steps` denoiser calls, with gradients.

    Per example, the levels are geometric from sigma down to sigma_min, then 0. The first call's
    estimate `x0_first` is reused (it is the training forward pass). `steps = 1` returns it.

    Shapes:
        x, x0_first: (B, ...); sigma: (B,) -> (B, ...)
    """
    x0_hat = x0_first
    if steps == 1:
        return x0_hat
    # levels (B, steps + 1): sigma = s_0 > s_1 > ... > s_{steps-1} >= sigma_min, then 0
    frac = torch.linspace(0, 1, steps, device=sigma.device, dtype=sigma.dtype)
    lo = torch.minimum(torch.full_like(sigma, sigma_min), sigma)
    levels = torch.exp(sigma.log()[:, None] + frac[None] * (lo.log() - sigma.log())[:, None])
    for i in range(1, steps):
        s_prev, s = append_dims(levels[:, i - 1], x.ndim), levels[:, i]
        x = x0_hat + append_dims(s, x.ndim) * (x - x0_hat) / s_prev
        x0_hat = denoise(x, s)
    return x0_hat


class SpectralObjective(nn.Module):
    """Denoising loss plus lambda times a spectral loss of x0_hat against x0.

    Args:
        formulation: any `Formulation` (DDPM, EDM).
        spectral: the spectral loss combination (may be empty).
        lam: lambda; 0 gives the baseline.
        weighting: "unweighted" (lambda) or "weighted" (lambda times EDM's loss weight; EDM only).
        sigma_range: (lo, hi) noise levels where the regularizer is active; None = always.
        t_range: DDPM only, (lo, hi) inclusive timesteps where it is active; None = always.
        x0_source: "one_step" or "rollout".
        rollout_steps: denoiser calls of the roll-out (>= 1).
        rollout_sigma_min: smallest nonzero level of the roll-out (defaults to the formulation's).

    `forward(net, x0, cond)` returns a dict of per-example (B,) tensors: "loss" (the total),
    "denoise", "spectral" (lambda_eff * L_spec), "lambda_eff", and "spec/<label>" for each
    unweighted term, plus "x0_hat" (B, ...) for logging.
    """

    def __init__(
        self,
        formulation: Formulation,
        spectral: SpectralLossSum,
        lam: float = 0.0,
        weighting: str = "unweighted",
        sigma_range: Sequence[float] | None = None,
        t_range: Sequence[int] | None = None,
        x0_source: str = "one_step",
        rollout_steps: int = 4,
        rollout_sigma_min: float | None = None,
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting={weighting!r} is not allowed; choose one of {list(WEIGHTINGS)}")
        if weighting == "weighted" and not formulation.loss_weighted:
            raise ValueError(
                "weighting='weighted' multiplies lambda by the EDM loss weight; it needs an EDM formulation"
            )
        if x0_source not in X0_SOURCES:
            raise ValueError(f"x0_source={x0_source!r} is not allowed; choose one of {list(X0_SOURCES)}")
        if t_range is not None and not formulation.discrete:
            raise ValueError("t_range gates DDPM timesteps; use sigma_range with EDM")
        if rollout_steps < 1:
            raise ValueError(f"rollout_steps must be >= 1, got {rollout_steps}")
        for name, rng in (("sigma_range", sigma_range), ("t_range", t_range)):
            if rng is not None and (len(rng) != 2 or rng[0] > rng[1]):
                raise ValueError(f"{name} must be (lo, hi) with lo <= hi, got {rng}")
        self.formulation, self.spectral, self.lam, self.weighting = formulation, spectral, float(lam), weighting
        self.sigma_range = tuple(sigma_range) if sigma_range is not None else None
        self.t_range = tuple(t_range) if t_range is not None else None
        self.x0_source, self.rollout_steps = x0_source, rollout_steps
        self.rollout_sigma_min = rollout_sigma_min if rollout_sigma_min is not None else formulation.sigma_min

    @property
    def active(self) -> bool:
        """Whether the spectral term is computed at all (lambda != 0 and at least one loss)."""
        return self.lam != 0.0 and len(self.spectral) > 0

    def lambda_eff(self, sigma: Tensor, weight: Tensor, t: Tensor | None = None) -> Tensor:
        """Per-example effective lambda (B,): lambda, times the EDM weight if weighted, gated."""
        lam = torch.full_like(sigma, self.lam)
        if self.weighting == "weighted":
            lam = lam * weight
        if self.sigma_range is not None:
            lam = torch.where((sigma >= self.sigma_range[0]) & (sigma <= self.sigma_range[1]), lam, 0.0)
        if self.t_range is not None and t is not None:
            lam = torch.where((t >= self.t_range[0]) & (t <= self.t_range[1]), lam, 0.0)
        return lam

    def forward(self, net: nn.Module, x0: Tensor, cond: Tensor | None = None, **sample) -> dict[str, Tensor]:
        """Per-example loss terms. `sample` may fix t/sigma and noise (see the formulation's training_terms)."""
        terms = self.formulation.training_terms(net, x0, cond, **sample)
        out = {"denoise": terms["denoise"], "x0_hat": terms["x0_hat"]}
        if not self.active:
            out["loss"] = terms["denoise"]
            return out
        lam = self.lambda_eff(terms["sigma"], terms["weight"], terms.get("t"))
        # Computed for every example and multiplied by the gated lambda: no data-dependent
        # indexing, so no host-device sync and the step stays capturable in a CUDA graph.
        x0_hat = terms["x0_hat"]
        if self.x0_source == "rollout":
            x0_hat = ddim_rollout(
                lambda x, s: self.formulation.denoise(net, x, s, cond),
                terms["x"],
                terms["sigma"],
                x0_hat,
                self.rollout_steps,
                self.rollout_sigma_min,
            )
        spec_terms = self.spectral(x0_hat, x0)
        spectral = lam * self.spectral.combine(spec_terms)
        on = (lam != 0).to(spectral.dtype)
        for label, value in spec_terms.items():
            out[f"spec/{label}"] = value.detach() * on
        out.update(loss=terms["denoise"] + spectral, spectral=spectral, lambda_eff=lam)
        return out
