"""Samplers over the shared denoiser interface, and noise-level grids.

Every sampler has the signature
    sample_x(denoiser, x, sigmas, *, cond=None, noise=None, callback=None, **options) -> Tensor
where `denoiser(x, sigma, cond) -> x0_hat` works in the sigma view (x = x0 + sigma eps),
`x` is the starting sample (noise already scaled by the formulation's `prior_std`),
`sigmas` is a decreasing 1-D grid ending in 0, `noise(like) -> Tensor` draws fresh Gaussian
noise (default `torch.randn_like`; use `SeededNoise` for per-sample seeds), and
`callback(step, sigma, x, x0_hat)` reports progress.

- `sample_ddim`: DDIM (Song et al. 2021) with eta. In the sigma view the DDIM update is an
  ancestral Euler step with sigma_up = eta * sigma_next * sqrt(sigma^2 - sigma_next^2) / sigma;
  eta = 0 is deterministic DDIM, eta = 1 is DDPM ancestral sampling with the posterior
  variance beta_tilde. On `ddpm_sigmas` with eta = 1 it is DDPM; on `fast_sigmas` with eta = 1
  it is DiffWave's fast sampling (Kong et al. 2021, Algorithm 2 of Appendix B).
- `sample_euler`, `sample_heun`: EDM's deterministic/stochastic samplers (Karras et al. 2022,
  Algorithm 2, with optional churn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
Noise = Callable[[Tensor], Tensor]
Callback = Callable[[int, float, Tensor, Tensor], None]

# DiffWave's 6-step inference schedule for the base model (Kong et al. 2021, Table 1 setting).
DIFFWAVE_FAST_BETAS = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)


class SeededNoise:
    """Gaussian noise from one generator per batch row, so row k depends only on seeds[k].

    A sample generated with seed s is then identical whatever the batch size or position.

    Args:
        seeds: one integer seed per batch row.
        device: device of the generators (CPU generators work for any device; noise is moved).
    """

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> None:
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.device = torch.device(device)

    def __call__(self, like: Tensor) -> Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"SeededNoise has {len(self.generators)} seeds but the batch has {like.shape[0]} rows")
        rows = [torch.randn(like.shape[1:], generator=g, device=self.device, dtype=like.dtype) for g in self.generators]
        return torch.stack(rows).to(like.device)


def _sigma_batch(sigma: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype)


def _grid(sigmas: Tensor | Sequence[float]) -> list[float]:
    """Validate a noise-level grid and return it as Python floats (one host read, then no syncs).

    Python floats keep the sampler loop free of 0-d tensor arithmetic and data-dependent branches,
    so the whole loop can be captured by torch.compile / CUDA graphs.
    """
    grid = sigmas.tolist() if isinstance(sigmas, Tensor) else [float(s) for s in sigmas]
    if len(grid) < 2 or (isinstance(sigmas, Tensor) and sigmas.ndim != 1):
        raise ValueError(f"sigmas must be a 1-D grid of at least 2 levels, got {sigmas}")
    if any(a <= b for a, b in zip(grid, grid[1:])) or grid[-1] < 0:
        raise ValueError("sigmas must be strictly decreasing and non-negative (usually ending in 0)")
    return grid


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    cond: Tensor | None = None,
    noise: Noise | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM with eta (0 deterministic, 1 = DDPM ancestral). See the module docstring."""
    grid = _grid(sigmas)
    noise = noise or torch.randn_like
    for i, (sigma, sigma_next) in enumerate(zip(grid, grid[1:])):
        x0_hat = denoiser(x, _sigma_batch(sigma, x), cond)
        if callback is not None:
            callback(i, sigma, x, x0_hat)
        sigma_up = min(sigma_next, eta * sigma_next * math.sqrt(sigma**2 - sigma_next**2) / sigma)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        x = x0_hat + (sigma_down / sigma) * (x - x0_hat)
        if sigma_up > 0:
            x = x + sigma_up * noise(x)
    return x


