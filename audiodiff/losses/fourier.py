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
# build_loss(..., normalize="scale_free"): Parseval-preserving FFT and a mean over bins, so an
# amplitude error is in the signal's units per sample, whatever the clip length N.
SCALE_FREE_FFT = {"norm": "ortho", "reduction": "mean"}


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


def phase_weight(spec_hat: Tensor, spec: Tensor, rel: float, ndim: int) -> Tensor:
    """Weight g_k in [0, 1) of each bin's phase error: |X_hat|^2 / (|X_hat|^2 + rel^2 (|X|^2 + m^2)).

    m is the example's mean target amplitude over the `ndim` spectral axes. The phase of a bin
    whose predicted amplitude is far below `rel` times the target's (or the spectrum's mean)
    is numerically meaningless, and its gradient grows like |X| / |X_hat|; the weight damps
    it, so d(g_k |dphi_k|) / dX_hat_k is at most about 1 / (2 rel) instead of unbounded.
    rel = 0 gives g_k = 1 wherever X_hat_k != 0 (the unweighted Eq. 15).
    """
    p_hat = spec_hat.real.square() + spec_hat.imag.square()
    amp = spec.abs()
    mean_amp = amp.mean(dim=tuple(range(-ndim, 0)), keepdim=True)
    floor = rel**2 * (amp.square() + mean_amp.square())
    return p_hat / (p_hat + floor + torch.finfo(p_hat.dtype).tiny)


def _safe_angle(z: Tensor, ok: Tensor) -> Tensor:
    """angle(z) in (-pi, pi] where `ok`, else 0 with a zero (not NaN) gradient."""
    z_safe = torch.where(ok, z, torch.ones_like(z))
    return torch.where(ok, torch.angle(z_safe), torch.zeros_like(z.real))


class AmplitudeLoss(nn.Module):
    """AMP: L1 distance between Fourier amplitudes, `|| |F x0| - |F x0_hat| ||_1`.

    Args:
        norm: FFT normalisation, one of "backward" (unnormalised), "ortho", "forward".
        reduction: "sum" (the L1 norm, default) or "mean" over channels and frequencies.
        ndim: "auto" (1-D over T for 3-D input, 2-D over H, W for 4-D input), 1 or 2.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    SCALE_FREE = SCALE_FREE_FFT

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
    Each bin's phase error is weighted by `phase_weight` (g_k, near 1 where the predicted
    amplitude is well above `phase_rel` times the target's): the phase of an (almost) empty
    predicted bin has no meaning and a gradient growing like |X| / |X_hat| (a bin at 1.4e-6
    against a target of 5.5 gave 3.5e5 times AMP's gradient); with the weight it is within
    a small factor of AMP's at any scale. Bins where either spectrum is zero contribute no
    phase error, which keeps gradients finite on silence and DC input.

    Args:
        norm: FFT normalisation ("backward", "ortho", "forward").
        reduction: "sum" or "mean" over channels and frequencies (applied to both norms).
        coupling: "frequency" or "global".
        ndim: "auto", 1 or 2 (see AmplitudeLoss).
        phase_rel: relative amplitude below which a bin's phase is damped (see `phase_weight`);
            0 gives the unweighted Eq. 15 (unbounded gradients at near-empty predicted bins).

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    SCALE_FREE = SCALE_FREE_FFT

    def __init__(
        self,
        norm: str = "backward",
        reduction: str = "sum",
        coupling: str = "frequency",
        ndim: str | int = "auto",
        phase_rel: float = 0.1,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, FFT_NORMS)
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("coupling", coupling, COUPLINGS)
        check_choice("ndim", ndim, SPECTRAL_NDIMS)
        self.norm, self.reduction, self.coupling, self.ndim = norm, reduction, coupling, ndim
        if not 0.0 <= phase_rel < 1.0:
            raise ValueError(f"amp_phase: phase_rel must be in [0, 1), got {phase_rel}")
        self.phase_rel = float(phase_rel)

    def forward(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        x0_hat, x0 = check_pair(x0_hat, x0, "amp_phase", (3, 4))
        d = spectral_ndim(x0, self.ndim)
        spec_hat, spec = _spectrum(x0_hat, d, self.norm), _spectrum(x0, d, self.norm)
        amp_err = (spec_hat.abs() - spec.abs()).abs()
        z = spec * spec_hat.conj()
        g = phase_weight(spec_hat, spec, self.phase_rel, d)
        # angle's gradient is ~1 / |z|: skip bins with a negligible weight or a denormal-small z.
        ok = (g > 1e-6) & (z.real.square() + z.imag.square() > torch.finfo(g.dtype).tiny ** 0.5)
        phase_err = g * _safe_angle(z, ok).abs()
        n_last = x0.shape[-1]
        if self.coupling == "frequency":
            return _weighted_reduce(amp_err * (1.0 + phase_err), n_last, self.reduction)
        amp_norm = _weighted_reduce(amp_err, n_last, self.reduction)
        return amp_norm * (1.0 + _weighted_reduce(phase_err, n_last, self.reduction))
