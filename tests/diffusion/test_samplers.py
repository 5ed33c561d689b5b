"""Samplers on the closed-form Gaussian denoiser, DiffWave Algorithm 2 parity, seeding."""

import pytest
import torch

from audiodiff.diffusion import DDPM
from audiodiff.diffusion.samplers import (
    DIFFWAVE_FAST_BETAS,
    SeededNoise,
    ddpm_sigmas,
    fast_sigmas,
    karras_sigmas,
    sample_ddim,
    sample_ddpm,
    sample_euler,
    sample_heun,
)
from tests.diffusion.nets import gaussian_denoiser

MU, S = 0.3, 0.5
SHAPE = (4000, 1, 8)  # 32000 draws


def moments(x):
    return x.mean().item(), x.std().item()


@pytest.mark.parametrize(
    "name,run",
    [
        ("heun-64", lambda d, x: sample_heun(d, x, karras_sigmas(64, 0.002, 80.0))),
        ("euler-400", lambda d, x: sample_euler(d, x, karras_sigmas(400, 0.002, 80.0))),
        ("heun-churn", lambda d, x: sample_heun(d, x, karras_sigmas(128, 0.002, 80.0), s_churn=30, s_tmin=0.05)),
        ("ddim-eta0", lambda d, x: sample_ddim(d, x, karras_sigmas(400, 0.002, 80.0))),
        ("ddim-eta0.5", lambda d, x: sample_ddim(d, x, karras_sigmas(400, 0.002, 80.0), eta=0.5)),
    ],
)
def test_ve_samplers_reproduce_gaussian_moments(name, run):
    torch.manual_seed(1)
    x = 80.0 * torch.randn(SHAPE, dtype=torch.float64)
    mean, std = moments(run(gaussian_denoiser(MU, S), x))
    # sampling error of the moments over 32000 draws is ~0.003; discretization adds a little
    assert mean == pytest.approx(MU, abs=0.015), name
    assert std == pytest.approx(S, abs=0.015), name


def test_ddpm_ancestral_reproduces_gaussian_moments():
    ddpm = DDPM.from_preset("ddpm")
    sigmas = ddpm_sigmas(ddpm.sigmas)
    x = ddpm.prior_std() * torch.randn(SHAPE, dtype=torch.float64)
    mean, std = moments(sample_ddpm(gaussian_denoiser(MU, S), x, sigmas))
    assert mean == pytest.approx(MU, abs=0.015) and std == pytest.approx(S, abs=0.015)


@pytest.mark.parametrize("sampler,order", [(sample_heun, 2), (sample_euler, 1), (sample_ddim, 1)])
def test_deterministic_samplers_converge_with_their_order(sampler, order):
    # Gaussian data: the exact ODE maps x at sigma_max to mu + (x - mu) s / sqrt(s^2 + sigma_max^2).
    x = torch.full((1, 1, 1), 80.0, dtype=torch.float64)
    exact = MU + (80.0 - MU) * S / (S**2 + 80.0**2) ** 0.5
    err = [
        abs(sampler(gaussian_denoiser(MU, S), x, karras_sigmas(n, 0.002, 80.0).double()).item() - exact)
        for n in (40, 80, 160)
    ]
    for coarse, fine in zip(err, err[1:]):
        assert coarse / fine == pytest.approx(2**order, rel=0.25)


