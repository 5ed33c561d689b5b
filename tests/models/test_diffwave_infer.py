from dataclasses import replace

import pytest
import torch

from audiodiff.models import DiffWave, DiffWaveConfig
from audiodiff.models.diffwave_infer import DiffWaveInference


def trained_looking(cfg, seed=0):
    torch.manual_seed(seed)
    net = DiffWave(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():  # every bias nonzero, so every folded constant matters
            p.normal_(0, 0.3)
    return net


def error_vs_float64(net, out, x, t, mel):
    with torch.no_grad():
        exact = net.double()(x.double(), t.double(), None if mel is None else mel.double())
    net.float()
    return (out.double() - exact).abs().max().item(), exact.abs().max().item()


CASES = [  # (config, batch, length, tile): tiles smaller than, equal to and larger than dilations
    (DiffWaveConfig(layers=5, channels=8, cycle=3, n_mels=0), 3, 101, 16),
    (DiffWaveConfig(layers=7, channels=16, cycle=4, n_mels=8, hop=16), 2, 160, 64),
    (DiffWaveConfig(layers=7, channels=16, cycle=4, n_mels=8, hop=16), 2, 32, 5),  # clip shorter than 2 x dilation 8
    (DiffWaveConfig(layers=4, channels=8, cycle=4, n_mels=4, hop=4), 1, 12, 4096),
]


@pytest.mark.parametrize("interp,freqs", [("lerp", "diffwave"), ("exact", "diffwave"), ("exact", "edm")])
@pytest.mark.parametrize("cfg,batch,length,tile", CASES)
def test_engine_computes_the_same_function_as_the_module(cfg, batch, length, tile, interp, freqs):
    net = trained_looking(replace(cfg, embed_interp=interp, embed_freqs=freqs))
    engine = DiffWaveInference(net, tile=tile)
    x, t = torch.randn(batch, 1, length), torch.rand(batch) * 40
    mel = torch.randn(batch, cfg.n_mels, length // cfg.hop) if cfg.n_mels else None
    with torch.no_grad():
        eager = net(x, t, mel)
    fast = engine(x, t, mel)
    assert fast.shape == eager.shape
    err_fast, scale = error_vs_float64(net, fast, x, t, mel)
    err_eager, _ = error_vs_float64(net, eager, x, t, mel)
    assert scale > 0.1  # a nonzero output: the comparison means something
    # float32 rounding only: no worse than a few times the module's own float32 error
    assert err_fast <= max(4 * err_eager, 1e-6 * scale), (err_fast, err_eager)


def test_projected_condition_is_reused_and_examples_do_not_mix():
    cfg = DiffWaveConfig(layers=6, channels=8, cycle=3, n_mels=8, hop=16)
    net = trained_looking(cfg, seed=1)
    engine = DiffWaveInference(net, tile=48)
    x, t, mel = torch.randn(3, 1, 160), torch.tensor([1.0, 7.5, 30.0]), torch.randn(3, 8, 10)
    projected = engine.project_condition(mel)
    assert projected.shape == (3, 6, 160, 16)
    full = engine(x, t, projected)
    torch.testing.assert_close(full, engine(x, t, mel))
    for i in range(3):
        torch.testing.assert_close(engine(x[i : i + 1], t[i : i + 1], projected[i : i + 1]), full[i : i + 1])
    # the step and the condition both change the output
    assert not torch.allclose(engine(x, t + 5, projected), full)
    assert not torch.allclose(engine(x, t, mel + 1), full)


def test_engine_is_a_snapshot_and_needs_no_grad():
    net = trained_looking(DiffWaveConfig(layers=3, channels=4, cycle=2, n_mels=0))
    engine = DiffWaveInference(net)
    x, t = torch.randn(1, 1, 50, requires_grad=True), torch.tensor([3.0])
    before = engine(x, t)
    assert not before.requires_grad
    with torch.no_grad():
        for p in net.parameters():  # in place, as load_state_dict does
            p.mul_(1.5)
    torch.testing.assert_close(engine(x, t), before)  # weights were copied at construction
    with torch.no_grad():
        now = net(x, t)
    torch.testing.assert_close(DiffWaveInference(net)(x, t), now)
    assert not torch.allclose(now, before)


def test_bad_inputs_get_one_line_errors():
    cond_net = trained_looking(DiffWaveConfig(layers=3, channels=4, cycle=2, n_mels=8, hop=16))
    engine = DiffWaveInference(cond_net)
    x, t = torch.randn(2, 1, 160), torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="needs a mel condition"):
        engine(x, t)
    with pytest.raises(ValueError, match=r"cond must be a mel or project_condition\(mel\) of shape \(2, 3, 160, 8\)"):
        engine(x, t, cond_net.project_condition(torch.randn(2, 8, 10)))  # the module's (B, L, 2C, T) layout
    with pytest.raises(ValueError, match=r"x must be \(B, 1, T\)"):
        engine(x[:, 0], t, torch.randn(2, 8, 10))
    unc = DiffWaveInference(trained_looking(DiffWaveConfig(layers=3, channels=4, cycle=2, n_mels=0)))
    with pytest.raises(ValueError, match="needs no condition"):
        unc(x, t, torch.randn(2, 8, 10))
    with pytest.raises(ValueError, match="needs a mel-conditioned DiffWave"):
        unc.project_condition(torch.randn(2, 8, 10))
    with pytest.raises(ValueError, match="tile must be >= 1"):
        DiffWaveInference(cond_net, tile=0)
    with pytest.raises(TypeError, match="needs a DiffWave"):
        DiffWaveInference(torch.nn.Linear(2, 2))


class Hidden(torch.nn.Module):
    """The same network, not recognisable as a DiffWave: `sample` runs it eagerly."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, cond=None):
        return self.net(x, t, cond)


@pytest.mark.parametrize("n_mels,sampler", [(0, "fast"), (8, "fast"), (8, "heun")])
def test_generate_sample_uses_the_engine_on_cpu_with_the_same_result(monkeypatch, n_mels, sampler):
    from audiodiff import sampling
    from audiodiff.config import ExperimentConfig
    from audiodiff.diffusion import DDPM, EDM

    cfg = ExperimentConfig(name="t")
    net = trained_looking(DiffWaveConfig(layers=4, channels=8, cycle=2, n_mels=n_mels, hop=16), seed=2)
    formulation = DDPM.from_preset("diffwave") if sampler == "fast" else EDM(sigma_data=0.5)
    mel = torch.randn(2, n_mels, 12) if n_mels else None
    built = []
    monkeypatch.setattr(sampling, "DiffWaveInference", lambda n: built.append(n) or DiffWaveInference(n))
    fast = sampling.sample(net, formulation, cfg, [3, 4], (1, 192), mel, sampler, 6)
    assert len(built) == 1
    eager = sampling.sample(Hidden(net), formulation, cfg, [3, 4], (1, 192), mel, sampler, 6)
    assert len(built) == 1 and eager.abs().max() > 0.01
    torch.testing.assert_close(fast, eager, atol=1e-5, rtol=1e-4)
