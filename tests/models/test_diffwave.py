import sys
import types

import pytest
import torch

from audiodiff.models import DIFFWAVE_PRESETS, DiffWave, DiffWaveConfig
from audiodiff.models.diffwave import upsample_factors
from audiodiff.models.lmnt import config_from_lmnt_state, lmnt_to_ours, load_lmnt_checkpoint, ours_to_lmnt


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def randomize_output(model):
    torch.nn.init.normal_(model.out.weight, std=0.1)
    return model


def test_parameter_counts_are_exact():
    # the paper's 2.64M "base" and 24.1M unconditional; pinned exactly: a 1% tolerance would let
    # 3,840 missing biases (30 layers x 2C) through
    assert n_params(DiffWave(DIFFWAVE_PRESETS["base"])) == 2_619_971
    assert n_params(DiffWave(DIFFWAVE_PRESETS["unconditional"])) == 24_034_305


def test_shapes_conditional_and_unconditional():
    cond = DiffWave(DiffWaveConfig(layers=4, channels=8, cycle=2, n_mels=16, hop=64))
    x, t, mel = torch.randn(3, 1, 10 * 64), torch.tensor([0.0, 5.5, 49.0]), torch.randn(3, 16, 10)
    assert cond(x, t, mel).shape == x.shape
    unc = DiffWave(DiffWaveConfig(layers=4, channels=8, cycle=2, n_mels=0))
    assert unc(x, t).shape == x.shape
    with pytest.raises(ValueError, match="needs a mel condition"):
        cond(x, t)
    with pytest.raises(ValueError, match="needs no condition"):
        unc(x, t, mel)
    with pytest.raises(ValueError, match="640 samples, but audio has 600"):
        cond(x[..., :600], t, mel)
    # the condition matters
    randomize_output(cond)
    assert not torch.allclose(cond(x, t, mel), cond(x, t, mel + 1))


def test_receptive_field_matches_the_formula():
    model = randomize_output(DiffWave(DiffWaveConfig(layers=5, channels=8, cycle=3, n_mels=0)))
    rf = model.receptive_field
    assert rf == 1 + 2 * (1 + 2 + 4 + 1 + 2)
    x = torch.randn(1, 1, 101, requires_grad=True)
    model(x, torch.tensor([3.0]))[0, 0, 50].backward()
    seen = (x.grad[0, 0] != 0).nonzero().flatten()
    assert seen.min().item() == 50 - (rf - 1) // 2 and seen.max().item() == 50 + (rf - 1) // 2


def test_examples_do_not_mix_across_the_batch():
    model = randomize_output(DiffWave(DiffWaveConfig(layers=3, channels=8, cycle=3, n_mels=8, hop=16)))
    x, t, mel = torch.randn(4, 1, 160), torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.randn(4, 8, 10)
    full = model(x, t, mel)
    for i in range(4):
        torch.testing.assert_close(model(x[i : i + 1], t[i : i + 1], mel[i : i + 1]), full[i : i + 1])


@pytest.mark.parametrize("hop,factors", [(256, [16, 16]), (300, [5, 15, 4]), (1, [1]), (64, [16, 4])])
def test_any_hop_that_factors(hop, factors):
    assert upsample_factors(hop) == factors
    model = DiffWave(DiffWaveConfig(layers=2, channels=4, n_mels=8, hop=hop))
    assert model(torch.randn(1, 1, 7 * hop), torch.tensor([1.0]), torch.randn(1, 8, 7)).shape[-1] == 7 * hop
    with pytest.raises(ValueError, match="prime factor above 16"):
        upsample_factors(257)


def test_lerp_embedding_equals_exact_at_integer_steps():
    a = DiffWave(DiffWaveConfig(layers=1, channels=4, n_mels=0, embed_interp="exact"))
    b = DiffWave(DiffWaveConfig(layers=1, channels=4, n_mels=0, embed_interp="lerp"))
    b.load_state_dict(a.state_dict())
    t = torch.tensor([0.0, 7.0, 49.0])
    torch.testing.assert_close(a.step_embed(t), b.step_embed(t))
    assert not torch.allclose(a.step_embed(t + 0.5), b.step_embed(t + 0.5))
    # lerp: halfway between two steps, the MLP sees the mean of their sinusoids
    emb = b.step_embed
    mid = (emb.sinusoids(t) + emb.sinusoids(t + 1)) / 2
    silu = torch.nn.functional.silu
    torch.testing.assert_close(emb(t + 0.5), silu(emb.fc2(silu(emb.fc1(mid)))))


@pytest.mark.parametrize("interp", ["lerp", "exact"])
def test_step_embedding_runs_in_float64(interp):
    net = DiffWave(DiffWaveConfig(layers=2, channels=4, n_mels=0, embed_interp=interp))
    x, t = torch.randn(2, 1, 32), torch.tensor([3.25, 42.918643951416])
    single = net(x, t)
    double = net.double()(x.double(), t.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-5, rtol=1e-4)
    emb = net.step_embed(t.double())  # float64 steps keep their fraction: not rounded through float32
    assert emb.dtype == torch.float64


def test_auto_embedding_follows_the_formulation():
    from audiodiff.models.diffwave import resolve_embed_interp

    assert DiffWaveConfig().embed_interp == "lerp"  # a DiffWave is a DDPM model unless told otherwise
    assert resolve_embed_interp("auto", "ddpm") == "lerp" and resolve_embed_interp("auto", "edm") == "exact"
    assert resolve_embed_interp("exact", "ddpm") == "exact"  # stored choices stay as they are
    with pytest.raises(ValueError, match="EDM conditions on the continuous c_noise"):
        resolve_embed_interp("lerp", "edm")
    with pytest.raises(ValueError, match="'auto' must be resolved first"):
        DiffWave(DiffWaveConfig(embed_interp="auto"))


