"""Wavelet loss against PyWavelets coefficients, perfect reconstruction, weights."""

import numpy as np
import ptwt
import pytest
import pywt
import torch

from audiodiff.losses import WaveletLoss
from audiodiff.losses.dwt import analysis_filters, wavedec
from audiodiff.losses.wavelet import max_level


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3", "db4"])
@pytest.mark.parametrize("mode", ["symmetric", "reflect", "zero", "periodic", "constant"])
def test_1d_coefficients_and_loss_match_pywt(wavelet, mode):
    x, y = torch.randn(2, 2, 1001, dtype=torch.float64), torch.randn(2, 2, 1001, dtype=torch.float64)
    ours = wavedec(x, analysis_filters(wavelet), 4, mode, 1)
    ref = pywt.wavedec(x.numpy(), wavelet, mode=mode, level=4)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-12)
    # The loss: sum over bands of the L1 norm of coefficient differences (gamma = 1).
    rx, ry = ref, pywt.wavedec(y.numpy(), wavelet, mode=mode, level=4)
    expected = sum(np.abs(a - b).reshape(2, -1).sum(1) for a, b in zip(rx, ry))
    out = WaveletLoss(wavelet, level=4, mode=mode)(x, y)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_2d_loss_matches_pywt_wavedec2(wavelet, reduction):
    x, y = torch.randn(2, 3, 33, 40, dtype=torch.float64), torch.randn(2, 3, 33, 40, dtype=torch.float64)
    rx = pywt.wavedec2(x.numpy(), wavelet, mode="symmetric", level=2)
    ry = pywt.wavedec2(y.numpy(), wavelet, mode="symmetric", level=2)
    red = (
        (lambda v: np.abs(v).reshape(2, -1).sum(1))
        if reduction == "sum"
        else (lambda v: np.abs(v).reshape(2, -1).mean(1))
    )
    # gamma per level (finest first) and band weights (h, v, d), approximation weight 0.3.
    gamma, bands = [2.0, 0.5], [1.0, 3.0, 0.25]
    expected = 0.3 * red(rx[0] - ry[0])
    for lvl, (dx, dy) in enumerate(zip(rx[1:], ry[1:])):  # coarsest (level 2) first
        g = gamma[1 - lvl]
        expected = expected + sum(g * w * red(a - b) for w, a, b in zip(bands, dx, dy))
    loss = WaveletLoss(wavelet, level=2, gamma=gamma, approx_weight=0.3, band_weights=bands, reduction=reduction)
    np.testing.assert_allclose(loss(x, y).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3"])
def test_dwt_idwt_reconstructs(wavelet):
    x = torch.randn(3, 1, 512, dtype=torch.float64)
    coeffs = wavedec(x, analysis_filters(wavelet), 5, "symmetric", 1)
    rec = ptwt.waverec(coeffs, wavelet)[..., :512]
    torch.testing.assert_close(rec, x)
    img = torch.randn(2, 1, 64, 64, dtype=torch.float64)
    c2 = wavedec(img, analysis_filters(wavelet), 3, "symmetric", 2)
    rec2 = ptwt.waverec2([c2[0], *(ptwt.WaveletDetailTuple2d(*d) for d in c2[1:])], wavelet)[..., :64, :64]
    torch.testing.assert_close(rec2, img)


def test_approximation_band_can_be_left_out():
    # A constant offset lives only in the approximation band for haar (no boundary effects).
    x = torch.zeros(1, 1, 256, dtype=torch.float64)
    y = x + 1.0
    assert WaveletLoss("haar", level=3, approx_weight=0.0)(x, y).item() == pytest.approx(0.0, abs=1e-12)
    assert WaveletLoss("haar", level=3)(x, y).item() > 0


def test_default_level_is_deepest_useful():
    for n in (1, 2, 7, 8, 9, 63, 64, 1000, 15872):
        for name in ("haar", "bior1.3", "db4"):
            dec_len = pywt.Wavelet(name).dec_len
            assert max_level([n], dec_len) == max(1, pywt.dwt_max_level(n, dec_len)), (n, name)
    x, y = torch.randn(1, 1, 1024), torch.randn(1, 1, 1024)
    torch.testing.assert_close(WaveletLoss("haar")(x, y), WaveletLoss("haar", level=10)(x, y))


def test_gamma_length_checked():
    with pytest.raises(ValueError, match="gamma has 2 weights but level=3"):
        WaveletLoss(level=3, gamma=[1.0, 1.0])
    with pytest.raises(ValueError, match="gamma has 2 weights but the input gives"):
        WaveletLoss(gamma=[1.0, 1.0])(torch.randn(1, 1, 64), torch.randn(1, 1, 64))


@pytest.mark.parametrize("wavelet", ["haar", "bior1.3", "db4"])
@pytest.mark.parametrize("mode", ["symmetric", "reflect", "zero", "periodic", "constant"])
def test_2d_coefficients_match_pywt_and_ptwt(wavelet, mode):
    x = torch.randn(2, 3, 33, 40, dtype=torch.float64)
    ours = wavedec(x, analysis_filters(wavelet), 2, mode, 2)
    ref = pywt.wavedec2(x.numpy(), wavelet, mode=mode, level=2)
    np.testing.assert_allclose(ours[0].numpy(), ref[0], atol=1e-12)
    for od, rd in zip(ours[1:], ref[1:]):
        for a, b in zip(od, rd):
            np.testing.assert_allclose(a.numpy(), b, atol=1e-12)
    if mode != "periodic":  # ptwt has no pywt periodic mode for odd sizes
        theirs = ptwt.wavedec2(x, wavelet, mode=mode, level=2)
        torch.testing.assert_close(ours[1][2], theirs[1][2])


def test_levels_beyond_the_useful_depth_still_match_pywt():
    x = torch.randn(1, 1, 5, dtype=torch.float64)
    with pytest.warns(UserWarning):
        ref = pywt.wavedec(x.numpy(), "db4", mode="symmetric", level=3)
    for a, b in zip(wavedec(x, analysis_filters("db4"), 3, "symmetric", 1), ref):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-12)
