"""Sampling a network: the plan (sampler function, sigma grid, options) and seeded batch generation."""

from __future__ import annotations

import warnings
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from audiodiff.builders import SAMPLER_PLANS, SAMPLER_SETTINGS
from audiodiff.diffusion import Formulation
from audiodiff.diffusion.formulation import NoiseOperator
from audiodiff.diffusion.samplers import SeededNoise
from audiodiff.guidance import guidance_problem, guided
from audiodiff.models import DiffWave
from audiodiff.models.diffwave_infer import DiffWaveInference

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig


def sampling_plan(cfg: ExperimentConfig, formulation: Formulation, sampler: str, steps: int) -> tuple:
    """(sampler function, sigma grid, extra kwargs) for a sampler name (a SAMPLER_PLANS key) and step count."""
    if sampler not in SAMPLER_PLANS:
        raise ValueError(f"sampler {sampler!r} is not allowed; choose one of {list(SAMPLER_PLANS)}")
    return SAMPLER_PLANS[sampler](cfg.sample, formulation, steps)


def sampler_settings(cfg: ExperimentConfig, formulation: Formulation, sampler: str, asked: dict) -> dict:
    """Apply the sampler settings asked for (None: not asked) to cfg.sample; returns those it reads.

    Raises:
        ValueError: a setting the sampler would ignore (e.g. --steps with "fast", --eta with "heun").
    """
    if sampler not in SAMPLER_SETTINGS:
        raise ValueError(f"sampler {sampler!r} is not allowed; choose one of {list(SAMPLER_SETTINGS)}")
    reads = [k for k in SAMPLER_SETTINGS[sampler] if not (sampler == "ddim" and k == "rho" and formulation.discrete)]
    for key, value in asked.items():
        if value is None:
            continue
        if key not in reads:
            takes = ", ".join(f"--{k}" for k in reads if k != "fast_betas") or "no settings"
            raise ValueError(f"generate: --{key} does not apply to --sampler {sampler} (it takes {takes})")
        setattr(cfg.sample, key, value)
    return {k: list(cfg.sample[k]) if k == "fast_betas" else cfg.sample[k] for k in reads}


def warn_fractional_steps(net: nn.Module, formulation: Formulation, sigmas: Tensor) -> None:
    """Warn when a DDPM DiffWave with embed_interp "exact" is asked for fractional steps.

    DDPM trains on integer steps only; with "exact" sinusoids (up to 10^4 rad per step) a
    fractional step's embedding is unrelated to any trained one, and the eps error there was
    measured up to 27x that of the neighbouring integer steps. Checkpoints from before "lerp"
    became the DDPM default store "exact" and still sample as they did, with this warning.
    embed_freqs "edm" (at most 1 rad per step) is smooth between steps: no warning.
    """
    if not (isinstance(net, DiffWave) and net.config.embed_interp == "exact" and net.config.embed_freqs == "diffwave"):
        return
    steps = formulation.fractional_steps(sigmas)
    if steps:
        warnings.warn(
            f"DiffWave with embed_interp='exact' trained on integer DDPM steps is sampled at fractional steps "
            f"{steps}: their embeddings were never trained, expect worse "
            "samples; sample with --sampler ddpm or ddim (integer steps), or retrain with embed_interp lerp/auto",
            stacklevel=3,
        )


@torch.no_grad()
def sample(
    net: nn.Module,
    formulation: Formulation,
    cfg: ExperimentConfig,
    seeds: list[int],
    shape: tuple[int, ...],
    cond: Tensor | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    callback=None,
    start: tuple[int, Tensor] | None = None,
) -> Tensor:
    """Generate len(seeds) samples of `shape` (without the batch axis); sample k depends only on seeds[k].

    A class-conditional model is guided by cfg.sample.guidance (`guided`); a guidance the model
    cannot take is a ValueError naming the keys. `start` = (skip, init) starts the sampler `skip`
    steps down its grid from `init` noised to that level (`run_plan`): shallow diffusion.
    """
    if problem := guidance_problem(cfg):
        raise ValueError(problem)
    plan = sampling_plan(cfg, formulation, sampler or cfg.sample.sampler, steps or cfg.sample.steps)
    warn_fractional_steps(net, formulation, plan[1])
    device = next(net.parameters()).device
    prior = formulation.prior_noise(cond)  # from the condition as given, before DiffWave projects it
    if isinstance(net, DiffWave):
        if device.type == "cpu":
            net = DiffWaveInference(net)  # the same function, about 2x faster on CPUs
        if cond is not None:
            cond = net.project_condition(cond)  # the mel projections are the same at every step

    clip = cfg.sample.clip_denoised

    guide = guided(partial(formulation.denoise, net), cfg.sample.guidance, getattr(net, "null_label", None))

    def denoiser(x, s, c):
        x0_hat = guide(x, s, c)
        return x0_hat.clamp(-1, 1) if clip else x0_hat

    return run_plan(plan, denoiser, formulation, seeds, shape, cond, callback, device, prior=prior, start=start)


@torch.no_grad()
def run_plan(
    plan: tuple,
    denoiser,
    formulation: Formulation,
    seeds: list[int],
    shape: tuple[int, ...],
    cond: Tensor | None = None,
    callback=None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    prior: NoiseOperator | None = None,
    start: tuple[int, Tensor] | None = None,
) -> Tensor:
    """Run a sampling plan (from `sampling_plan`) with any denoiser(x, sigma, cond) -> x0_hat.

    The starting noise is drawn per seed and scaled by the formulation's prior std, as `sample`
    does for a network; `bench/sampler_bias.py` passes an exact denoiser instead of one. `prior`
    (the batch's, from `formulation.prior_noise`) colours every noise draw, the starting one included:
    a data-dependent prior N(0, L L^T) (PriorGrad, SpecGrad).

    `start` = (skip, init), init (B, *shape) in data space: shallow diffusion (DiffSinger, Liu et al.
    2022). The first `skip` steps of the grid are skipped and the sampler starts at its level
    sigma = sigmas[skip] from x = init + sigma z (the VP state sqrt(abar) init + sqrt(1 - abar) z,
    abar = 1 / (1 + sigma^2)), z the first noise draw (coloured by `prior` as every draw is); the
    remaining steps run unchanged. Without it the start is pure noise of std `prior_std(sigmas[0])`.
    """
    fn, sigmas, extra = plan
    seeded = SeededNoise(seeds)

    def noise(like: Tensor) -> Tensor:
        return seeded(like) if prior is None else prior.colour(seeded(like))

    z = noise(torch.zeros(len(seeds), *shape, device=device, dtype=dtype))
    if start is None:
        x = z * formulation.prior_std(float(sigmas[0]))
    else:
        if start[1].shape != z.shape:
            raise ValueError(f"start: init of shape {tuple(start[1].shape)}, the samples' is {tuple(z.shape)}")
        sigmas = sigmas[start_level(sigmas, start[0]) :]
        x = start[1].to(z) + z * float(sigmas[0])
    return fn(denoiser, x, sigmas, cond=cond, noise=noise, callback=callback, **extra)


def start_level(sigmas: Tensor, skip: int, what: str = "skip", grid: str = "the grid") -> int:
    """`skip` if the grid (levels, then 0) keeps at least one step after skipping that many, else ValueError."""
    levels = len(sigmas) - 1
    if not 0 <= skip < levels:
        raise ValueError(
            f"{what} {skip} is out of range: allowed 0..{levels - 1}, the steps to skip of {grid}'s {levels} levels"
        )
    return skip
