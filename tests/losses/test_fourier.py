"""AMP and AMP+PHASE against numpy full-spectrum references and closed forms."""

import math

import numpy as np
import pytest
import torch

from audiodiff.losses import AmplitudeLoss, AmplitudePhaseLoss
from audiodiff.losses.fourier import hermitian_weights
from tests.losses.signals import tone


def np_spectra(x, y, ndim, norm):
    axes = tuple(range(-ndim, 0))
    return np.fft.fftn(x.numpy(), axes=axes, norm=norm), np.fft.fftn(y.numpy(), axes=axes, norm=norm)


def np_reduce(v, reduction):
    flat = v.reshape(v.shape[0], -1)
    return flat.sum(1) if reduction == "sum" else flat.mean(1)


SHAPES = [(3, 1, 256), (2, 2, 255), (2, 1, 16, 20), (2, 3, 15, 17)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_amp_matches_numpy_full_fft(shape, norm, reduction):
    x, y = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    fx, fy = np_spectra(x, y, len(shape) - 2, norm)
    expected = np_reduce(np.abs(np.abs(fx) - np.abs(fy)), reduction)
    out = AmplitudeLoss(norm=norm, reduction=reduction)(x, y)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("coupling", ["frequency", "global"])
@pytest.mark.parametrize("phase_rel", [0.0, 0.1])
def test_amp_phase_matches_numpy(shape, reduction, coupling, phase_rel):
    x, y = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    ndim = len(shape) - 2
    fx, fy = np_spectra(x, y, ndim, "backward")
    d_amp = np.abs(np.abs(fx) - np.abs(fy))
    d_phase = np.abs(np.angle(np.exp(1j * (np.angle(fy) - np.angle(fx)))))  # wrapped to (-pi, pi]
    # phase weight |X_hat|^2 / (|X_hat|^2 + rel^2 (|X|^2 + m^2)), m = mean one-sided target amplitude
    axes = tuple(range(-ndim, 0))
    half = np.abs(np.fft.rfftn(y.numpy(), axes=axes))
    mean_amp = half.mean(axis=axes, keepdims=True)
    d_phase = d_phase * np.abs(fx) ** 2 / (np.abs(fx) ** 2 + phase_rel**2 * (np.abs(fy) ** 2 + mean_amp**2))
    if coupling == "frequency":
        expected = np_reduce(d_amp * (1 + d_phase), reduction)
    else:
        expected = np_reduce(d_amp, reduction) * (1 + np_reduce(d_phase, reduction))
    out = AmplitudePhaseLoss(reduction=reduction, coupling=coupling, phase_rel=phase_rel)(x, y)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9)


def test_amp_of_a_pure_tone():
    # cos at bin k with amplitude a has two FFT peaks of height a * N / 2.
    n, k, a = 1000, 37, 0.7
    x0 = tone(n, k, a)[None, None]
    out = AmplitudeLoss()(torch.zeros_like(x0), x0)
    torch.testing.assert_close(out, torch.tensor([a * n], dtype=torch.float64))
    # A phase shift leaves the amplitude spectrum untouched.
    shifted = tone(n, k, a, phase=1.0)[None, None]
    assert AmplitudeLoss()(shifted, x0).item() < 1e-9


def test_phase_error_is_wrapped():
    # x0_hat = -2 x0: amplitude error |X| everywhere, phase error exactly pi (not 0 or 2 pi).
    x0 = torch.randn(2, 1, 128, dtype=torch.float64)
    amp = AmplitudeLoss()(torch.zeros_like(x0), x0)
    out = AmplitudePhaseLoss(phase_rel=0.0)(-2 * x0, x0)
    torch.testing.assert_close(out, amp * (1 + math.pi))
    # A small rotation across the +-pi branch cut gives a small phase error.
    t = torch.arange(64, dtype=torch.float64)
    a = torch.cos(2 * math.pi * 5 * t / 64 + math.pi - 0.01)[None, None]
    b = 1.5 * torch.cos(2 * math.pi * 5 * t / 64 - math.pi + 0.01)[None, None]
    per_bin_amp = AmplitudeLoss()(a, b)
    torch.testing.assert_close(AmplitudePhaseLoss(phase_rel=0.0)(a, b), per_bin_amp * 1.02, rtol=1e-6, atol=1e-9)


