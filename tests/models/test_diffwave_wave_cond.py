"""DiffWave with a sample-rate condition beside the mel (model.diffwave.wave_cond, the Griffin-Lim vocoder)."""

import pytest
import torch

from audiodiff.models.diffwave import DiffWave, DiffWaveConfig, pack_waveform, unpack_waveform
from audiodiff.models.diffwave_infer import DiffWaveInference

SIZES = {"layers": 3, "channels": 8, "cycle": 2, "n_mels": 6, "hop": 8, "embed_dim": 16}


def test_pack_puts_each_frames_samples_behind_its_mel_and_unpack_inverts_it():
    cond, wave = torch.randn(2, 6, 5), torch.randn(2, 2, 5 * 8)
    packed = pack_waveform(cond, wave, 8)
    assert packed.shape == (2, 6 + 2 * 8, 5)
    assert torch.equal(packed[:, :6], cond)
    for w, f, j in [(0, 0, 0), (0, 3, 5), (1, 4, 7), (1, 0, 2)]:  # sample f * hop + j of channel w
        assert torch.equal(packed[:, 6 + w * 8 + j, f], wave[:, w, f * 8 + j])
    back_cond, back_wave = unpack_waveform(packed, 6, 8)
    assert torch.equal(back_cond, cond) and torch.equal(back_wave, wave)
    # cropping frames of the packed tensor crops the waveform with them
    assert torch.equal(unpack_waveform(packed[..., 1:3], 6, 8)[1], wave[..., 8:24])
    with pytest.raises(ValueError, match="40 waveform samples, the condition's 4 frames x hop 8 = 32"):
        pack_waveform(cond[..., :4], wave, 8)
    with pytest.raises(ValueError, match="23 channels are not 6 frame-rate channels plus whole hops of 8"):
        unpack_waveform(torch.randn(2, 23, 5), 6, 8)


def _net(wave_cond: int) -> DiffWave:
    net = DiffWave(DiffWaveConfig(**SIZES, wave_cond=wave_cond)).eval()
    torch.nn.init.normal_(net.out.weight)  # zero-initialised: every condition would give 0
    return net


def test_the_network_uses_the_waveform_channels_and_the_projected_path_is_the_same():
    net = _net(1)
    x, t = torch.randn(2, 1, 40), torch.tensor([3.0, 17.0])
    mel = torch.randn(2, 6, 5)
    cond = pack_waveform(mel, torch.randn(2, 1, 40), 8)
    other = pack_waveform(mel, torch.randn(2, 1, 40), 8)  # the same mels, another waveform
    with torch.no_grad():
        out = net(x, t, cond)
        assert (out - net(x, t, other)).abs().max() > 1e-3
        torch.testing.assert_close(net(x, t, net.project_condition(cond)), out)
        fast = DiffWaveInference(net)
        torch.testing.assert_close(fast(x, t, fast.project_condition(cond)), out, atol=1e-5, rtol=1e-4)
    with pytest.raises(
        ValueError, match="the condition has 6 channels, the model takes n_mels 6 \\+ wave_cond 1 x hop 8 = 14"
    ):
        net(x, t, mel)


def test_wave_cond_zero_is_the_mel_only_network():
    plain, wave = DiffWave(DiffWaveConfig(**SIZES)), DiffWave(DiffWaveConfig(**SIZES, wave_cond=1))
    ours = {k: tuple(v.shape) for k, v in plain.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in wave.state_dict().items()}
    assert ours.keys() == theirs.keys()  # the same names: only the condition projections widen
    assert {k for k in ours if ours[k] != theirs[k]} == {f"layers.{i}.cond_proj.weight" for i in range(3)}
    assert ours["layers.0.cond_proj.weight"] == (16, 6, 1) and theirs["layers.0.cond_proj.weight"] == (16, 7, 1)
    with pytest.raises(ValueError, match="wave_cond=1 must be >= 0, and > 0 only with n_mels > 0"):
        DiffWave(DiffWaveConfig(**(SIZES | {"n_mels": 0}), wave_cond=1))
