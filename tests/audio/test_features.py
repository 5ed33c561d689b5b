import math

import librosa
import numpy as np
import pytest
import torch

from audiodiff.audio.features import LogMel, griffin_lim, mel_config


def voice(n=16000, sr=16000):
    t = torch.arange(n) / sr
    x = sum(torch.sin(2 * math.pi * k * 150 * t) / k for k in range(1, 6)) * (1 + torch.sin(2 * math.pi * 2 * t))
    return 0.2 * x


@pytest.mark.parametrize("preset", ["speech16k", "hifigan", "speech8k"])
def test_log_mel_matches_librosa(preset):
    cfg = mel_config(preset)
    x = voice(cfg.sample_rate, cfg.sample_rate).double()
    ref = librosa.feature.melspectrogram(
        y=x.numpy(),
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop,
        win_length=cfg.win_length,
        power=cfg.power,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=cfg.htk,
        norm=cfg.filter_norm,
        pad_mode="reflect",
        dtype=np.float64,
    )
    ours = LogMel(cfg)(x[None])[0].numpy()
    np.testing.assert_allclose(ours, np.log(np.maximum(ref, 1e-5)), atol=1e-9)
    assert LogMel(cfg)(x[None].half()).dtype == torch.float32


def test_diffwave_preset_scaling():
    cfg = mel_config("diffwave")
    x = voice(22050, 22050)
    lm = LogMel(cfg)
    win = np.hanning(1025)[:-1]  # periodic Hann
    ref = librosa.feature.melspectrogram(
        y=x.double().numpy(),
        sr=22050,
        n_fft=1024,
        hop_length=256,
        power=1.0,
        n_mels=80,
        fmin=20,
        fmax=11025,
        htk=True,
        norm=None,
        pad_mode="reflect",
    ) / np.sqrt((win**2).sum())
    expected = np.clip((20 * np.log10(np.maximum(ref, 1e-5)) - 20 + 100) / 100, 0, 1)
    out = lm(x[None].double())[0].numpy()
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, expected, atol=1e-8)


@pytest.mark.parametrize("preset", ["speech16k", "diffwave"])
def test_compress_inverts(preset):
    lm = LogMel(mel_config(preset))
    mel = torch.rand(2, 80, 10) * 0.5 + 0.01
    torch.testing.assert_close(lm.to_linear(lm.compress(mel)), mel, rtol=1e-4, atol=1e-6)


def test_griffin_lim_reduces_spectral_distance_over_iterations():
    lm = LogMel(mel_config("speech16k"))
    feats = lm(voice()[None])
    dist = []
    for iters in (1, 8, 64):
        audio = griffin_lim(lm, feats, iters=iters, length=16000, generator=torch.Generator().manual_seed(0))
        assert audio.shape == (1, 16000)
        dist.append((lm(audio) - feats).abs().mean().item())
    assert dist[0] > dist[1] > dist[2] and dist[2] < 0.6 * dist[0]


def test_griffin_lim_with_one_generator_per_row_inverts_each_row_as_if_alone():
    lm = LogMel(mel_config("speech16k"))
    feats = lm(torch.stack([voice(), 0.5 * voice().roll(4000)]))[..., :40]
    gens = lambda n: [torch.Generator().manual_seed(7) for _ in range(n)]  # noqa: E731
    both = griffin_lim(lm, feats, iters=4, generator=gens(2))
    shared = griffin_lim(lm, feats, iters=4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(both[0], shared[0])  # row 0 draws what one generator draws for the batch
    torch.testing.assert_close(both[1], griffin_lim(lm, feats[1:], iters=4, generator=gens(1))[0])
    assert not torch.allclose(both[1], shared[1], atol=1e-3)  # one generator: row 1's draw follows row 0's
    with pytest.raises(ValueError, match=r"^griffin_lim: 1 generators for a batch of 2; give one per row$"):
        griffin_lim(lm, feats, iters=1, generator=gens(1))


def test_speech8k_turns_one_second_into_a_32_by_32_picture_below_nyquist():
    """The small mel preset of egs/digits/conf/mel_small.yaml: 1 s at 8 kHz -> 32 bands x 32 frames, every
    band inside 0..4 kHz and carrying energy (no empty filter from a top edge past Nyquist)."""
    cfg = mel_config("speech8k")
    assert (cfg.sample_rate, cfg.fmax) == (8000, 4000.0)
    lm = LogMel(cfg)
    assert lm(voice(8000, 8000)[None]).shape == (1, 32, 32)
    assert (lm.fb.sum(1) > 0).all()


def test_config_errors():
    with pytest.raises(ValueError, match="unknown mel preset 'ljspeech'"):
        mel_config("ljspeech")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['nmels'\]"):
        mel_config("speech16k", nmels=64)
    assert mel_config("speech16k", n_mels=64).n_mels == 64
