import pytest
import torch

from audiodiff.diffusion import EDM


def test_scalings_limits_and_midpoint():
    edm = EDM(sigma_data=0.5)
    c_skip, c_out, c_in, c_noise = edm.scalings(torch.tensor([1e-6, 0.5, 1e4], dtype=torch.float64))
    assert c_skip[0] == pytest.approx(1.0, abs=1e-10) and c_out[0] == pytest.approx(0.0, abs=1e-5)
    assert c_skip[1] == pytest.approx(0.5) and c_in[1] == pytest.approx(1 / (0.5 * 2**0.5))
    assert c_skip[2] == pytest.approx(0.0, abs=1e-8) and c_out[2] == pytest.approx(0.5, rel=1e-6)
    assert c_noise[1] == pytest.approx(torch.log(torch.tensor(0.5)).item() / 4)


def test_denoiser_is_preconditioned_network():
    edm = EDM(sigma_data=0.3)
    x, sigma = torch.randn(2, 1, 8, dtype=torch.float64), torch.tensor([0.1, 5.0], dtype=torch.float64)
    seen = {}

    def net(x_in, c_noise, cond):
        seen["x_in"], seen["c_noise"] = x_in, c_noise
        return torch.ones_like(x_in)

    out = edm.denoise(net, x, sigma)
    c_skip, c_out, c_in, c_noise = edm.scalings(sigma)
    torch.testing.assert_close(out, c_skip[:, None, None] * x + c_out[:, None, None])
    torch.testing.assert_close(seen["x_in"], c_in[:, None, None] * x)
    torch.testing.assert_close(seen["c_noise"], c_noise)


def test_weighted_loss_and_weight():
    edm = EDM(sigma_data=0.5)
    sigma = torch.tensor([0.2, 2.0])
    weight = torch.tensor([29.0, 4.25])  # (0.04 + 0.25) / 0.1^2 and (4 + 0.25) / 1^2, worked by hand
    torch.testing.assert_close(edm.loss_weight(sigma), weight)
    _, c_out, _, _ = edm.scalings(sigma)
    torch.testing.assert_close(weight * c_out**2, torch.ones(2))  # Karras et al.: unit weight on F's error
    x0, noise = torch.randn(2, 1, 16), torch.randn(2, 1, 16)
    net = lambda x, c, cond: torch.zeros_like(x)  # noqa: E731  (D = c_skip x)
    terms = edm.training_terms(net, x0, sigma=sigma, noise=noise)
    c_skip = torch.tensor([0.25 / 0.29, 0.25 / 4.25])[:, None, None]
    torch.testing.assert_close(terms["x0_hat"], c_skip * (x0 + sigma[:, None, None] * noise))
    expected = weight * (c_skip * (x0 + sigma[:, None, None] * noise) - x0).square().mean((1, 2))
    torch.testing.assert_close(terms["denoise"], expected)
    torch.testing.assert_close(terms["weight"], weight)


def test_lognormal_sigma_sampling():
    edm = EDM(p_mean=-1.2, p_std=1.2)
    sigma, _ = edm.sample_training(torch.zeros(20000, 1, 1))
    assert sigma.log().mean().item() == pytest.approx(-1.2, abs=0.05)
    assert sigma.log().std().item() == pytest.approx(1.2, abs=0.05)


def test_bad_settings():
    with pytest.raises(ValueError, match="sigma_data > 0"):
        EDM(sigma_data=0)
