"""Per-band power-spectrum error of a set of clips against an analytic power spectral density.

Issue 16, problem 4: the generated clips' power spectrum, estimated with Welch's method (Hann
window, 50% overlap, averaged over every segment of every clip), is integrated over `bands`
equal-width bands from 0 Hz to Nyquist and compared with the analytic PSD integrated over the
same bands (the analytic PSD is given on a fine grid, e.g. the `ar` corpus's 1 Hz grid in
`analytic_psd.json`). The error of a band is 10 log10(estimated power / analytic power) in dB.

Summaries: `max_db_99` is the largest |error| over the bands that carry 99% of the analytic
energy (the fewest bands, taken from the most energetic down, whose energy reaches 99%); `low_db`,
`mid_db`, `high_db` are the largest |error| in the lowest, middle and highest third of the bands
(numpy.array_split of the band indices into three).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ENERGY_SHARE = 0.99


def load_analytic_psd(path: str | Path) -> dict:
    """The analytic PSD file (`sample_rate`, `freqs_hz`, `psd`), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"analytic PSD not found: {path} (written by `audiodiff prepare ar`)")
    spec = json.loads(path.read_text())
    missing = [k for k in ("sample_rate", "freqs_hz", "psd") if k not in spec]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; an analytic PSD has sample_rate, freqs_hz, psd")
    return spec


def welch_psd(clips: np.ndarray, sample_rate: int, nperseg: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, one-sided PSD in power per Hz) of clips (N, T), averaged over clips and segments."""
    from scipy.signal import welch

    nperseg = min(nperseg, clips.shape[-1])
    freqs, psd = welch(clips, fs=sample_rate, window="hann", nperseg=nperseg, scaling="density", axis=-1)
    return freqs, psd.reshape(-1, len(freqs)).mean(axis=0)


def band_powers(freqs: np.ndarray, psd: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Power in each band [edges[i], edges[i+1]): the trapezoidal integral of the PSD over it."""
    fine = np.union1d(freqs, edges)
    values = np.interp(fine, freqs, psd)
    powers = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        keep = (fine >= lo) & (fine <= hi)
        powers.append(np.trapezoid(values[keep], fine[keep]))
    return np.array(powers)


def band_psd_error(clips: np.ndarray, spec: dict, bands: int = 8, nperseg: int = 512) -> dict:
    """Per-band dB error of the clips' Welch PSD against the analytic one, and its summaries.

    Args:
        clips: (N, T) audio at spec["sample_rate"].
        spec: the analytic PSD ({"sample_rate", "freqs_hz", "psd"}, one-sided, power per Hz).
        bands: the number of equal-width bands from 0 Hz to Nyquist.
        nperseg: Welch segment length (samples).

    Returns:
        {"max_db_99", "low_db", "mid_db", "high_db", "bands": [{"lo_hz", "hi_hz", "analytic_db",
        "estimate_db", "error_db", "energy_share", "in_99"}, ...]}
    """
    if bands < 3:
        raise ValueError(f"bands={bands} must be >= 3 (low, mid and high thirds)")
    sr = int(spec["sample_rate"])
    edges = np.linspace(0, sr / 2, bands + 1)
    truth = band_powers(np.asarray(spec["freqs_hz"], float), np.asarray(spec["psd"], float), edges)
    freqs, psd = welch_psd(np.asarray(clips, np.float64), sr, nperseg)
    estimate = band_powers(freqs, psd, edges)
    error = 10 * np.log10(np.maximum(estimate, 1e-30) / truth)
    share = truth / truth.sum()
    order = np.argsort(share)[::-1]
    n_top = int(np.searchsorted(np.cumsum(share[order]), ENERGY_SHARE) + 1)
    in_99 = np.zeros(bands, bool)
    in_99[order[:n_top]] = True
    low, mid, high = (float(np.abs(error[i]).max()) for i in np.array_split(np.arange(bands), 3))
    rows = [
        {"lo_hz": float(lo), "hi_hz": float(hi), "analytic_db": float(10 * np.log10(t)),
         "estimate_db": float(10 * np.log10(max(e, 1e-30))), "error_db": float(d), "energy_share": float(s),
         "in_99": bool(k)}
        for lo, hi, t, e, d, s, k in zip(edges[:-1], edges[1:], truth, estimate, error, share, in_99)
    ]  # fmt: skip
    max99 = float(np.abs(error[in_99]).max())
    return {"max_db_99": max99, "low_db": low, "mid_db": mid, "high_db": high, "bands": rows}


def per_bin_variance(spec: dict, length: int) -> np.ndarray:
    """E|X_k|^2 of the orthonormal rfft of `length` samples of a process with this analytic PSD.

    The one-sided PSD S(f) (power per Hz) is S(f) * fs / 2 per sample and per bin of the
    orthonormal DFT (circular approximation of a stationary process, good when the process's
    correlation is much shorter than `length`). (length // 2 + 1,)
    """
    if length < 2:
        raise ValueError(f"per_bin_variance: length={length} must be >= 2 samples")
    sr = float(spec["sample_rate"])
    freqs = np.arange(length // 2 + 1) * sr / length
    return np.interp(freqs, np.asarray(spec["freqs_hz"], float), np.asarray(spec["psd"], float)) * sr / 2


def wiener_denoiser(spec: dict, length: int):
    """The exact denoiser E[x0 | x0 + sigma n] of a stationary Gaussian process with this PSD.

    x (B, 1, length) in the sigma view (x = x0 + sigma * n, as the samplers see it), sigma (B,)
    -> x0_hat: per orthonormal-DFT bin, P / (P + sigma^2) times x. Any error of a sampler driven by
    it is the sampler's own (its noise levels, its last level, its steps), not a network's.
    """
    import torch

    var = torch.as_tensor(per_bin_variance(spec, length), dtype=torch.float64)

    def denoise(x, sigma, cond=None):
        spectrum = torch.fft.rfft(x.double(), norm="ortho")
        s2 = sigma.double().reshape(-1, *([1] * (x.ndim - 1))) ** 2
        return torch.fft.irfft(spectrum * var / (var + s2), n=x.shape[-1], norm="ortho").to(x.dtype)

    return denoise
