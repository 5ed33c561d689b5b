"""CUDA paths: parity with CPU, bf16 autocast, torch.compile without graph breaks, and the CUDA
branches of train() (fused AdamW, compile, CUDA graphs). Marked `gpu`: skipped without a GPU."""

import re

import pytest
import torch
from click.testing import CliRunner

from audiodiff.diffusion import DDPM, SpectralObjective
from audiodiff.diffusion.samplers import SeededNoise, karras_sigmas, sample_heun
from audiodiff.losses import LOSSES, build_loss, build_spectral_loss
from audiodiff.models import DIFFWAVE_PRESETS, DiffWave, UNet, UNetConfig
from tests.conftest import TINY

pytestmark = pytest.mark.gpu
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


def _train(tmp_path, corpus, name, *overrides):
    """Train the tiny waveform model with an AMP regularizer for 3 steps (float32 unless overridden).

    Returns the values of the first log line (step 1) and the last checkpoint.
    """
    from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
    from audiodiff.cli import main

    conf = tmp_path / "conf.yaml"
    conf.write_text("diffusion: {schedule: diffwave}\nregularizer: {lam: 1.0e-3, losses: [{name: amp}]}\n")
    args = [
        f"name={name}",
        f"exp_dir={tmp_path / 'exp'}",
        f"data.train={corpus}",
        *TINY,
        "train.steps=3",
        "train.bf16=false",
    ]
    args += overrides
    result = CliRunner().invoke(main, ["train", str(conf), "--no-progress", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = tmp_path / "exp" / name
    first = next(line for line in (run / "log.txt").read_text().splitlines() if line.startswith("step "))
    assert first.startswith("step 1 ")
    values = {k: float(v) for k, v in re.findall(r"(\w+)=(\S+)", first)}
    return values, load_checkpoint(latest_checkpoint(run / "checkpoints"), map_location="cpu")


REL = {"loss": 1e-3, "denoise": 1e-3, "spectral": 1e-3, "grad_norm": 2e-3}  # log.txt: grad_norm has 4 digits


@pytest.fixture
def fp32(monkeypatch):
    """Plain float32 convolutions (cuDNN's TF32 default would differ from the CPU by ~1e-3)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def test_train_on_cuda_uses_fused_adamw_and_matches_cpu(tmp_path, corpus, monkeypatch, fp32):
    gpu, gpu_ckpt = _train(tmp_path, corpus, "gpu")
    assert gpu_ckpt["optimizer"]["param_groups"][0]["fused"] is True and "rng_cuda" in gpu_ckpt
    with monkeypatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: False)
        cpu, cpu_ckpt = _train(tmp_path, corpus, "cpu")
    assert not cpu_ckpt["optimizer"]["param_groups"][0]["fused"]
    # step 1: same weights, batch, noise and levels on both devices, so the loss and gradient agree
    for key in REL:
        assert gpu[key] == pytest.approx(cpu[key], rel=REL[key]), key
    assert gpu_ckpt["step"] == cpu_ckpt["step"] == 3
    assert all(torch.isfinite(w).all() for w in gpu_ckpt["model"].values())


@pytest.mark.slow
def test_train_with_compile_and_cuda_graphs_matches_eager(tmp_path, corpus, monkeypatch, fp32):
    from torch._dynamo.utils import counters

    eager, _ = _train(tmp_path, corpus, "eager")
    captures = []
    capture_begin = torch.cuda.CUDAGraph.capture_begin

    def counting(self, *args, **kwargs):
        captures.append(1)
        return capture_begin(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "capture_begin", counting)
    counters.clear()
    graphed, ckpt = _train(tmp_path, corpus, "graphed", "train.compile=true", "train.cuda_graphs=true")
    # CUDA graphs really ran: captured, and no part fell back to eager
    assert captures and counters["inductor"].get("cudagraph_skips", 0) == 0, dict(counters["inductor"])
    for key in REL:
        assert graphed[key] == pytest.approx(eager[key], rel=REL[key]), key
    assert ckpt["step"] == 3 and all(torch.isfinite(w).all() for w in ckpt["model"].values())


def test_train_bf16_autocast_on_cuda_stays_close_to_float32(tmp_path, corpus, fp32):
    full, _ = _train(tmp_path, corpus, "fp32")
    half, _ = _train(tmp_path, corpus, "bf16", "train.bf16=true")
    assert half["loss"] == pytest.approx(full["loss"], rel=0.05)
    assert half["grad_norm"] == pytest.approx(full["grad_norm"], rel=0.1)
