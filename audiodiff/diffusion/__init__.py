"""Diffusion formulations (DDPM, EDM), the spectral-regularized objective and samplers.

Every formulation exposes one denoiser `denoise(net, x, sigma, cond) -> x0_hat` in the
variance-exploding scaling `x = x0 + sigma * eps` (the k-diffusion / EDM convention), so the
samplers never need to know which formulation trained the network.
"""

from audiodiff.diffusion.ddpm import DDPM, beta_schedule
from audiodiff.diffusion.edm import EDM
from audiodiff.diffusion.formulation import Formulation, training_sample
from audiodiff.diffusion.regularize import SpectralObjective
from audiodiff.diffusion.utils import append_dims

__all__ = ["DDPM", "EDM", "Formulation", "SpectralObjective", "append_dims", "beta_schedule", "training_sample"]
