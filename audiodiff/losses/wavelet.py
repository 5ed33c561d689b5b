"""Multi-level discrete wavelet loss, 1-D for (B, C, T) audio and 2-D for (B, C, H, W).

Paper (arXiv 2603.02447, Section 4): `sum_l sum_b gamma_l * || W_lb x0 - W_lb x0_hat ||_1`
over levels l and sub-bands b. The DWT is linear (the boundary extension modes included),
so the coefficients of `x0_hat - x0` *are* the coefficient differences: we transform the
difference once instead of transforming both signals. The transform is `audiodiff.losses.dwt`
(strided convolutions equal to PyWavelets to 1e-15; filters from PyWavelets, so any discrete
wavelet name works: haar, bior1.3, db4, ...), kept as a buffer on the loss's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import pywt
import torch
from torch import Tensor, nn

from audiodiff.losses._common import SPECTRAL_NDIMS, check_choice, check_pair, spectral_ndim
from audiodiff.losses.dwt import MODES, analysis_filters, wavedec

WAVELET_REDUCTIONS = ("sum", "mean", "mean_all")


def max_level(shape: Sequence[int], filter_len: int) -> int:
    """Deepest useful level for a spatial shape: pywt.dwt_max_level's rule, at least 1.

    floor(log2(n / (filter_len - 1))) for the shortest side n, in integer arithmetic (no pywt
    call, so the loss compiles with torch.compile(fullgraph=True)).
    """
    n, span = min(shape), max(1, filter_len - 1)
    level = 0
    while n >= span * 2 ** (level + 1):
        level += 1
    return max(1, level)


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
        reduction: "sum" (each band's L1 norm, the paper's, default), "mean" (each band's mean
            absolute value, then summed over bands) or "mean_all" (the "sum" value divided by
            the total number of coefficients of all bands: with an orthonormal wavelet such as
            haar, independent of the clip length for broadband signals; the scale-free form).
        ndim: "auto" (1-D for 3-D input, 2-D for 4-D input), 1 or 2.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> (B,)
    """

    SCALE_FREE = {"reduction": "mean_all"}  # the options of build_loss(..., normalize="scale_free")

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
        check_choice("reduction", reduction, WAVELET_REDUCTIONS)
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
        self.register_buffer("filters", analysis_filters(wavelet), persistent=False)

    def _band(self, c: Tensor) -> Tensor:
        """(B, ...) coefficients -> (B,) L1 norm or mean absolute value, one kernel."""
        norm = torch.linalg.vector_norm(c.flatten(1), ord=1, dim=1)
        return norm / c[0].numel() if self.reduction == "mean" else norm

    def forward(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        x0_hat, x0 = check_pair(x0_hat, x0, "wavelet", (3, 4))
        d = spectral_ndim(x0, self.ndim)
        level = self.level or max_level(x0.shape[-d:], self.filters.shape[-1])
        gammas = [self.gamma] * level if isinstance(self.gamma, float) else self.gamma
        if len(gammas) != level:
            raise ValueError(f"wavelet: gamma has {len(gammas)} weights but the input gives {level} levels")
        coeffs = wavedec(x0_hat - x0, self.filters.to(x0.dtype), level, self.mode, d)
        loss = self.approx_weight * self._band(coeffs[0]) if self.approx_weight else x0.new_zeros(x0.shape[0])
        # coeffs[1] is the coarsest detail level (level L), coeffs[-1] the finest (level 1).
        for gamma, details in zip(reversed(gammas), coeffs[1:]):
            if d == 1:
                loss = loss + gamma * self._band(details)
            else:
                for w, band in zip(self.band_weights, details):
                    loss = loss + gamma * w * self._band(band)
        if self.reduction == "mean_all":
            loss = loss / sum(band[0].numel() for band in _bands(coeffs))
        return loss


def _bands(coeffs: list[Tensor | tuple[Tensor, ...]]) -> list[Tensor]:
    """The `wavedec` coefficient list flattened to one tensor per band."""
    return [band for item in coeffs for band in (item if isinstance(item, tuple) else (item,))]
