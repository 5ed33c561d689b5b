"""DiffWaveConfig.embed_freqs: the step embedding's frequencies, DiffWave's (for integer DDPM steps) or EDM's.

EDM feeds the embedding c_noise = ln(sigma) / 4, about 2 units over sigma 0.002..10; DiffWave's
frequencies (1 .. 10^4 rad per unit) turn many times across that, EDM's (1 .. 10^-4) do not.
"""

import pytest
import torch

from audiodiff.models import DiffWave, DiffWaveConfig
from audiodiff.models.diffwave import StepEmbedding, resolve_embed_interp

TINY = DiffWaveConfig(layers=2, channels=4, cycle=2, n_mels=0, embed_dim=16, embed_interp="exact")


def feature_jumps(freqs: str) -> torch.Tensor:
    """Per feature (128): the largest change between c_noise points 0.01 apart over [-1.6, 0.6]."""
    c_noise = torch.arange(-160, 61) / 100
    return StepEmbedding(16, "exact", freqs).sinusoids(c_noise).diff(dim=0).abs().amax(dim=0)


def test_edm_frequencies_make_every_feature_smooth_in_c_noise():
    edm, diffwave = feature_jumps("edm"), feature_jumps("diffwave")
    assert edm.shape == diffwave.shape == (128,)
    assert edm.max() < 0.02  # at most 1 rad per unit: a step of 0.01 moves a feature by at most 0.01
    assert diffwave.max() > 1  # up to 10^4 rad per unit: 100 rad between neighbours, a hash of sigma
    assert (diffwave > 0.1).sum() > 64  # most of the 128 features jump (those above 10 rad per unit)


def test_edm_frequencies_are_edms_positional_embedding():
    """NVlabs/edm PositionalEmbedding(num_channels=128, max_positions=10000, endpoint=True)."""
    freqs = StepEmbedding(16, "exact", "edm").freqs
    half = torch.arange(64, dtype=torch.float32)
    assert torch.equal(freqs, (1 / 10000) ** (half / (64 - 1)))
    assert freqs[0] == 1 and abs(freqs[-1].item() - 1e-4) < 1e-9
    ratios = freqs[1:] / freqs[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 10 ** (-4 / 63)))


def test_the_default_is_diffwaves_embedding_bit_for_bit_with_the_same_state_dict():
    assert DiffWaveConfig().embed_freqs == "diffwave"
    net, edm = DiffWave(TINY), DiffWave(DiffWaveConfig(**{**vars(TINY), "embed_freqs": "edm"}))
    t = torch.tensor([0.0, 3.0, 49.0, 0.894, -1.55])
    arg = t[:, None] * (10.0 ** (torch.arange(64) * 4.0 / 63.0))[None]
    assert torch.equal(net.step_embed.sinusoids(t), torch.cat([arg.sin(), arg.cos()], dim=1))
    # the frequencies are a non-persistent buffer: checkpoints of either load into the other, strictly
    assert net.state_dict().keys() == edm.state_dict().keys() and "step_embed.freqs" not in net.state_dict()
    edm.load_state_dict(net.state_dict())
    assert not torch.allclose(edm.step_embed(t), net.step_embed(t))  # same weights, other frequencies


def test_bad_embed_freqs_and_edm_with_lerp_are_one_line_errors():
    with pytest.raises(ValueError, match=r"embed_freqs='fourier' is not allowed; choose one of \['diffwave', 'edm'\]"):
        DiffWave(DiffWaveConfig(**{**vars(TINY), "embed_freqs": "fourier"}))
    with pytest.raises(ValueError, match="embed_freqs='edm' does not go with embed_interp='lerp'") as err:
        DiffWave(DiffWaveConfig(**{**vars(TINY), "embed_freqs": "edm", "embed_interp": "lerp"}))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="embed_freqs='edm' does not go with embed_interp='lerp'"):
        resolve_embed_interp("lerp", "ddpm", "edm")
    assert resolve_embed_interp("auto", "ddpm", "edm") == "exact"  # smooth between integer steps
    assert resolve_embed_interp("auto", "ddpm") == "lerp"  # unchanged for DiffWave's frequencies
