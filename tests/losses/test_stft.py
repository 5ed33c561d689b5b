"""STFT losses against auraloss (the oracle) and librosa."""

import auraloss
import librosa
import numpy as np
import pytest
import torch

from audiodiff.losses import MelSTFTLoss, MultiResolutionSTFTLoss, STFTLoss
from tests.losses.signals import speechlike


def signal_pairs():
    g = torch.Generator().manual_seed(1)
    clean = speechlike(16000, seed=3)
    yield "random", torch.randn(1, 1, 16000, generator=g), torch.randn(1, 1, 16000, generator=g)
    yield "speechlike", (clean + 0.05 * torch.randn(16000, generator=g))[None, None], clean[None, None]
    silent_gap = clean.clone()
    silent_gap[4000:9000] = 0
    yield "silence_segments", (0.8 * silent_gap)[None, None], silent_gap[None, None]
    t = torch.arange(16000) / 16000
    yield "tones", torch.sin(2 * np.pi * 440 * t)[None, None], torch.sin(2 * np.pi * 445 * t)[None, None]


@pytest.mark.parametrize("case,x,y", list(signal_pairs()))
def test_mrstft_matches_auraloss(case, x, y):
    ref = auraloss.freq.MultiResolutionSTFTLoss()(x, y)
    ours = MultiResolutionSTFTLoss("auraloss")(x, y)
    torch.testing.assert_close(ours, ref.reshape(1), rtol=1e-5, atol=0)


def test_mrstft_matches_auraloss_per_example():
    xs, ys = torch.randn(4, 1, 8000), torch.randn(4, 1, 8000) * 0.5
    ours = MultiResolutionSTFTLoss("auraloss")(xs, ys)
    ref = torch.stack([auraloss.freq.MultiResolutionSTFTLoss()(xs[i : i + 1], ys[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
    # auraloss's log-magnitude term is a batch mean: equal to the mean of ours.
    ref_log = auraloss.freq.MultiResolutionSTFTLoss(w_sc=0.0)(xs, ys)
    torch.testing.assert_close(MultiResolutionSTFTLoss(w_sc=0.0)(xs, ys).mean(), ref_log, rtol=1e-5, atol=0)


@pytest.mark.parametrize("w", [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, 0.5, 2.0)])
def test_single_resolution_terms_match_auraloss(w):
    x, y = speechlike(8000, seed=5)[None, None], speechlike(8000, seed=6)[None, None]
    ref = auraloss.freq.STFTLoss(512, 128, 400, w_sc=w[0], w_log_mag=w[1], w_lin_mag=w[2])(x, y)
    ours = STFTLoss(512, 128, 400, w_sc=w[0], w_log_mag=w[1], w_lin_mag=w[2])(x, y)
    torch.testing.assert_close(ours, ref.reshape(1), rtol=1e-5, atol=0)


def test_multichannel_is_one_example():
    x, y = torch.randn(2, 2, 4000), torch.randn(2, 2, 4000)
    out = STFTLoss(256, 64)(x, y)
    ref = torch.stack([auraloss.freq.STFTLoss(256, 64, 256)(x[i : i + 1], y[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=0)


def test_mel_loss_matches_librosa_reference():
    sr, n_fft, hop = 16000, 512, 128
    x, y = speechlike(8000, seed=1).double(), speechlike(8000, seed=2).double()

    def logmel(s):
        m = librosa.feature.melspectrogram(
            y=s.numpy(),
            sr=sr,
            n_fft=n_fft,
            hop_length=hop,
            power=1.0,
            n_mels=40,
            pad_mode="reflect",
            fmin=20,
            fmax=7600,
        )
        return np.log(np.maximum(m, 1e-5))

    expected = np.abs(logmel(x) - logmel(y)).mean()
    loss = MelSTFTLoss(sr, n_fft, hop, n_mels=40, fmin=20, fmax=7600)
    np.testing.assert_allclose(loss(x[None, None], y[None, None]).item(), expected, rtol=1e-6)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="win_length <= n_fft"):
        STFTLoss(256, 64, 512)
    with pytest.raises(ValueError, match="resolutions must be"):
        MultiResolutionSTFTLoss([(512, 128)])
    with pytest.raises(ValueError, match="power must be 1"):
        MelSTFTLoss(power=3)
    with pytest.raises(ValueError, match="fmin < fmax"):
        MelSTFTLoss(fmax=20000)


@pytest.mark.parametrize("w", [(1.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.7, 0.2, 0.4)])
def test_fused_gradient_equals_autograd(w):
    # x0.requires_grad switches to the plain-autograd path: same value, same gradient.
    target = speechlike(4000, seed=7)[None, None].repeat(2, 1, 1).double()
    target[1, :, 1000:2500] = 0.0  # silent stretch: clamped bins must get zero gradient
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    loss = MultiResolutionSTFTLoss([(256, 64, 200), (512, 128, 512)], *w)
    fused = loss(pred, target)
    (g_fused,) = torch.autograd.grad(fused.sum(), pred)
    plain = loss(pred, target.clone().requires_grad_(True))
    (g_plain,) = torch.autograd.grad(plain.sum(), pred)
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(g_fused, g_plain)
    short = target[1:, :, 900:1500]  # crosses into the silent stretch
    probe = (short + 0.1 * torch.randn_like(short)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, short), (probe,))
