"""Registries of what a config can name, and the builders over them.

    NETWORKS       model.kind        -> network builder
    FORMULATIONS   diffusion.kind    -> formulation builder
    SAMPLER_PLANS  sample.sampler    -> (sampler function, sigma grid, options)
    TASKS          task              -> the Task class (what is generated; audiodiff/tasks/)

The config schema, the CLI's choices and the error messages take their names from these dicts:
adding an entry is all a new network, formulation, sampler or task needs here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from audiodiff.diffusion import DDPM, EDM, Formulation
from audiodiff.diffusion.prior import build_prior
from audiodiff.diffusion.samplers import SAMPLERS, fast_sigmas, karras_sigmas
from audiodiff.tasks import ImageTask, MelFeaturesTask, MelTask, Task, VocoderTask, WaveformTask

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig, SampleConfig


def _diffwave(cfg: ExperimentConfig) -> nn.Module:
    from audiodiff.models.diffwave import DiffWave, DiffWaveConfig, resolve_embed_interp

    # "auto" is resolved by load_config, not in configs built in code; wave_cond is the config's, which
    # load_config / from_yaml set from data.cond_waveform (config._validated)
    sizes = dict(cfg.model.diffwave)
    sizes["embed_interp"] = resolve_embed_interp(sizes["embed_interp"], cfg.diffusion.kind, sizes["embed_freqs"])
    return DiffWave(DiffWaveConfig(**sizes))


def _unet(cfg: ExperimentConfig) -> nn.Module:
    from audiodiff.models.unet import UNet, UNetConfig

    unet = dict(cfg.model.unet)
    unet["channel_mult"], unet["attn_levels"] = tuple(unet["channel_mult"]), tuple(unet["attn_levels"])
    return UNet(UNetConfig(**unet))


def _ddpm(cfg: ExperimentConfig) -> DDPM:
    d = cfg.diffusion
    return DDPM.from_preset(d.schedule, prediction=d.prediction, loss_type=d.loss_type, prior=build_prior(cfg))


def _edm(cfg: ExperimentConfig) -> EDM:
    d = cfg.diffusion
    return EDM(d.sigma_data, d.p_mean, d.p_std, d.sigma_min, d.sigma_max)


NETWORKS: dict[str, Callable[[ExperimentConfig], nn.Module]] = {"diffwave": _diffwave, "unet": _unet}
FORMULATIONS: dict[str, Callable[[ExperimentConfig], Formulation]] = {"ddpm": _ddpm, "edm": _edm}


def _needs_steps(name: str, formulation: Formulation) -> None:
    if not formulation.discrete:
        raise ValueError(f"sampler {name!r} needs a DDPM model; use heun, euler or ddim with EDM")


def _fast(sc: SampleConfig, formulation: Formulation, steps: int) -> tuple:
    _needs_steps("fast", formulation)
    return SAMPLERS["ddpm"], fast_sigmas(sc.fast_betas), {}


def _ddpm_plan(sc: SampleConfig, formulation: Formulation, steps: int) -> tuple:
    _needs_steps("ddpm", formulation)
    return SAMPLERS["ddpm"], formulation.step_sigmas(steps), {}


def _ddim(sc: SampleConfig, formulation: Formulation, steps: int) -> tuple:
    grid = formulation.step_sigmas(steps)  # a discrete formulation's own steps, else EDM's grid
    if grid is None:
        grid = karras_sigmas(steps, formulation.sigma_min, formulation.sigma_max, sc.rho)
    return SAMPLERS["ddim"], grid, {"eta": sc.eta}


def _euler(sc: SampleConfig, formulation: Formulation, steps: int) -> tuple:
    return SAMPLERS["euler"], karras_sigmas(steps, formulation.sigma_min, formulation.sigma_max, sc.rho), {}


def _heun(sc: SampleConfig, formulation: Formulation, steps: int) -> tuple:
    extra = {"s_churn": sc.churn} if sc.churn else {}
    return SAMPLERS["heun"], karras_sigmas(steps, formulation.sigma_min, formulation.sigma_max, sc.rho), extra


SAMPLER_PLANS: dict[str, Callable[[SampleConfig, Formulation, int], tuple]] = {
    "fast": _fast,  # DiffWave's 6-step schedule (sample.fast_betas), DDPM only
    "ddpm": _ddpm_plan,
    "ddim": _ddim,
    "euler": _euler,
    "heun": _heun,
}

# The sample.* settings each sampler reads (generate refuses one it would ignore); DDIM reads rho
# only on EDM's grid (a DDPM model's DDIM takes the formulation's own steps).
SAMPLER_SETTINGS: dict[str, tuple[str, ...]] = {
    "fast": ("fast_betas",),
    "ddpm": ("steps",),
    "ddim": ("steps", "eta", "rho"),
    "euler": ("steps", "rho"),
    "heun": ("steps", "rho", "churn"),
}

TASKS: dict[str, type[Task]] = {
    "waveform": WaveformTask,
    "vocoder": VocoderTask,
    "mel": MelTask,
    "mel_features": MelFeaturesTask,
    "image": ImageTask,
}


def _pick(registry: dict, key: str, value: str):
    if value not in registry:
        raise ValueError(f"{key}={value!r} is not allowed; choose one of {list(registry)}")
    return registry[value]


def build_network(cfg: ExperimentConfig) -> nn.Module:
    """The network model.kind names, sized by model.<kind>."""
    return _pick(NETWORKS, "model.kind", cfg.model.kind)(cfg)


def build_formulation(cfg: ExperimentConfig) -> Formulation:
    """The formulation diffusion.kind names."""
    return _pick(FORMULATIONS, "diffusion.kind", cfg.diffusion.kind)(cfg)


def build_task(cfg: ExperimentConfig, device: str = "cpu", **options) -> Task:
    """The task cfg.task names, on `device`; `options` are the task's generation options (e.g. vocoder)."""
    return _pick(TASKS, "task", cfg.task)(cfg, device, **options)


def load_for_generation(ckpt: str | Path, device: str = "cpu", use_ema: bool = True):
    """(config, network with EMA or raw weights, formulation, checkpoint step) from a checkpoint,
    or from a released model (a .safetensors file or a shipped name: audiodiff/release.py)."""
    from audiodiff.checkpoint import load_checkpoint, load_weights
    from audiodiff.config import from_yaml
    from audiodiff.release import load_release, names_release

    if names_release(ckpt):
        cfg, net, step = load_release(ckpt, device, use_ema)
        return cfg, net, build_formulation(cfg).to(device), step
    state = load_checkpoint(ckpt, map_location=device)
    cfg = from_yaml(state["config"], f"{state['path']}: stored config")
    net = build_network(cfg).to(device).eval()
    weights = state["ema"] if use_ema and "ema" in state else state["model"]
    load_weights(net, weights, state["path"])
    return cfg, net, build_formulation(cfg).to(device), int(state["step"])
