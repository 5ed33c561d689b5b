"""DDPM (Ho et al. 2020) with eps / x0 / v prediction, as a denoiser in the sigma view.

Symbols: beta_t (noise schedule), alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s.
Forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
In the variance-exploding (sigma) view used by the samplers, x = x_t / sqrt(abar_t) =
x0 + sigma eps with sigma_t = sqrt((1 - abar_t) / abar_t), i.e. abar = 1 / (1 + sigma^2).

Clean estimate (paper arXiv 2603.02447, Section 3; the spectral loss is always on x0_hat):
  eps-prediction: x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)
  x0-prediction:  x0_hat = net output
  v-prediction:   x0_hat = sqrt(abar_t) x_t - sqrt(1 - abar_t) v_hat   (Salimans & Ho 2022)

With a data-dependent prior (`audiodiff.diffusion.prior`: PriorGrad's, SpecGrad's), eps ~ N(0, Sigma),
Sigma = L L^T: eps = L z, z white; the formulas above hold with that eps, and the denoising error is
whitened by L^-1 (PriorGrad: L = diag(std), the error divided by the std).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from audiodiff.diffusion.formulation import NoiseOperator, fill_draws
from audiodiff.diffusion.samplers import ddpm_sigmas
from audiodiff.diffusion.utils import append_dims

PREDICTIONS = ("eps", "x0", "v")
LOSS_TYPES = ("l2", "l1")
SCHEDULES = ("linear", "cosine")
# Named presets: (kind, steps, beta_start, beta_end)
SCHEDULE_PRESETS = {
    "diffwave": ("linear", 50, 1e-4, 0.05),  # DiffWave base (Kong et al. 2021)
    "ddpm": ("linear", 1000, 1e-4, 0.02),  # Ho et al. 2020
    "cosine": ("cosine", 1000, 0.0, 0.0),  # Nichol & Dhariwal 2021
}


def beta_schedule(kind: str, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Betas of a training noise schedule, float64 (steps,).

    Args:
        kind: "linear" (beta_start .. beta_end) or "cosine" (Nichol & Dhariwal 2021, s = 0.008,
            betas clipped to 0.999).
        steps: number of diffusion steps T.
        beta_start, beta_end: endpoints of the linear schedule (ignored by cosine).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"beta schedule {kind!r} is not allowed; choose one of {list(SCHEDULES)}")
    if steps < 1:
        raise ValueError(f"beta schedule: steps must be >= 1, got {steps}")
    if kind == "linear":
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"linear schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    s = 0.008
    f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)


class DDPM(nn.Module):
    """Discrete-time DDPM with a choice of prediction target and denoising loss.

    Args:
        betas: training schedule (T,), e.g. from `beta_schedule`; or use `DDPM.from_preset`.
        prediction: "eps", "x0" or "v".
        loss_type: "l2" (mean squared error) or "l1" (DiffWave trains with L1 on eps).
        prior: None for the standard prior N(0, I), or a module whose `operator(cond)` gives the data-dependent
            prior of a batch condition (B, ...) as a `NoiseOperator` (`audiodiff.diffusion.prior`).

    The network is called as `net(x_t, t, cond)` with x_t in the VP scaling and t a float
    tensor (B,) of (possibly fractional) training step indices 0 .. T-1.
    """

    level_name, level_draw, discrete, loss_weighted = "t", "u", True, False

    def __init__(
        self, betas: Tensor, prediction: str = "eps", loss_type: str = "l2", prior: nn.Module | None = None
    ) -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction={prediction!r} is not allowed; choose one of {list(PREDICTIONS)}")
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={loss_type!r} is not allowed; choose one of {list(LOSS_TYPES)}")
        betas = torch.as_tensor(betas, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, 0)
        self.prediction, self.loss_type, self.prior = prediction, loss_type, prior
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("abar", abar, persistent=False)
        self.register_buffer("sqrt_abar", abar.sqrt(), persistent=False)
        self.register_buffer("sigmas", ((1 - abar) / abar).sqrt(), persistent=False)

    @classmethod
    def from_preset(
        cls, name: str, prediction: str = "eps", loss_type: str = "l2", prior: nn.Module | None = None
    ) -> DDPM:
        """Build from a named schedule in SCHEDULE_PRESETS ("diffwave", "ddpm", "cosine")."""
        if name not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown DDPM schedule preset {name!r}; choose one of {list(SCHEDULE_PRESETS)}")
        return cls(beta_schedule(*SCHEDULE_PRESETS[name]), prediction, loss_type, prior)

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def prior_std(self, sigma_max: float | None = None) -> float:
        """Std of the starting sample in the sigma view: x_T ~ N(0, I) means x = x_T / sqrt(abar_T)."""
        sigma = self.sigma_max if sigma_max is None else sigma_max
        return math.sqrt(1 + sigma**2)

    def prior_noise(self, cond: Tensor | None) -> NoiseOperator | None:
        """The data-dependent prior of a batch condition (`NoiseOperator`: colour, whiten), or None for N(0, I):
        training noise and every sampler draw are coloured by it, the denoising error whitened."""
        if self.prior is None:
            return None
        if cond is None:
            raise ValueError("a DDPM with a data-dependent prior (diffusion.prior) needs the condition it follows")
        return self.prior.operator(cond)

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Continuous step index for a noise level, linear in sqrt(abar) between training steps.

        This is the interpolation of DiffWave's fast sampling (Kong et al. 2021, Appendix B):
        a level between steps t and t+1 maps to t + (sqrt(abar_t) - sqrt(abar)) /
        (sqrt(abar_t) - sqrt(abar_{t+1})). Clamped to [0, T-1]. (B,) -> (B,)
        """
        sqrt_abar = (1 + sigma.double() ** 2).rsqrt()
        table = self.sqrt_abar.to(sigma.device)  # decreasing in t
        idx = torch.searchsorted(-table, -sqrt_abar).clamp(1, len(table) - 1)  # table[idx-1] >= s > table[idx]
        hi, lo = table[idx - 1], table[idx]
        t = (idx - 1) + (hi - sqrt_abar) / (hi - lo)
        return t.clamp(0, len(table) - 1).to(sigma.dtype)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for integer steps t (B,)."""
        abar = append_dims(self.abar[t].to(x0.dtype), x0.ndim)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def x0_from_output(self, out: Tensor, x_t: Tensor, abar: Tensor) -> Tensor:
        """Clean estimate from the network output, abar (B,) broadcast over x_t."""
        abar = append_dims(abar.to(x_t.dtype), x_t.ndim)
        if self.prediction == "eps":
            return (x_t - (1 - abar).sqrt() * out) / abar.sqrt()
        if self.prediction == "x0":
            return out
        return abar.sqrt() * x_t - (1 - abar).sqrt() * out

    def target(self, x0: Tensor, noise: Tensor, abar: Tensor) -> Tensor:
        """What the network should output for this prediction type."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        abar = append_dims(abar.to(x0.dtype), x0.ndim)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def denoise(self, net: nn.Module, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        """The shared denoiser interface: x = x0 + sigma eps (sigma view) -> x0_hat.

        Shapes: x (B, C, T) or (B, C, H, W); sigma (B,); returns the shape of x.
        """
        abar = (1 + sigma.double() ** 2).reciprocal()
        x_t = x * append_dims(abar.sqrt().to(x.dtype), x.ndim)
        out = net(x_t, self.sigma_to_t(sigma), cond)
        return self.x0_from_output(out, x_t, abar)

    def levels_from(self, draw: Tensor) -> Tensor:
        """Training steps from uniform draws u in [0, 1): t = floor(u T). (B,) -> (B,)"""
        return (draw * self.num_steps).long().clamp(0, self.num_steps - 1)

    def step_sigmas(self, steps: int) -> Tensor:
        """`steps` evenly spaced training levels (at most T), largest first, then 0."""
        return ddpm_sigmas(self.sigmas, min(steps, self.num_steps))

    def fractional_steps(self, sigmas: Tensor) -> list[float]:
        """Step positions `sigma_to_t` gives the nonzero `sigmas` that are more than 1e-3 off an integer step."""
        t = self.sigma_to_t(sigmas[sigmas > 0].double())
        off = (t - t.round()).abs()
        return [round(v, 3) for v in t[off > 1e-3].tolist()]

    def sample_training(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Uniform integer steps t (B,) and Gaussian noise like x0."""
        t = torch.randint(0, self.num_steps, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return t, noise

    def training_terms(
        self,
        net: nn.Module,
        x0: Tensor,
        cond: Tensor | None = None,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Per-example denoising loss and the quantities the regularizer needs.

        With a data-dependent prior the noise is the standard noise coloured by `prior_noise(cond)` and
        the error is whitened by it (Sigma^-1/2 weighting); x0_hat keeps its formula.

        Returns:
            {"denoise": (B,), "x0_hat": like x0, "x": noisy input in the sigma view,
             "sigma": (B,), "weight": (B,) ones (EDM's loss weight has no DDPM analogue), "t": (B,) steps}
        """
        t, noise = fill_draws(self, x0, t, noise)
        prior = self.prior_noise(cond)
        if prior is not None:
            noise = prior.colour(noise)
        abar = self.abar[t]
        x_t = self.q_sample(x0, t, noise)
        out = net(x_t, t.to(x0.dtype), cond)
        err = out - self.target(x0, noise, abar)
        if prior is not None:
            err = prior.whiten(err)
        denoise = (err.abs() if self.loss_type == "l1" else err.square()).flatten(1).mean(1)
        sigma = self.sigmas[t].to(x0.dtype)
        return {
            "denoise": denoise,
            "x0_hat": self.x0_from_output(out, x_t, abar),
            "x": x_t / append_dims(abar.sqrt().to(x0.dtype), x0.ndim),
            "sigma": sigma,
            "weight": torch.ones_like(sigma),
            "t": t,
        }
