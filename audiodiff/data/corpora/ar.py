"""`ar`: a stationary Gaussian autoregressive process whose power spectrum is known exactly.

Issue 16, problem 4: a waveform problem for DiffWave whose spectrum is known in closed form, so
generated audio can be checked band by band against ground truth. The process is

    x[n] = sum_k a_k x[n - k] + sigma_e e[n],   e[n] ~ N(0, 1) i.i.d.,

an AR(3) with one resonance (a complex pole pair at `resonance_hz`, radius `radius`) and a
low-pass tilt (a real pole at `tilt`); sigma_e is set so that x has standard deviation `std`.
Its one-sided power spectral density (power per Hz, scipy.signal.welch's scaling="density") is

    P(f) = 2 sigma_e^2 / (fs |A(exp(i 2 pi f / fs))|^2),   A(z) = 1 - sum_k a_k z^-k.

A Gaussian process with a linear optimal denoiser: a small DiffWave can learn it in minutes.
Clips are float32 WAVs (no quantization), drawn after a burn-in of 2048 samples (the slowest pole
decays below 1e-40 by then), so each clip is a stationary sample. `analytic_psd.json` (the AR
coefficients, sigma_e, and P(f) on a 1 Hz grid) is written beside the corpus and into every
data dir, where `audiodiff evaluate --metrics band_psd` finds it from `--ref`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audiodiff.audio.io import save_float_wav
from audiodiff.data.corpora.common import finish_audio_corpus

PSD_FILE = "analytic_psd.json"
BURN_IN = 2048


def ar_coefficients(sample_rate: int, resonance_hz: float, radius: float, tilt: float) -> np.ndarray:
    """[a_1, ..., a_p] of x[n] = sum_k a_k x[n-k] + e[n]: poles radius*exp(+-i w0) and `tilt` (0: none)."""
    if not 0 < resonance_hz < sample_rate / 2:
        raise ValueError(f"ar: resonance_hz={resonance_hz} must lie in (0, {sample_rate / 2}) (Nyquist)")
    if not 0 <= radius < 1 or not -1 < tilt < 1:
        raise ValueError(f"ar: radius={radius} must be in [0, 1) and tilt={tilt} in (-1, 1) (a stable process)")
    w0 = 2 * np.pi * resonance_hz / sample_rate
    poles = [radius * np.exp(1j * w0), radius * np.exp(-1j * w0)] + ([tilt] if tilt else [])
    return -np.real(np.poly(poles))[1:]  # A(z) = prod (1 - p z^-1) = 1 - sum a_k z^-k


def ar_psd(ar: np.ndarray, noise_std: float, freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    """One-sided PSD (power per Hz) of the AR process at `freqs` (Hz)."""
    k = np.arange(1, len(ar) + 1)
    a = 1 - np.exp(-2j * np.pi * np.outer(freqs / sample_rate, k)) @ ar
    return 2 * noise_std**2 / (sample_rate * np.abs(a) ** 2)


def ar_noise_std(ar: np.ndarray, std: float) -> float:
    """sigma_e giving the process standard deviation `std`: var(x) = sigma_e^2 * sum_n h[n]^2."""
    from scipy.signal import lfilter

    impulse = np.zeros(1 << 14)
    impulse[0] = 1.0
    h = lfilter([1.0], np.concatenate([[1.0], -ar]), impulse)
    return float(std / np.sqrt(np.sum(h**2)))


def ar_clips(ar: np.ndarray, noise_std: float, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(n, length) stationary clips of the process, each after its own burn-in."""
    from scipy.signal import lfilter

    e = noise_std * rng.standard_normal((n, BURN_IN + length))
    return lfilter([1.0], np.concatenate([[1.0], -ar]), e, axis=1)[:, BURN_IN:]


def prepare_ar(
    out: str | Path,
    n: int = 3000,
    length: int = 2048,
    sample_rate: int = 8000,
    resonance_hz: float = 1000.0,
    radius: float = 0.95,
    tilt: float = 0.7,
    std: float = 0.2,
    seed: int = 0,
) -> dict:
    """`n` clips of `length` samples at `sample_rate` of the AR process, split 80/10/10 (train/valid/test)."""
    if n < 10 or length < 16:
        raise ValueError(f"ar: n={n} must be >= 10 and length={length} >= 16")
    if not 0 < std <= 0.25:
        raise ValueError(f"ar: std={std} must be in (0, 0.25] (generated WAVs are clipped to [-1, 1])")
    out = Path(out)
    ar = ar_coefficients(sample_rate, resonance_hz, radius, tilt)
    noise_std = ar_noise_std(ar, std)
    clips = ar_clips(ar, noise_std, n, length, np.random.default_rng(seed))
    freqs = np.arange(sample_rate // 2 + 1, dtype=np.float64)  # 1 Hz grid, 0..Nyquist
    spec = {
        "process": "x[n] = sum_k ar[k-1] x[n-k] + noise_std e[n], e ~ N(0, 1)",
        "psd_definition": "one-sided, power per Hz: 2 noise_std^2 / (fs |1 - sum_k ar[k-1] exp(-i 2 pi f k / fs)|^2)",
        "sample_rate": sample_rate,
        "ar": ar.tolist(),
        "noise_std": noise_std,
        "std": std,
        "options": {"resonance_hz": resonance_hz, "radius": radius, "tilt": tilt, "length": length, "seed": seed},
        "freqs_hz": freqs.tolist(),
        "psd": ar_psd(ar, noise_std, freqs, sample_rate).tolist(),
    }
    cut = [int(0.8 * n), int(0.9 * n)]
    items = []
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for i, clip in enumerate(clips):
        path = out / "wav" / f"ar_{i:05d}.wav"
        save_float_wav(path, clip, sample_rate)
        split = "train" if i < cut[0] else "valid" if i < cut[1] else "test"
        items.append({"utt": path.stem, "spk": "ar", "path": str(path.resolve()), "split": split})
    summary = finish_audio_corpus(out, "ar", items)
    text = json.dumps(spec) + "\n"
    for d in (out, *(out / "data" / part for part in ("train", "valid", "test"))):
        (d / PSD_FILE).write_text(text)
    return summary
