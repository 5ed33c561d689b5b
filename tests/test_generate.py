"""Sampling-side checks (audiodiff.sampling, audiodiff.builders) that need no trained checkpoint."""

import warnings

import pytest
from omegaconf import OmegaConf

from audiodiff.builders import build_network
from audiodiff.config import ExperimentConfig, from_yaml, to_yaml
from audiodiff.diffusion import DDPM, EDM
from audiodiff.models import DiffWave, DiffWaveConfig
from audiodiff.sampling import sample


def tiny(interp):
    return DiffWave(DiffWaveConfig(layers=2, channels=4, cycle=2, n_mels=0, embed_dim=16, embed_interp=interp))


def run(net, formulation, sampler):
    cfg = ExperimentConfig(name="t")
    return sample(net, formulation, cfg, [0], (1, 32), None, sampler, 6)


def test_exact_ddpm_diffwave_warns_at_fractional_steps_only():
    ddpm = DDPM.from_preset("diffwave")
    with pytest.warns(UserWarning, match=r"embed_interp='exact' .* fractional steps \[42.919, 22.992"):
        run(tiny("exact"), ddpm, "fast")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(tiny("exact"), ddpm, "ddpm")  # 6 evenly spaced integer steps
        run(tiny("lerp"), ddpm, "fast")
        run(tiny("exact"), EDM(), "heun")  # continuous c_noise: exact is right


def test_build_network_resolves_auto_and_keeps_stored_choices():
    cfg = OmegaConf.structured(ExperimentConfig(name="t"))  # not through load_config: "auto" is unresolved
    assert build_network(cfg).config.embed_interp == "lerp"
    cfg.diffusion.kind = "edm"
    assert build_network(cfg).config.embed_interp == "exact"
    cfg.diffusion.kind, cfg.model.diffwave.embed_interp = "ddpm", "exact"  # as an old checkpoint stores it
    assert build_network(from_yaml(to_yaml(cfg))).config.embed_interp == "exact"