def sample_ddpm(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    cond: Tensor | None = None,
    noise: Noise | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """DDPM ancestral sampling (posterior variance beta_tilde) = DDIM with eta = 1.

    On `ddpm_sigmas(...)` it is Ho et al.'s sampler; on `fast_sigmas(...)` DiffWave's fast sampling.
    """
    return sample_ddim(denoiser, x, sigmas, cond=cond, noise=noise, callback=callback, eta=1.0)


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    cond: Tensor | None = None,
    noise: Noise | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler steps of the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma."""
    return sample_heun(denoiser, x, sigmas, cond=cond, noise=noise, callback=callback, second_order=False)


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    cond: Tensor | None = None,
    noise: Noise | None = None,
    callback: Callback | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    second_order: bool = True,
) -> Tensor:
    """EDM sampler (Karras et al. 2022, Algorithm 2): Heun steps with optional churn.

    With s_churn = 0 it is the deterministic Heun sampler (2 network calls per step, 1 for the
    last step to sigma = 0). Churn adds noise to go from sigma up to sigma_hat = sigma (1 + gamma),
    gamma = min(s_churn / N, sqrt(2) - 1) for sigma in [s_tmin, s_tmax].
    """
    grid = _grid(sigmas)
    noise = noise or torch.randn_like
    n = len(grid) - 1
    for i, (sigma, sigma_next) in enumerate(zip(grid, grid[1:])):
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * noise(x)
        x0_hat = denoiser(x, _sigma_batch(sigma_hat, x), cond)
        if callback is not None:
            callback(i, sigma_hat, x, x0_hat)
        d = (x - x0_hat) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        if second_order and sigma_next > 0:
            d_next = (x_next - denoiser(x_next, _sigma_batch(sigma_next, x), cond)) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        x = x_next
    return x


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """EDM's grid (their Eq. 5): n levels from sigma_max to sigma_min spaced in sigma^(1/rho), then 0."""
    if n < 1 or not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"karras_sigmas: need n >= 1 and 0 < sigma_min < sigma_max, got {n=}, {sigma_min=}, {sigma_max=}"
        )
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    inv_rho = 1 / rho
    sig = (sigma_max**inv_rho + ramp * (sigma_min**inv_rho - sigma_max**inv_rho)) ** rho
    return torch.cat([sig, sig.new_zeros(1)]).float()


def ddpm_sigmas(train_sigmas: Tensor, steps: int | None = None) -> Tensor:
    """Training-step noise levels, all of them or `steps` evenly spaced ones, largest first, then 0.

    Args:
        train_sigmas: the DDPM's `sigmas` (T,), increasing with t.
        steps: number of sampling steps (<= T); None uses all T steps.
    """
    total = len(train_sigmas)
    steps = total if steps is None else steps
    if not 1 <= steps <= total:
        raise ValueError(f"ddpm_sigmas: steps must be in 1..{total}, got {steps}")
    idx = torch.linspace(total - 1, 0, steps).round().long()
    return torch.cat([train_sigmas[idx], train_sigmas.new_zeros(1)]).float()


def fast_sigmas(infer_betas: Sequence[float] = DIFFWAVE_FAST_BETAS) -> Tensor:
    """Noise levels of a short inference schedule (DiffWave's fast sampling), largest first, then 0.

    The inference betas define their own abar_s = prod (1 - beta); each step s runs at
    sigma_s = sqrt((1 - abar_s) / abar_s). A DDPM denoiser maps each sigma_s to a fractional
    training step by the sqrt(abar) interpolation of DiffWave's Algorithm 2 (`DDPM.sigma_to_t`).
    """
    betas = torch.as_tensor(list(infer_betas), dtype=torch.float64)
    if betas.ndim != 1 or len(betas) == 0 or not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(f"inference betas must be a non-empty list in (0, 1), got {list(infer_betas)}")
    abar = torch.cumprod(1 - betas, 0)
    sig = ((1 - abar) / abar).sqrt().flip(0)
    return torch.cat([sig, sig.new_zeros(1)]).float()


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "euler": sample_euler, "heun": sample_heun}