def diffwave_algorithm2(eps_net, train_betas, infer_betas, x, noises):
    """DiffWave fast sampling written from the paper's Algorithm 2 description (VP space)."""
    talpha_cum = torch.cumprod(1 - train_betas, 0)
    beta = torch.tensor(infer_betas, dtype=torch.float64)
    alpha, alpha_cum = 1 - beta, torch.cumprod(1 - beta, 0)
    steps = []
    for s in range(len(beta)):
        for t in range(len(train_betas) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                hi, lo = talpha_cum[t].sqrt(), talpha_cum[t + 1].sqrt()
                steps.append(t + ((hi - alpha_cum[s].sqrt()) / (hi - lo)).item())
                break
    noises = list(noises)
    for n in reversed(range(len(beta))):
        t = torch.full((x.shape[0],), steps[n], dtype=x.dtype)
        x = (x - beta[n] / (1 - alpha_cum[n]).sqrt() * eps_net(x, t)) / alpha[n].sqrt()
        if n > 0:
            x = x + ((1 - alpha_cum[n - 1]) / (1 - alpha_cum[n]) * beta[n]).sqrt() * noises.pop(0)
    return x


def test_fast_sampler_equals_diffwave_algorithm2():
    ddpm = DDPM.from_preset("diffwave")
    # far from smooth in t: a step off by 0.01 changes the output by ~30%, so a wrong sigma -> t map shows
    eps_net = lambda x, t, cond=None: torch.tanh(x) * (1 + 0.5 * torch.sin(60 * t)[:, None, None])  # noqa: E731
    x_vp = torch.randn(3, 1, 100, dtype=torch.float64)
    noises = [torch.randn(3, 1, 100, dtype=torch.float64) for _ in range(5)]
    ref = diffwave_algorithm2(eps_net, ddpm.betas, DIFFWAVE_FAST_BETAS, x_vp, noises)

    sigmas = fast_sigmas(DIFFWAVE_FAST_BETAS).double()
    queue = list(noises)
    x_ve = x_vp * ddpm.prior_std(float(sigmas[0]))
    ours = sample_ddim(
        lambda x, s, c: ddpm.denoise(eps_net, x, s, c), x_ve, sigmas, eta=1.0, noise=lambda like: queue.pop(0)
    )
    assert not queue
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_ddim_eta0_is_deterministic_and_draws_no_noise():
    def no_noise(like):
        raise AssertionError("deterministic DDIM must not draw noise")

    x = torch.randn(2, 1, 16)
    sig = karras_sigmas(10, 0.01, 10.0)
    a = sample_ddim(gaussian_denoiser(MU, S), x, sig, noise=no_noise)
    b = sample_ddim(gaussian_denoiser(MU, S), x, sig, noise=no_noise)
    assert torch.equal(a, b)


@pytest.mark.parametrize("sampler", ["ddpm", "heun-churn"])
def test_same_seed_same_sample_across_batch_sizes(sampler):
    den = gaussian_denoiser(MU, S)

    def generate(seeds):
        noise = SeededNoise(seeds)
        x = noise(torch.zeros(len(seeds), 1, 32)) * 10.0
        if sampler == "ddpm":
            return sample_ddim(den, x, karras_sigmas(20, 0.01, 10.0), eta=1.0, noise=noise)
        return sample_heun(den, x, karras_sigmas(20, 0.01, 10.0), s_churn=10, noise=noise)

    big, small = generate([5, 6, 7, 8]), generate([7, 8])
    torch.testing.assert_close(big[2:], small)
    assert not torch.allclose(big[0], big[1])


def test_callback_sees_every_step():
    seen = []
    sample_heun(
        gaussian_denoiser(MU, S),
        torch.randn(1, 1, 4),
        karras_sigmas(5, 0.01, 10.0),
        callback=lambda i, s, x, x0: seen.append((i, s)),
    )
    assert [i for i, _ in seen] == list(range(5)) and seen[0][1] == pytest.approx(10.0)


def test_grids():
    k = karras_sigmas(18, 0.002, 80.0)
    assert len(k) == 19 and k[0] == pytest.approx(80.0) and k[-2] == pytest.approx(0.002) and k[-1] == 0
    ddpm = DDPM.from_preset("ddpm")
    g = ddpm_sigmas(ddpm.sigmas, 50)
    assert len(g) == 51 and g[0] == pytest.approx(ddpm.sigma_max) and g[-2] == pytest.approx(ddpm.sigma_min)
    f = fast_sigmas()
    abar = torch.cumprod(1 - torch.tensor(DIFFWAVE_FAST_BETAS, dtype=torch.float64), 0)
    torch.testing.assert_close(f[:-1].double(), ((1 - abar) / abar).sqrt().flip(0), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_ddim(gaussian_denoiser(0, 1), torch.zeros(1, 1, 2), torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="inference betas"):
        fast_sigmas([0.1, 1.5])
    with pytest.raises(ValueError, match="2 seeds but the batch has 3"):
        SeededNoise([1, 2])(torch.zeros(3, 1))


class BiasedEps(torch.nn.Module):
    """An eps-prediction 'network' that is off by a constant 0.05: x0_hat's error is 0.05 sigma."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, cond=None):
        return torch.zeros_like(x) + 0.05 + self.p


def test_clip_denoised_keeps_an_eps_model_in_the_data_range():
    from audiodiff.config import ExperimentConfig
    from audiodiff.sampling import sample

    cfg = ExperimentConfig(name="t")
    ddpm = DDPM.from_preset("ddpm")  # 1000-step linear schedule: sigma_max ~ 157
    seen = []

    def record(i, sigma, x, x0_hat):
        seen.append(x0_hat.abs().max().item())

    free = sample(BiasedEps(), ddpm, cfg, [0, 1], (1, 16), sampler="ddim", steps=50, callback=record)
    assert max(seen) > 5 and free.abs().max() > 1.5  # unclamped, the first x0_hat is ~8 and the sample leaves [-1, 1]
    cfg.sample.clip_denoised = True
    seen.clear()
    clipped = sample(BiasedEps(), ddpm, cfg, [0, 1], (1, 16), sampler="ddim", steps=50, callback=record)
    assert max(seen) <= 1.0 and clipped.abs().max() <= 1.0 + 1e-6