def lmnt_style_state(layers=3, channels=8, n_mels=80):
    """A state dict with lmnt-com/diffwave's names and shapes, as their model would save it."""
    sd = {
        "input_projection.weight": torch.randn(channels, 1, 1),
        "input_projection.bias": torch.randn(channels),
        "diffusion_embedding.embedding": torch.randn(50, 128),
        "diffusion_embedding.projection1.weight": torch.randn(512, 128),
        "diffusion_embedding.projection1.bias": torch.randn(512),
        "diffusion_embedding.projection2.weight": torch.randn(512, 512),
        "diffusion_embedding.projection2.bias": torch.randn(512),
        "spectrogram_upsampler.conv1.weight": torch.randn(1, 1, 3, 32),
        "spectrogram_upsampler.conv1.bias": torch.randn(1),
        "spectrogram_upsampler.conv2.weight": torch.randn(1, 1, 3, 32),
        "spectrogram_upsampler.conv2.bias": torch.randn(1),
        "skip_projection.weight": torch.randn(channels, channels, 1),
        "skip_projection.bias": torch.randn(channels),
        "output_projection.weight": torch.randn(1, channels, 1),
        "output_projection.bias": torch.randn(1),
    }
    for i in range(layers):
        p = f"residual_layers.{i}."
        sd |= {
            p + "dilated_conv.weight": torch.randn(2 * channels, channels, 3),
            p + "dilated_conv.bias": torch.randn(2 * channels),
            p + "diffusion_projection.weight": torch.randn(channels, 512),
            p + "diffusion_projection.bias": torch.randn(channels),
            p + "conditioner_projection.weight": torch.randn(2 * channels, n_mels, 1),
            p + "conditioner_projection.bias": torch.randn(2 * channels),
            p + "output_projection.weight": torch.randn(2 * channels, channels, 1),
            p + "output_projection.bias": torch.randn(2 * channels),
        }
    return sd


def test_lmnt_names_map_onto_ours_and_back():
    theirs = lmnt_style_state()
    cfg = config_from_lmnt_state(theirs)
    assert (cfg.layers, cfg.channels, cfg.n_mels, cfg.embed_interp) == (3, 8, 80, "lerp")
    model = DiffWave(cfg)
    model.load_state_dict(lmnt_to_ours(theirs), strict=True)
    back = ours_to_lmnt(model.state_dict())
    expected = {k for k in theirs if k != "diffusion_embedding.embedding"}
    assert set(back) == expected
    for k in expected:
        assert torch.equal(back[k], theirs[k]), k
    with pytest.raises(ValueError, match="unexpected state-dict key 'decoder.weight'"):
        lmnt_to_ours({"decoder.weight": torch.zeros(1)})


def test_load_lmnt_checkpoint_file_without_running_pickled_code(tmp_path, monkeypatch):
    # Their checkpoint: {"step", "model" (DDP "module." prefix), "optimizer", "params": AttrDict}
    mod = types.ModuleType("diffwave.params")

    class AttrDict(dict):
        pass

    AttrDict.__module__, AttrDict.__qualname__ = "diffwave.params", "AttrDict"
    mod.AttrDict = AttrDict
    monkeypatch.setitem(sys.modules, "diffwave", types.ModuleType("diffwave"))
    monkeypatch.setitem(sys.modules, "diffwave.params", mod)
    theirs = lmnt_style_state(layers=2)
    path = tmp_path / "weights-1000000.pt"
    params = AttrDict(batch_size=16, learning_rate=2e-4, hop_samples=256)
    torch.save({"step": 1000000, "model": {f"module.{k}": v for k, v in theirs.items()}, "params": params}, path)
    monkeypatch.delitem(sys.modules, "diffwave.params")
    model, info = load_lmnt_checkpoint(path)
    assert info["step"] == 1000000 and info["params"]["hop_samples"] == 256
    torch.testing.assert_close(model.layers[1].dilated.weight, theirs["residual_layers.1.dilated_conv.weight"])
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_lmnt_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_lmnt_checkpoint_refuses_foreign_globals(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": lmnt_style_state(layers=1), "params": _Evil()}, path)
    with pytest.raises(Exception, match="refusing to load .*print"):
        load_lmnt_checkpoint(path)


def test_traces_without_graph_breaks():
    net = DiffWave(DiffWaveConfig(layers=4, channels=8, cycle=2, n_mels=16, hop=64))
    args = (torch.randn(2, 1, 640), torch.tensor([1.0, 2.5]), torch.randn(2, 16, 10))
    explanation = torch._dynamo.explain(net)(*args)
    torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_projected_condition_equals_mel_condition():
    model = randomize_output(DiffWave(DiffWaveConfig(layers=3, channels=8, cycle=3, n_mels=8, hop=16)))
    x, t, mel = torch.randn(2, 1, 160), torch.tensor([1.0, 2.0]), torch.randn(2, 8, 10)
    projected = model.project_condition(mel)
    assert projected.shape == (2, 3, 16, 160)
    torch.testing.assert_close(model(x, t, projected), model(x, t, mel))
    with pytest.raises(ValueError, match="does not fit audio"):
        model(x[..., :80], t, projected)
