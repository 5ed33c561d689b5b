import pytest
import torch

from audiodiff.losses import AmplitudeLoss, WaveletLoss, build_loss, build_spectral_loss


def test_builder_weights_terms_and_sum():
    loss = build_spectral_loss(
        [
            {"name": "amp", "weight": 2.0, "kwargs": {"reduction": "mean"}},
            {"name": "wavelet", "label": "haar", "weight": 0.5},
            {"name": "wavelet", "label": "bior", "kwargs": {"wavelet": "bior1.3", "level": 3}},
        ]
    )
    x, y = torch.randn(3, 1, 1024), torch.randn(3, 1, 1024)
    terms = loss(x, y)
    assert list(terms) == ["amp", "haar", "bior"]
    torch.testing.assert_close(terms["amp"], AmplitudeLoss(reduction="mean")(x, y))
    torch.testing.assert_close(terms["bior"], WaveletLoss("bior1.3", level=3)(x, y))
    expected = 2.0 * terms["amp"] + 0.5 * terms["haar"] + terms["bior"]
    torch.testing.assert_close(loss.total(x, y), expected)
    torch.testing.assert_close(loss.combine(terms), expected)


def test_empty_sum_is_zero():
    loss = build_spectral_loss([])
    assert len(loss) == 0
    assert loss(torch.randn(4, 1, 100), torch.randn(4, 1, 100)) == {}
    out = loss.total(torch.randn(4, 1, 100), torch.randn(4, 1, 100))
    torch.testing.assert_close(out, torch.zeros(4))


@pytest.mark.parametrize(
    "entries,match",
    [
        ([{"name": "fourier"}], "unknown spectral loss 'fourier'; choose one of"),
        ([{"name": "amp", "kwargs": {"nrom": "ortho"}}], r"unknown option\(s\) \['nrom'\]; allowed: \['norm'"),
        ([{"name": "amp", "wieght": 1}], r"unknown key\(s\) \['wieght'\]"),
        ([{"weight": 1}], "missing 'name'"),
        ([{"name": "amp"}, {"name": "amp"}], "label 'amp' used twice"),
        ([{"name": "wavelet", "label": "bior1.3"}], r"label 'bior1.3' must not contain '.'"),
        ([{"name": "amp", "kwargs": {"norm": "unit"}}], r"norm='unit' is not allowed; choose one of"),
        ([{"name": "wavelet", "kwargs": {"wavelet": "morl"}}], "not a discrete PyWavelets wavelet"),
        ([{"name": "mrstft", "kwargs": {"resolutions": "hifi"}}], "unknown preset 'hifi'"),
    ],
)
def test_bad_entries_give_clear_errors(entries, match):
    with pytest.raises(ValueError, match=match):
        build_spectral_loss(entries)


def test_buffers_follow_module_device_and_dtype():
    loss = build_loss("mel", sample_rate=8000, n_fft=256, hop=64, n_mels=20).double()
    assert loss.fb.dtype == torch.float64 and loss.window.dtype == torch.float64
    assert not loss.state_dict()  # windows and filters are derived, not saved
