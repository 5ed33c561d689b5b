import pytest
import torch

from audiodiff.diffusion import DDPM, EDM, SpectralObjective
from audiodiff.diffusion.regularize import ddim_rollout
from audiodiff.losses import build_spectral_loss
from tests.diffusion.nets import TinyNet, gaussian_denoiser

AMP = [{"name": "amp", "kwargs": {"reduction": "mean"}}]


def fixed(formulation, b):
    torch.manual_seed(3)
    if isinstance(formulation, DDPM):
        return {"t": torch.randint(0, formulation.num_steps, (b,))}
    return {"sigma": torch.exp(torch.randn(b) * 1.2 - 1.2)}


@pytest.mark.parametrize("formulation", [DDPM.from_preset("diffwave", loss_type="l1"), EDM(sigma_data=0.5)])
@pytest.mark.parametrize("shape,dims", [((4, 1, 256), 1), ((4, 3, 16, 16), 2)])
def test_lambda_zero_is_bit_identical_baseline(formulation, shape, dims):
    net = TinyNet(shape[1], dims)
    x0, noise = torch.randn(shape), torch.randn(shape)
    sample = fixed(formulation, shape[0]) | {"noise": noise}
    base = formulation.training_terms(net, x0, None, **sample)["denoise"]
    for obj in (
        SpectralObjective(formulation, build_spectral_loss(AMP), lam=0.0),
        SpectralObjective(formulation, build_spectral_loss([]), lam=1.0),
    ):
        assert torch.equal(obj(net, x0, None, **dict(sample))["loss"], base)


@pytest.mark.parametrize("formulation", [DDPM.from_preset("diffwave"), EDM(sigma_data=0.5)])
def test_spectral_gradient_reaches_the_network_through_x0_hat(formulation):
    net = TinyNet()
    x0, noise = torch.randn(4, 1, 256), torch.randn(4, 1, 256)
    sample = fixed(formulation, 4) | {"noise": noise}
    obj = SpectralObjective(formulation, build_spectral_loss(AMP), lam=0.1)
    out = obj(net, x0, None, **sample)
    assert (out["spectral"] > 0).all()
    grads = torch.autograd.grad(out["spectral"].sum(), list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    base = SpectralObjective(formulation, build_spectral_loss(AMP), lam=0.0)(net, x0, None, **sample)
    g_base = torch.autograd.grad(base["loss"].sum(), net.conv.weight)[0]
    g_reg = torch.autograd.grad(obj(net, x0, None, **sample)["loss"].sum(), net.conv.weight)[0]
    assert not torch.allclose(g_base, g_reg)
    torch.testing.assert_close(out["loss"], out["denoise"] + out["spectral"])
    torch.testing.assert_close(out["spectral"], 0.1 * out["spec/amp"])


def test_weighted_lambda_uses_edm_weight_and_gating():
    edm = EDM(sigma_data=0.5)
    sigma = torch.tensor([0.01, 0.5, 2.0, 50.0])
    obj = SpectralObjective(edm, build_spectral_loss(AMP), lam=1e-3, weighting="weighted", sigma_range=(0.1, 10))
    out = obj(TinyNet(), torch.randn(4, 1, 128), None, sigma=sigma, noise=torch.randn(4, 1, 128))
    expected = torch.tensor([0.0, 1e-3, 1e-3, 0.0]) * edm.loss_weight(sigma)
    torch.testing.assert_close(out["lambda_eff"], expected)
    assert out["spectral"][0] == 0 and out["spectral"][3] == 0 and (out["spectral"][1:3] > 0).all()
    assert out["spec/amp"][0] == 0 and out["spec/amp"][1] > 0
    torch.testing.assert_close(out["loss"][[0, 3]], out["denoise"][[0, 3]])


def test_ddpm_t_range_gating():
    ddpm = DDPM.from_preset("diffwave")
    obj = SpectralObjective(ddpm, build_spectral_loss(AMP), lam=1.0, t_range=(10, 20))
    out = obj(TinyNet(), torch.randn(3, 1, 64), None, t=torch.tensor([5, 15, 40]), noise=torch.randn(3, 1, 64))
    assert out["lambda_eff"].tolist() == [0.0, 1.0, 0.0]


def test_rollout_converges_to_the_ode_solution():
    # Gaussian data: the probability-flow ODE maps x at sigma to mu + (x - mu) s / sqrt(s^2 + sigma^2).
    mu, s = 0.2, 0.4
    den = gaussian_denoiser(mu, s)
    x, sigma = torch.randn(3, 1, 50, dtype=torch.float64), torch.tensor([0.3, 1.0, 5.0], dtype=torch.float64)
    first = den(x, sigma)
    exact = mu + (x - mu) * s / (s**2 + sigma[:, None, None] ** 2).sqrt()
    assert torch.equal(ddim_rollout(den, x, sigma, first, 1, 1e-3), first)
    err = [(ddim_rollout(den, x, sigma, first, k, 1e-3) - exact).abs().max().item() for k in (2, 16, 256)]
    assert err[0] > err[1] > err[2] and err[2] < 0.01


def test_rollout_objective_keeps_gradients():
    ddpm = DDPM.from_preset("diffwave")
    net = TinyNet()
    obj = SpectralObjective(ddpm, build_spectral_loss(AMP), lam=0.1, x0_source="rollout", rollout_steps=3)
    out = obj(net, torch.randn(2, 1, 128), None, t=torch.tensor([10, 40]), noise=torch.randn(2, 1, 128))
    one = SpectralObjective(ddpm, build_spectral_loss(AMP), lam=0.1)
    out1 = one(net, torch.randn(2, 1, 128), None, t=torch.tensor([10, 40]), noise=torch.randn(2, 1, 128))
    assert not torch.allclose(out["spectral"], out1["spectral"])
    out["spectral"].sum().backward()
    assert net.conv.weight.grad.abs().sum() > 0


def test_bad_settings():
    amp = build_spectral_loss(AMP)
    with pytest.raises(ValueError, match="needs an EDM formulation"):
        SpectralObjective(DDPM.from_preset("diffwave"), amp, lam=1, weighting="weighted")
    with pytest.raises(ValueError, match="use sigma_range with EDM"):
        SpectralObjective(EDM(), amp, lam=1, t_range=(0, 10))
    with pytest.raises(ValueError, match="lo <= hi"):
        SpectralObjective(EDM(), amp, lam=1, sigma_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="x0_source='ddim'"):
        SpectralObjective(EDM(), amp, lam=1, x0_source="ddim")
