"""The two normalisations: the paper's values unchanged, the scale-free ones independent of N."""

import pytest
import torch

from audiodiff.losses import LOSSES, build_loss, build_spectral_loss

# (name, kwargs): every registered loss, the AMP+PHASE global reading and a biorthogonal wavelet
CASES = [
    ("amp", {}),
    ("amp_phase", {}),
    ("amp_phase", {"coupling": "global"}),
    ("wavelet", {}),
    ("wavelet", {"wavelet": "bior1.3"}),
    ("stft", {}),
    ("mrstft", {}),
    ("mel", {"sample_rate": 16000}),
]


def _noise_pair(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """White noise and a copy perturbed by 30 % white noise, (4, 1, n) each."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(4, 1, n, generator=g, dtype=torch.float64)
    return x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64), x0


def test_every_loss_has_a_scale_free_form():
    assert {name for name, _ in CASES} == set(LOSSES)


@pytest.mark.parametrize("name,kwargs", CASES)
def test_scale_free_values_do_not_depend_on_the_clip_length(name, kwargs):
    # The clip length (15,872) against 4x shorter: the paper forms grow like N .. N^2.5.
    short, long = (build_loss(name, "scale_free", **kwargs)(*_noise_pair(n)).mean() for n in (3968, 15872))
    assert abs(long / short - 1) < 0.05, (name, kwargs, short.item(), long.item())


def test_scale_free_losses_are_comparable():
    x0_hat, x0 = _noise_pair(15872)
    amp, haar = (build_loss(name, "scale_free")(x0_hat, x0).mean() for name in ("amp", "wavelet"))
    assert 0.5 < amp / haar < 2  # the paper's form: 88x at this length
    assert build_loss("amp")(x0_hat, x0).mean() / build_loss("wavelet")(x0_hat, x0).mean() > 50


def test_paper_form_is_the_default_and_unchanged():
    x0_hat, x0 = _noise_pair(512)
    spec_err = (torch.fft.fft(x0_hat).abs() - torch.fft.fft(x0).abs()).abs().sum((1, 2))
    torch.testing.assert_close(build_loss("amp", "paper")(x0_hat, x0), spec_err)
    torch.testing.assert_close(build_loss("amp")(x0_hat, x0), spec_err)
    # haar on 512 samples: orthonormal, so the L1 sum over all coefficients of the difference
    import pywt

    coeffs = pywt.wavedec((x0_hat - x0).numpy(), "haar", axis=-1)
    expected = sum(abs(c).reshape(4, -1).sum(1) for c in coeffs)
    torch.testing.assert_close(build_loss("wavelet")(x0_hat, x0), torch.from_numpy(expected))
    torch.testing.assert_close(
        build_loss("wavelet", "scale_free")(x0_hat, x0), torch.from_numpy(expected) / sum(c.shape[-1] for c in coeffs)
    )


def test_scale_free_options_and_their_errors():
    amp = build_loss("amp_phase", "scale_free", coupling="global")
    assert (amp.norm, amp.reduction, amp.coupling) == ("ortho", "mean", "global")
    assert build_loss("amp", "scale_free", norm="ortho").norm == "ortho"  # agreeing kwargs are fine
    with pytest.raises(ValueError, match=r"normalize='scale_free' sets reduction='mean_all'.*reduction='sum'"):
        build_loss("wavelet", "scale_free", reduction="sum")
    with pytest.raises(ValueError, match=r"normalize='unit' is not allowed; choose one of \['paper', 'scale_free'\]"):
        build_spectral_loss([{"name": "amp"}], normalize="unit")
    assert build_spectral_loss([{"name": "wavelet"}], normalize="scale_free").losses["wavelet"].reduction == "mean_all"