def test_same_code_for_audio_and_images():
    # A (B, C, 1, T) image has the same 2-D spectrum as the (B, C, T) signal's 1-D spectrum.
    x, y = torch.randn(2, 3, 300), torch.randn(2, 3, 300)
    for loss in (AmplitudeLoss(), AmplitudePhaseLoss()):
        torch.testing.assert_close(loss(x[:, :, None], y[:, :, None]), loss(x, y), rtol=1e-5, atol=1e-3)
    # ndim=1 on an image treats rows as signals: the sum over rows of the 1-D losses.
    img_x, img_y = torch.randn(2, 1, 4, 64), torch.randn(2, 1, 4, 64)
    rows = sum(AmplitudeLoss()(img_x[:, :, r], img_y[:, :, r]) for r in range(4))
    torch.testing.assert_close(AmplitudeLoss(ndim=1)(img_x, img_y), rows)
    with pytest.raises(ValueError, match="ndim=2 transform needs a"):
        AmplitudeLoss(ndim=2)(x, y)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 1001])
def test_hermitian_weights_sum_to_n(n):
    assert hermitian_weights(n, torch.device("cpu"), torch.float64).sum().item() == n


def _with_bin(x: torch.Tensor, k: int, amplitude: float, phase: float) -> torch.Tensor:
    """x with rfft bin k set to amplitude * exp(i phase)."""
    spec = torch.fft.rfft(x)
    spec[..., k] = amplitude * complex(math.cos(phase), math.sin(phase))
    return torch.fft.irfft(spec, x.shape[-1])


@pytest.mark.parametrize("coupling", ["frequency", "global"])
@pytest.mark.parametrize("norm,reduction", [("backward", "sum"), ("ortho", "mean")])
@pytest.mark.parametrize("scale", [1.0, 1e-4])
def test_amp_phase_gradient_bounded_at_an_empty_bin(coupling, norm, reduction, scale):
    # The numbers: a predicted bin at 1.4e-6 against a target of 5.5 (unweighted Eq. 15
    # gave a gradient 3.5e5 times AMP's). The bound must hold at any signal scale.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 1, 256, generator=g, dtype=torch.float64)
    x0 = _with_bin(x0, 10, 5.5, 0.3)
    x0_hat = _with_bin(x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64), 10, 1.4e-6, 2.0)
    x0, x0_hat = scale * x0, scale * x0_hat

    def grad_norm(loss) -> float:
        x = x0_hat.clone().requires_grad_()
        loss(x, x0).sum().backward()
        return x.grad.norm().item()

    amp_loss = AmplitudeLoss(norm=norm, reduction=reduction)
    loss = AmplitudePhaseLoss(norm=norm, reduction=reduction, coupling=coupling)
    # The reference: AMP's gradient times the loss's phase factor (1 + phase error) held fixed,
    # i.e. the gradient through the amplitudes alone (for "global" that factor is ~N pi / 2).
    factor = 1.0 if coupling == "frequency" else (loss(x0_hat, x0) / amp_loss(x0_hat, x0)).item()
    amp = factor * grad_norm(amp_loss)
    loss.phase_rel = 0.0
    assert grad_norm(loss) > 1e3 * amp  # the failure the weight removes
    loss.phase_rel = 0.1
    assert grad_norm(loss) < 3 * amp


def test_phase_weight_changes_the_value_little():
    # Where predicted amplitudes are not far below the target's, the weighted loss stays near Eq. 15.
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 1, 4096, generator=g, dtype=torch.float64)
    x0_hat = x0 + 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    ratio = AmplitudePhaseLoss()(x0_hat, x0) / AmplitudePhaseLoss(phase_rel=0.0)(x0_hat, x0)
    assert ((ratio > 0.96) & (ratio <= 1.0)).all(), ratio
    with pytest.raises(ValueError, match="phase_rel must be in"):
        AmplitudePhaseLoss(phase_rel=1.5)
