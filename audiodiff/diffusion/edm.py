"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").

Preconditioning (their Table 1), with sigma_data the data standard deviation:
  c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
  c_out  = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
  c_in   = 1 / sqrt(sigma^2 + sigma_data^2)
  c_noise = ln(sigma) / 4
  D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)          (D is x0_hat)
Training: ln(sigma) ~ N(P_mean, P_std^2), loss weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiodiff.diffusion.formulation import fill_draws
from audiodiff.diffusion.utils import append_dims


class EDM(nn.Module):
    """EDM preconditioning, sigma sampling and loss.

    Args:
        sigma_data: standard deviation of the data (0.5 for images in [-1, 1]; measure it for audio).
        p_mean, p_std: log-normal training sigma distribution.
        sigma_min, sigma_max: sampling range (defaults from the paper).

    The network is called as `net(c_in * x, c_noise, cond)` with c_noise (B,).
    """

    level_name, level_draw, discrete, loss_weighted = "sigma", "z", False, True

    def __init__(
        self,
        sigma_data: float = 0.5,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ) -> None:
        super().__init__()
        if sigma_data <= 0 or p_std <= 0 or not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"EDM: need sigma_data > 0, p_std > 0, 0 < sigma_min < sigma_max; got "
                f"{sigma_data=}, {p_std=}, {sigma_min=}, {sigma_max=}"
            )
        self.sigma_data, self.p_mean, self.p_std = sigma_data, p_mean, p_std
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def prior_std(self, sigma_max: float | None = None) -> float:
        """Std of the starting sample: x ~ N(0, sigma_max^2 I)."""
        return self.sigma_max if sigma_max is None else sigma_max

    def prior_noise(self, cond: Tensor | None) -> None:
        """No data-dependent prior: N(0, sigma_max^2 I) whatever the condition."""
        return None

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in, c_noise), each (B,)."""
        sd2 = self.sigma_data**2
        total = sigma**2 + sd2
        return sd2 / total, sigma * self.sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2. (B,) -> (B,)"""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def denoise(self, net: nn.Module, x: Tensor, sigma: Tensor, cond: Tensor | None = None) -> Tensor:
        """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise). x (B, ...), sigma (B,) -> x0_hat."""
        c_skip, c_out, c_in, c_noise = (append_dims(c, x.ndim) for c in self.scalings(sigma.to(x.dtype)))
        return c_skip * x + c_out * net(c_in * x, c_noise.flatten(), cond)

    def levels_from(self, draw: Tensor) -> Tensor:
        """Training sigmas from standard-normal draws z: exp(P_mean + P_std z). (B,) -> (B,)"""
        return (self.p_mean + self.p_std * draw).exp()

    def step_sigmas(self, steps: int) -> None:
        """None: EDM has no training steps (samplers use a Karras grid)."""
        return None

    def fractional_steps(self, sigmas: Tensor) -> list[float]:
        """Empty: continuous sigmas are all trained."""
        return []

    def sample_training(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Log-normal sigmas (B,) and Gaussian noise like x0."""
        z = torch.randn(x0.shape[0], device=x0.device, dtype=x0.dtype, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return (self.p_mean + self.p_std * z).exp(), noise

    def training_terms(
        self,
        net: nn.Module,
        x0: Tensor,
        cond: Tensor | None = None,
        sigma: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Per-example weighted EDM loss `lambda(sigma) * mean (D - x0)^2` and x0_hat = D.

        Returns:
            {"denoise": (B,), "x0_hat", "x": noisy input, "sigma": (B,), "weight": lambda(sigma) (B,)}
        """
        sigma, noise = fill_draws(self, x0, sigma, noise)
        x = x0 + append_dims(sigma, x0.ndim) * noise
        x0_hat = self.denoise(net, x, sigma, cond)
        weight = self.loss_weight(sigma)
        denoise = weight * (x0_hat - x0).square().flatten(1).mean(1)
        return {"denoise": denoise, "x0_hat": x0_hat, "x": x, "sigma": sigma, "weight": weight}
