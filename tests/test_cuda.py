"""CUDA paths: parity with CPU, bf16 autocast, torch.compile without graph breaks. Skipped without a GPU."""

import pytest
import torch

from audiodiff.diffusion import DDPM, SpectralObjective
from audiodiff.diffusion.samplers import SeededNoise, karras_sigmas, sample_heun
from audiodiff.losses import LOSSES, build_loss, build_spectral_loss
from audiodiff.models import DIFFWAVE_PRESETS, DiffWave, UNet, UNetConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
KW = {"mel": {"sample_rate": 22050}}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_match_cpu_and_take_bf16(name):
    x, y = torch.randn(4, 1, 16000), torch.randn(4, 1, 16000)
    cpu = build_loss(name, **KW.get(name, {}))(x, y)
    loss = build_loss(name, **KW.get(name, {})).cuda()
    xc = x.cuda().requires_grad_(True)
    gpu = loss(xc, y.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=2e-4, atol=1e-3)
    gpu.sum().backward()
    assert torch.isfinite(xc.grad).all()
    half = loss(x.cuda().bfloat16(), y.cuda().bfloat16())
    assert half.dtype == torch.float32 and torch.isfinite(half).all()


def test_diffwave_bf16_autocast_and_fullgraph_compile():
    net = DiffWave(DIFFWAVE_PRESETS["small"]).cuda()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    x, t, mel = (
        torch.randn(2, 1, 62 * 256, device="cuda"),
        torch.tensor([3.0, 30.5], device="cuda"),
        torch.randn(2, 80, 62, device="cuda"),
    )
    ref = net(x, t, mel)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = net(x, t, mel)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05 * ref.abs().mean()
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x, t, mel), ref, rtol=1e-3, atol=1e-3)


def test_unet_bf16_autocast_and_fullgraph_compile():
    net = UNet(UNetConfig(channels=32, channel_mult=(1, 2, 2), attn_levels=(1,))).cuda()
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    x, sigma = torch.randn(2, 1, 80, 62, device="cuda"), torch.tensor([0.1, 2.0], device="cuda")
    ref = net(x, sigma)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert torch.isfinite(net(x, sigma)).all()
    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x, sigma), ref, rtol=1e-3, atol=1e-3)


def test_regularized_step_on_cuda_matches_cpu():
    torch.manual_seed(0)
    net = DiffWave(DIFFWAVE_PRESETS["small_uncond"])
    torch.nn.init.normal_(net.out.weight, std=0.1)
    ddpm = DDPM.from_preset("diffwave")
    obj = SpectralObjective(ddpm, build_spectral_loss([{"name": "amp_phase"}, {"name": "mrstft"}]), lam=1e-3)
    x0, noise, t = torch.randn(2, 1, 4096), torch.randn(2, 1, 4096), torch.tensor([5, 40])
    cpu = obj(net, x0, None, t=t, noise=noise)["loss"]
    gpu = obj.cuda()(net.cuda(), x0.cuda(), None, t=t.cuda(), noise=noise.cuda())["loss"]
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)


def test_seeded_sampling_on_cuda_matches_cpu():
    def den(x, s, c):
        return x / (1 + s[:, None, None] ** 2)

    out = []
    for dev in ("cpu", "cuda"):
        noise = SeededNoise([1, 2], device="cpu")
        x = noise(torch.zeros(2, 1, 64, device=dev)) * 10
        out.append(sample_heun(den, x, karras_sigmas(10, 0.01, 10.0).to(dev), s_churn=5, noise=noise).cpu())
    torch.testing.assert_close(out[0], out[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_compile_fullgraph_with_inductor(name):
    loss = build_spectral_loss([{"name": name, "kwargs": KW.get(name, {})}]).cuda()
    x, y = torch.randn(4, 1, 16000, device="cuda"), torch.randn(4, 1, 16000, device="cuda")
    eager_x, comp_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref = loss.total(eager_x, y)
    ref.sum().backward()
    loss.compile(fullgraph=True)
    out = loss.combine(loss(comp_x, y))
    out.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # float32 FFTs in another order: compare gradients relative to their scale
    scale = eager_x.grad.abs().max().item()
    torch.testing.assert_close(comp_x.grad, eager_x.grad, rtol=1e-3, atol=1e-4 * scale)
