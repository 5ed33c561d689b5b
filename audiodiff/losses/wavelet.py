"""Multi-level discrete wavelet loss, 1-D for (B, C, T) audio and 2-D for (B, C, H, W).

Paper (arXiv 2603.02447, Section 4): `sum_l sum_b gamma_l * || W_lb x0 - W_lb x0_hat ||_1`
over levels l and sub-bands b. The DWT is linear (the boundary extension modes included),
so the coefficients of `x0_hat - x0` *are* the coefficient differences: we transform the
difference once instead of transforming both signals. Transforms come from ptwt, filters
from PyWavelets, so any discrete PyWavelets wavelet name works (haar, bior1.3, db4, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import ptwt
import pywt
from torch import Tensor, nn

from audiodiff.losses._common import REDUCTIONS, SPECTRAL_NDIMS, check_choice, check_pair, spectral_ndim

MODES = ("symmetric", "reflect", "zero", "constant", "periodic")


def wavedec(x: Tensor, wavelet: str, level: int, mode: str, ndim: int) -> list[Tensor | tuple[Tensor, ...]]:
    """pywt-ordered coefficients [cA_L, details_L, ..., details_1] over the trailing `ndim` axes.

    Details are one tensor per level in 1-D and a (horizontal, vertical, diagonal) tuple in 2-D.
    """
    if ndim == 1:
        return ptwt.wavedec(x, wavelet, mode=mode, level=level, axis=-1)
    coeffs = ptwt.wavedec2(x, wavelet, mode=mode, level=level, axes=(-2, -1))
    return [coeffs[0], *(tuple(d) for d in coeffs[1:])]


def max_level(shape: Sequence[int], wavelet: str) -> int:
    """Deepest useful decomposition level for the given spatial shape (pywt's rule, at least 1)."""
    return max(1, pywt.dwt_max_level(min(shape), pywt.Wavelet(wavelet).dec_len))


class WaveletLoss(nn.Module):
    """Weighted L1 distance between multi-level DWT coefficients.

    Args:
        wavelet: any discrete PyWavelets name ("haar", "bior1.3", "db4", ...).
        level: number of decomposition levels; None uses the deepest useful level.
        mode: boundary extension ("symmetric" = pywt's default, "reflect", "zero", "constant", "periodic").
        gamma: weight of the detail bands, one float for all levels or a list with one
            weight per level, finest level first (gamma[0] = level 1).
        approx_weight: weight of the coarsest approximation band (0 leaves it out).
        band_weights: 2-D only, weights of the (horizontal, vertical, diagonal) detail bands.
        reduction: per band, "sum" (the L1 norm, default) or "mean" over its coefficients.
        ndim: "auto" (1-D for 3-D input, 2-D for 4-D input), 1 or 2.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    def __init__(
        self,
        wavelet: str = "haar",
        level: int | None = None,
        mode: str = "symmetric",
        gamma: float | Sequence[float] = 1.0,
        approx_weight: float = 1.0,
        band_weights: Sequence[float] = (1.0, 1.0, 1.0),
        reduction: str = "sum",
        ndim: str | int = "auto",
    ) -> None:
        super().__init__()
        if wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(
                f"wavelet: {wavelet!r} is not a discrete PyWavelets wavelet; see pywt.wavelist(kind='discrete')"
            )
        check_choice("mode", mode, MODES)
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("ndim", ndim, SPECTRAL_NDIMS)
        if level is not None and level < 1:
            raise ValueError(f"wavelet: level must be >= 1 or None, got {level}")
        if not isinstance(gamma, (int, float)) and level is not None and len(gamma) != level:
            raise ValueError(f"wavelet: gamma has {len(gamma)} weights but level={level}")
        if len(band_weights) != 3:
            raise ValueError(f"wavelet: band_weights needs 3 weights (h, v, d), got {list(band_weights)}")
        self.wavelet, self.level, self.mode, self.reduction, self.ndim = wavelet, level, mode, reduction, ndim
        self.gamma = float(gamma) if isinstance(gamma, (int, float)) else [float(g) for g in gamma]
        self.approx_weight = float(approx_weight)
        self.band_weights = [float(w) for w in band_weights]

    def _band(self, c: Tensor) -> Tensor:
        """(B, ...) coefficients -> (B,) L1 norm or mean absolute value."""
        flat = c.abs().flatten(1)
        return flat.sum(1) if self.reduction == "sum" else flat.mean(1)

    def forward(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        x0_hat, x0 = check_pair(x0_hat, x0, "wavelet", (3, 4))
        d = spectral_ndim(x0, self.ndim)
        level = self.level or max_level(x0.shape[-d:], self.wavelet)
        gammas = [self.gamma] * level if isinstance(self.gamma, float) else self.gamma
        if len(gammas) != level:
            raise ValueError(f"wavelet: gamma has {len(gammas)} weights but the input gives {level} levels")
        coeffs = wavedec(x0_hat - x0, self.wavelet, level, self.mode, d)
        loss = self.approx_weight * self._band(coeffs[0]) if self.approx_weight else x0.new_zeros(x0.shape[0])
        # coeffs[1] is the coarsest detail level (level L), coeffs[-1] the finest (level 1).
        for gamma, details in zip(reversed(gammas), coeffs[1:]):
            if d == 1:
                loss = loss + gamma * self._band(details)
            else:
                for w, band in zip(self.band_weights, details):
                    loss = loss + gamma * w * self._band(band)
        return loss
