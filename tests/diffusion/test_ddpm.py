import math

import pytest
import torch

from audiodiff.diffusion import DDPM, beta_schedule


def test_schedules():
    lin = beta_schedule("linear", 50, 1e-4, 0.05)
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.05) and len(lin) == 50
    cos = beta_schedule("cosine", 1000)
    abar = torch.cumprod(1 - cos, 0)
    # Nichol & Dhariwal: abar_t = f(t) / f(0), f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert abar[499].item() == pytest.approx(f(500) / f(0), rel=1e-9)
    assert (cos <= 0.999).all() and (cos > 0).all()
    assert DDPM.from_preset("diffwave").num_steps == 50 and DDPM.from_preset("ddpm").num_steps == 1000
    with pytest.raises(ValueError, match="choose one of"):
        beta_schedule("quadratic", 10)
    with pytest.raises(ValueError, match="unknown DDPM schedule preset"):
        DDPM.from_preset("sd")


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_target_and_x0_estimate_round_trip(prediction):
    ddpm = DDPM.from_preset("ddpm", prediction=prediction)
    x0, noise = torch.randn(5, 1, 64, dtype=torch.float64), torch.randn(5, 1, 64, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 900, 999])
    x_t = ddpm.q_sample(x0, t, noise)
    perfect = ddpm.target(x0, noise, ddpm.abar[t])
    torch.testing.assert_close(ddpm.x0_from_output(perfect, x_t, ddpm.abar[t]), x0)


def test_eps_x0_hat_closed_form():
    ddpm = DDPM.from_preset("diffwave")
    x_t, eps_hat = torch.randn(3, 1, 10, dtype=torch.float64), torch.randn(3, 1, 10, dtype=torch.float64)
    t = torch.tensor([0, 20, 49])
    abar = ddpm.abar[t][:, None, None]
    expected = (x_t - torch.sqrt(1 - abar) * eps_hat) / torch.sqrt(abar)
    torch.testing.assert_close(ddpm.x0_from_output(eps_hat, x_t, ddpm.abar[t]), expected)


def test_sigma_to_t_hits_training_steps_and_interpolates_in_sqrt_abar():
    ddpm = DDPM.from_preset("diffwave")
    torch.testing.assert_close(ddpm.sigma_to_t(ddpm.sigmas), torch.arange(50, dtype=torch.float64))
    # midway in sqrt(abar) between steps 7 and 8 -> 7.5
    s = 0.5 * (ddpm.sqrt_abar[7] + ddpm.sqrt_abar[8])
    sigma = ((1 - s**2) / s**2).sqrt()
    assert ddpm.sigma_to_t(sigma[None]).item() == pytest.approx(7.5, abs=1e-9)
    # out of range clamps
    assert ddpm.sigma_to_t(torch.tensor([1e-9, 1e9], dtype=torch.float64)).tolist() == [0.0, 49.0]


def test_denoise_in_sigma_view_matches_training_forward():
    # The sampler-side denoiser at a training sigma equals the training x0_hat.
    ddpm = DDPM.from_preset("diffwave", prediction="v")
    net = lambda x, t, cond: torch.sin(x) * (1 + t[:, None, None] / 50)  # noqa: E731
    x0, noise = torch.randn(4, 1, 32, dtype=torch.float64), torch.randn(4, 1, 32, dtype=torch.float64)
    t = torch.tensor([0, 3, 30, 49])
    terms = ddpm.training_terms(net, x0, None, t=t, noise=noise)
    torch.testing.assert_close(terms["x"], x0 + ddpm.sigmas[t][:, None, None] * noise)
    torch.testing.assert_close(ddpm.denoise(net, terms["x"], ddpm.sigmas[t]), terms["x0_hat"])


@pytest.mark.parametrize("loss_type", ["l1", "l2"])
def test_denoising_loss_per_example(loss_type):
    ddpm = DDPM.from_preset("diffwave", loss_type=loss_type)
    net = lambda x, t, cond: torch.zeros_like(x)  # noqa: E731
    x0, noise = torch.randn(3, 1, 16), torch.randn(3, 1, 16)
    out = ddpm.training_terms(net, x0, t=torch.tensor([1, 2, 3]), noise=noise)["denoise"]
    expected = noise.abs().mean((1, 2)) if loss_type == "l1" else noise.square().mean((1, 2))
    torch.testing.assert_close(out, expected)
