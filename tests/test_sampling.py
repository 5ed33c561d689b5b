"""Sampling a network (audiodiff/sampling.py), without a trained checkpoint."""

import warnings

import pytest

from audiodiff.config import ExperimentConfig
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
