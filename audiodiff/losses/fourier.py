"""Fourier-domain spectral losses: amplitude (AMP) and amplitude+phase (AMP+PHASE).

Both act on the last axis of (B, C, T) audio or the last two axes of (B, C, H, W)
images/mels, through the same code. The real FFT is used and the one-sided spectrum is
weighted so that sums and means equal those over the full two-sided spectrum
(`numpy.fft.fftn`): each bin with a distinct conjugate partner counts twice.

Reference: "Spectral Regularization for Diffusion Models", arXiv 2603.02447, Section 4.
Defaults follow the paper's notation literally: an unnormalised FFT (``norm="backward"``)
and the L1 *norm* (``reduction="sum"``). The regularization weight lambda scales with
these choices; ``reduction="mean"`` divides by the number of channels x frequencies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiodiff.losses._common import REDUCTIONS, SPECTRAL_NDIMS, check_choice, check_pair, spectral_ndim

FFT_NORMS = ("backward", "ortho", "forward")
COUPLINGS = ("frequency", "global")


def hermitian_weights(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Weights of the n // 2 + 1 rfft bins so that a weighted sum equals the full-FFT sum.

    Bins 1 .. (n - 1) // 2 stand for themselves and their conjugate mirror (weight 2); DC,
    and Nyquist for even n, appear once. The weights sum to n.
    """
    w = torch.ones(n // 2 + 1, device=device, dtype=dtype)
    w[1 : (n - 1) // 2 + 1] = 2.0
    return w


def _spectrum(x: Tensor, ndim: int, norm: str) -> Tensor:
    """One-sided complex spectrum over the trailing `ndim` axes."""
    return torch.fft.rfftn(x, dim=tuple(range(-ndim, 0)), norm=norm)


def _weighted_reduce(values: Tensor, n_last: int, reduction: str) -> Tensor:
    """Reduce a one-sided spectral quantity (B, C, ..., n_last // 2 + 1) to (B,).

    Sums are over the full two-sided spectrum; means divide by C times its size.
    """
    w = hermitian_weights(n_last, values.device, values.dtype)
    total = (values * w).flatten(1).sum(1)
    if reduction == "mean":
        full_size = values[0].numel() // values.shape[-1] * n_last
        total = total / full_size
    return total


def _safe_angle(z: Tensor, tiny: float) -> Tensor:
    """angle(z) in (-pi, pi] with a finite (zero) gradient where |z|^2 <= tiny."""
    power = z.real.square() + z.imag.square()
    ok = power > tiny
    z_safe = torch.where(ok, z, torch.ones_like(z))
    return torch.where(ok, torch.angle(z_safe), torch.zeros_like(power))


class AmplitudeLoss(nn.Module):
    """AMP: L1 distance between Fourier amplitudes, `|| |F x0| - |F x0_hat| ||_1`.

    Args:
        norm: FFT normalisation, one of "backward" (unnormalised), "ortho", "forward".
        reduction: "sum" (the L1 norm, default) or "mean" over channels and frequencies.
        ndim: "auto" (1-D over T for 3-D input, 2-D over H, W for 4-D input), 1 or 2.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    def __init__(self, norm: str = "backward", reduction: str = "sum", ndim: str | int = "auto") -> None:
        super().__init__()
        check_choice("norm", norm, FFT_NORMS)
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("ndim", ndim, SPECTRAL_NDIMS)
        self.norm, self.reduction, self.ndim = norm, reduction, ndim

    def forward(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        x0_hat, x0 = check_pair(x0_hat, x0, "amp", (3, 4))
        d = spectral_ndim(x0, self.ndim)
        amp_err = (_spectrum(x0_hat, d, self.norm).abs() - _spectrum(x0, d, self.norm).abs()).abs()
        return _weighted_reduce(amp_err, x0.shape[-1], self.reduction)


class AmplitudePhaseLoss(nn.Module):
    """AMP+PHASE: amplitude error times (1 + phase error), paper Eq. 15.

    Two readings of Eq. 15 are offered:
      - ``coupling="frequency"`` (default): `sum_k |dA_k| * (1 + |dphi_k|)`, each
        frequency's amplitude error weighted by its own phase error;
      - ``coupling="global"``: `||dA||_1 * (1 + ||dphi||_1)`, the product of the two norms.
    Phase differences are wrapped to (-pi, pi] by taking `angle(F x0 * conj(F x0_hat))`.
    Bins where either spectrum is (numerically) zero have no phase and contribute zero
    phase error, which keeps gradients finite on silence and DC input.

    Args:
        norm: FFT normalisation ("backward", "ortho", "forward").
        reduction: "sum" or "mean" over channels and frequencies (applied to both norms).
        coupling: "frequency" or "global".
        ndim: "auto", 1 or 2 (see AmplitudeLoss).
        phase_eps: power threshold of `|F x0 * conj(F x0_hat)|^2` below which phase is ignored.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    def __init__(
        self,
        norm: str = "backward",
        reduction: str = "sum",
        coupling: str = "frequency",
        ndim: str | int = "auto",
        phase_eps: float = 1e-20,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, FFT_NORMS)
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("coupling", coupling, COUPLINGS)
        check_choice("ndim", ndim, SPECTRAL_NDIMS)
        self.norm, self.reduction, self.coupling, self.ndim = norm, reduction, coupling, ndim
        self.phase_eps = phase_eps

    def forward(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        x0_hat, x0 = check_pair(x0_hat, x0, "amp_phase", (3, 4))
        d = spectral_ndim(x0, self.ndim)
        spec_hat, spec = _spectrum(x0_hat, d, self.norm), _spectrum(x0, d, self.norm)
        amp_err = (spec_hat.abs() - spec.abs()).abs()
        phase_err = _safe_angle(spec * spec_hat.conj(), self.phase_eps).abs()
        n_last = x0.shape[-1]
        if self.coupling == "frequency":
            return _weighted_reduce(amp_err * (1.0 + phase_err), n_last, self.reduction)
        amp_norm = _weighted_reduce(amp_err, n_last, self.reduction)
        return amp_norm * (1.0 + _weighted_reduce(phase_err, n_last, self.reduction))
