"""Multi-level discrete wavelet transform as strided convolutions, equal to PyWavelets.

PyWavelets' single-level DWT of a length-N signal with filters of length L extends the signal
by L - 1 samples on each side (by the boundary mode), convolves, and keeps every second
output starting at index 1, giving floor((N + L - 1) / 2) coefficients. Here the extension is
one gather (`index_select`) with precomputed indices, and the low- and high-pass filters run
as one `conv1d` with two output channels and stride 2. Filters are tensors the caller keeps
on its device, so a transform is a handful of kernels per level with no host work: much
cheaper on a GPU than ptwt, which rebuilds its filters on every call (see bench/losses.py).

Shapes: 1-D over the last axis of (..., N); 2-D over the last two axes of (..., H, W).
"""

from __future__ import annotations

import pywt
import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("symmetric", "reflect", "zero", "constant", "periodic")


def analysis_filters(wavelet: str, dtype: torch.dtype = torch.float64) -> Tensor:
    """Decomposition filters as a conv1d weight (2, 1, L): [low-pass, high-pass], flipped for correlation."""
    w = pywt.Wavelet(wavelet)
    return torch.tensor([w.dec_lo[::-1], w.dec_hi[::-1]], dtype=dtype)[:, None, :]


def _index(n: int, start: int, stop: int, mode: str, device: torch.device) -> Tensor:
    """Indices into a length-n signal for positions start .. stop-1 of its extension (pywt's modes)."""
    i = torch.arange(start, stop, device=device)
    if mode == "symmetric":  # half-sample symmetric: x[1] x[0] | x[0] x[1] ... x[n-1] | x[n-1] x[n-2]
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if mode == "reflect":  # whole-sample symmetric: x[2] x[1] | x[0] ... x[n-1] | x[n-2]
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    if mode == "periodic":
        return i.remainder(n)
    if mode == "constant":  # repeat the edge samples
        return i.clamp(0, n - 1)
    raise ValueError(f"wavelet mode {mode!r} is not allowed; choose one of {list(MODES)}")


_INDEX_CACHE: dict[tuple, Tensor] = {}


def extension_index(n: int, start: int, stop: int, mode: str, device: torch.device) -> Tensor:
    """`_index`, cached per shape/mode/device in eager mode (recomputed, and constant-folded, when compiling)."""
    if torch.compiler.is_compiling():
        return _index(n, start, stop, mode, device)
    key = (n, start, stop, mode, str(device))
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = _index(n, start, stop, mode, device)
    return _INDEX_CACHE[key]


def _extend(x: Tensor, dim: int, taps: int, mode: str) -> Tensor:
    """The stretch of pywt's extension of axis `dim` that a stride-2 valid correlation reads.

    pywt extends by taps - 1 samples per side and keeps outputs 1, 3, 5, ...; those read positions
    -(taps - 2) .. -(taps - 2) + 2 (n_out - 1) + taps - 1 of the signal. A plain slice serves when
    they all lie inside it (haar on even lengths); else one gather, or zero padding.
    """
    n = x.shape[dim]
    n_out = (n + taps - 1) // 2
    start = 2 - taps
    stop = start + 2 * (n_out - 1) + taps
    if start >= 0 and stop <= n:
        return x.narrow(dim, start, stop - start)
    if mode == "zero":
        left, right = max(0, -start), max(0, stop - n)
        inner = x.narrow(dim, max(0, start), min(n, stop) - max(0, start))
        return F.pad(inner, [0, 0] * (x.ndim - 1 - dim % x.ndim) + [left, right])
    return x.index_select(dim, extension_index(n, start, stop, mode, x.device))


def dwt_last(x: Tensor, filters: Tensor, mode: str) -> Tensor:
    """One DWT level over the last axis. (..., N) -> (..., 2, floor((N + L - 1) / 2)): [approx, detail]."""
    taps = filters.shape[-1]
    flat = x.reshape(-1, 1, x.shape[-1])
    out = F.conv1d(_extend(flat, -1, taps, mode), filters, stride=2)
    return out.reshape(*x.shape[:-1], 2, out.shape[-1])


def dwt2_last(x: Tensor, filters: Tensor, mode: str) -> Tensor:
    """One separable 2-D DWT level. (..., H, W) -> (..., 4, h, w): [approx, cH, cV, cD] (pywt's order).

    A (1, L) convolution with stride (1, 2) filters the rows into [lo_w, hi_w]; a grouped (L, 1)
    convolution with stride (2, 1) filters the columns of each, giving
    [lo_w lo_h, lo_w hi_h, hi_w lo_h, hi_w hi_h] = [cA, cH, cV, cD].
    """
    taps = filters.shape[-1]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    rows = F.conv2d(_extend(flat, -1, taps, mode), filters[:, :, None, :], stride=(1, 2))
    out = F.conv2d(_extend(rows, -2, taps, mode), filters.repeat(2, 1, 1)[:, :, :, None], stride=(2, 1), groups=2)
    return out.reshape(*x.shape[:-2], 4, *out.shape[-2:])


def wavedec(x: Tensor, filters: Tensor, level: int, mode: str, ndim: int) -> list[Tensor | tuple[Tensor, ...]]:
    """pywt-ordered coefficients [cA_level, details_level, ..., details_1].

    Details are one tensor per level in 1-D and a (horizontal, vertical, diagonal) tuple in 2-D,
    as `pywt.wavedec` / `pywt.wavedec2` return them.
    """
    filters = filters.to(x.dtype)
    details = []
    approx = x
    for _ in range(level):
        if ndim == 1:
            approx, detail = dwt_last(approx, filters, mode).unbind(-2)
            details.append(detail)
        else:
            approx, c_h, c_v, c_d = dwt2_last(approx, filters, mode).unbind(-3)
            details.append((c_h, c_v, c_d))
    return [approx, *reversed(details)]
