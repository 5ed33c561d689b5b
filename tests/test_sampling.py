"""Sampling a network (audiodiff/sampling.py), without a trained checkpoint."""

import warnings

import pytest
import torch

from audiodiff.config import ExperimentConfig
from audiodiff.diffusion import DDPM, EDM
from audiodiff.models import DiffWave, DiffWaveConfig
from audiodiff.sampling import sample


def tiny(interp, freqs="diffwave"):
    cfg = DiffWaveConfig(layers=2, channels=4, cycle=2, n_mels=0, embed_dim=16, embed_interp=interp, embed_freqs=freqs)
    return DiffWave(cfg)


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
        run(tiny("exact", "edm"), ddpm, "fast")  # EDM's frequencies (<= 1 rad per step): smooth between steps


def conditional_config(label_dropout=0.1, classes=3):
    """The config of a small class-conditional UNet (null label = `classes` when label_dropout > 0)."""
    from audiodiff.models import UNetConfig

    cfg = ExperimentConfig(name="t")
    cfg.model.kind = "unet"
    cfg.model.unet = UNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(),
                                num_classes=classes, label_dropout=label_dropout)  # fmt: skip
    return cfg


def test_guided_mixes_the_conditional_and_the_null_denoiser():
    from audiodiff.sampling import guided

    def denoiser(x, sigma, labels):  # distinct per label and per example
        return x * sigma[:, None] + labels[:, None].float() ** 2

    x, sigma, labels = torch.randn(4, 5), torch.rand(4), torch.tensor([0, 1, 2, 1])
    assert guided(denoiser, 1.0, None) is denoiser and guided(denoiser, 1.0, 3) is denoiser
    null = torch.full_like(labels, 3)
    assert torch.equal(guided(denoiser, 0.0, 3)(x, sigma, labels), denoiser(x, sigma, null))
    want = denoiser(x, sigma, null) + 2.5 * (denoiser(x, sigma, labels) - denoiser(x, sigma, null))
    torch.testing.assert_close(guided(denoiser, 2.5, 3)(x, sigma, labels), want)
    with pytest.raises(ValueError, match="sample.guidance=2.0 needs a model with a null label"):
        guided(denoiser, 2.0, None)


class LabelNet(torch.nn.Module):
    """A fake conditional network whose output is its label: D = c_skip x + c_out label, linear in the label."""

    null_label = 3

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, noise_cond, cond):
        return self.scale * cond.to(x.dtype)[:, None, None, None].expand_as(x)


@pytest.mark.parametrize(("formulation", "sampler"), [(EDM(), "heun"), (EDM(), "euler"), (EDM(), "ddim"),
                                                      (DDPM.from_preset("ddpm", prediction="x0"), "ddpm")])  # fmt: skip
def test_every_sampler_is_guided(formulation, sampler):
    cfg = conditional_config()
    labels = torch.tensor([0.0, 1.0, 2.0])

    def draw(guidance, cond):
        cfg.sample.guidance = guidance
        return sample(LabelNet(), formulation, cfg, [0, 1, 2], (1, 4, 4), cond, sampler, 4)

    # D is linear in the label, so guidance w equals the plain model asked for null + w (label - null)
    torch.testing.assert_close(draw(2.5, labels), draw(1.0, 3 + 2.5 * (labels - 3)), rtol=1e-4, atol=1e-4)
    assert torch.equal(draw(0.0, labels), draw(1.0, torch.full_like(labels, 3)))  # w = 0: the null label
    assert (draw(2.5, labels) - draw(1.0, labels)).abs().max() > 0.1


def test_guidance_needs_a_model_with_a_null_label():
    from audiodiff.models import UNet

    cfg = conditional_config(label_dropout=0.0)
    net = UNet(cfg.model.unet)
    cfg.sample.guidance = 2.0
    with pytest.raises(ValueError, match=r"sample.guidance=2.0 needs a class-conditional UNet trained with a null "
                                         r"label .*; this model has num_classes=3, label_dropout=0.0"):  # fmt: skip
        sample(net, EDM(), cfg, [0], (1, 8, 8), torch.tensor([0]), "heun", 2)
    cfg = ExperimentConfig(name="t")
    cfg.sample.guidance = 0.5
    with pytest.raises(ValueError, match="this model has model.kind=diffwave"):
        sample(tiny("lerp"), EDM(), cfg, [0], (1, 32), None, "heun", 2)
