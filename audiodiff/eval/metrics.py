"""Set and paired audio metrics: NDB/K, mean spectrum, multi-resolution STFT distance, log-spectral distance, PESQ."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from audiodiff.audio.io import load_audio
from audiodiff.losses import MultiResolutionSTFTLoss
from audiodiff.losses.stft import MR_PRESETS


def ndb(real: np.ndarray, generated: np.ndarray, bins: int = 50, alpha: float = 0.05, seed: int = 0) -> dict:
    """Number of statistically different bins (Richardson & Weiss 2018; DiffWave Table 2).

    k-means with `bins` clusters on the real embeddings; every generated embedding goes to its
    nearest centroid; a two-proportion z-test per bin at level `alpha`.

    Returns:
        {"ndb": count, "ndb_k": count / bins, "bins": bins}
    """
    from sklearn.cluster import KMeans

    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    bins = int(min(bins, len(real)))
    km = KMeans(n_clusters=bins, n_init=4, random_state=seed).fit(real)
    p_real = np.bincount(km.labels_, minlength=bins) / len(real)
    p_gen = np.bincount(km.predict(generated), minlength=bins) / len(generated)
    pooled = (p_real * len(real) + p_gen * len(generated)) / (len(real) + len(generated))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(real) + 1 / len(generated)))
    z = np.divide(p_real - p_gen, se, out=np.zeros_like(se), where=se > 0)
    different = int((2 * norm.sf(np.abs(z)) < alpha).sum())
    return {"ndb": different, "ndb_k": different / bins, "bins": bins}


def mean_log_spectrum(paths: list[str], sample_rate: int, n_fft: int = 1024) -> np.ndarray:
    """Average power spectrum of a set of files, in dB. -> (n_fft // 2 + 1,) (`mean_log_spectrum_padded`)"""
    return mean_log_spectrum_padded(paths, sample_rate, n_fft)[0]


def mean_log_spectrum_padded(paths: list[str], sample_rate: int, n_fft: int = 1024) -> tuple[np.ndarray, int]:
    """Average power spectrum of a set of files, in dB (n_fft // 2 + 1,), and how many clips were shorter
    than the centred STFT takes (n_fft // 2 + 1 samples: 128 ms at 4 kHz is 512): each of those is
    zero-padded at the end to that length, the least padding that scores it (a 512-sample clip gains one
    zero sample), where torch.stft would stop with a padding error. Longer clips are scored as they are."""
    window = torch.hann_window(n_fft)
    total, frames, padded = torch.zeros(n_fft // 2 + 1, dtype=torch.float64), 0, 0
    minimum = stft_min_samples(n_fft)
    for p in paths:
        wav = load_audio(p, sample_rate)
        if wav.shape[-1] < minimum:
            wav, padded = torch.nn.functional.pad(wav, (0, minimum - wav.shape[-1])), padded + 1
        spec = torch.stft(wav, n_fft, n_fft // 4, window=window, return_complex=True).abs().square()
        total += spec.sum(1).double()
        frames += spec.shape[1]
    return (10 * torch.log10(total / max(frames, 1) + 1e-12)).numpy(), padded


def stft_min_samples(n_fft: int) -> int:
    """The shortest clip a centred, reflect-padded torch.stft of `n_fft` points takes: n_fft // 2 + 1."""
    return n_fft // 2 + 1


# The shortest pair `mrstft_distance` takes as it is: its longest resolution's (2048 points) minimum.
MRSTFT_MIN_SAMPLES = stft_min_samples(max(n_fft for n_fft, _, _ in MR_PRESETS["auraloss"]))


def aligned_pair(
    reference: torch.Tensor, generated: torch.Tensor, min_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two clips (T,) cut to the shorter one, then, where that is under `min_samples`, both zero-padded
    at the end to `min_samples`: the same padding on both sides keeps the pair's comparison (identical
    clips still differ by nothing, a gain of g is still 20 log10 g dB in every bin), where torch.stft
    would stop with a padding error. (A pair of a few samples leaves its last frame next to nothing of
    either clip: that frame counts as no difference.)"""
    n = min(reference.shape[-1], generated.shape[-1])
    pad = max(min_samples - n, 0)
    return tuple(torch.nn.functional.pad(x[..., :n], (0, pad)) for x in (reference, generated))


def mrstft_distance(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """Multi-resolution STFT loss (auraloss resolutions) between two aligned clips (T,), cut to the
    shorter one; a pair under MRSTFT_MIN_SAMPLES (1025) is zero-padded to it (`aligned_pair`)."""
    reference, generated = aligned_pair(reference, generated, MRSTFT_MIN_SAMPLES)
    loss = MultiResolutionSTFTLoss("auraloss")
    return float(loss(generated[None, None].float(), reference[None, None].float()))


def _db_difference(reference: torch.Tensor, generated: torch.Tensor, n_fft: int) -> torch.Tensor:
    """10 log10 P_gen - 10 log10 P_ref per STFT bin and frame (bins, frames) of two aligned clips
    (Hann, hop n_fft / 4, cut to the shorter one; a pair under n_fft // 2 + 1 samples, too short for
    the centred STFT, is zero-padded to that length, both clips alike: `aligned_pair`)."""
    reference, generated = aligned_pair(reference, generated, stft_min_samples(n_fft))
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def power_db(x):
        spec = torch.stft(x.double(), n_fft, n_fft // 4, window=window, return_complex=True)
        return 10 * torch.log10(spec.abs().square() + 1e-10)

    return power_db(generated) - power_db(reference)


def log_spectral_distance(reference: torch.Tensor, generated: torch.Tensor, n_fft: int = 1024) -> float:
    """LSD in dB: per frame sqrt(mean over bins of (10 log10 P_ref - 10 log10 P_gen)^2), averaged over frames."""
    return float(_db_difference(reference, generated, n_fft).square().mean(0).sqrt().mean())


# Band edges (Hz) of `band_log_spectral_distance`: low 0-1 kHz, mid 1-4 kHz, high 4 kHz to Nyquist.
LSD_BAND_EDGES_HZ = (0, 1000, 4000)


def band_log_spectral_distance(
    reference: torch.Tensor,
    generated: torch.Tensor,
    sample_rate: int,
    edges_hz: tuple[float, ...] = LSD_BAND_EDGES_HZ,
    n_fft: int = 1024,
) -> list[dict]:
    """Per band of two aligned clips: the LSD over the band's bins alone and the signed mean level error.

    Band i holds the STFT bins with edges_hz[i] <= f < edges_hz[i + 1], the last one up to Nyquist
    (included); edges at or above Nyquist are dropped (8 kHz audio: 0-1 and 1-4 kHz). Returns one dict
    per band: band_hz [lo, hi], lsd_db (per frame sqrt(mean over the band's bins of the squared dB
    difference), averaged over frames: `log_spectral_distance` restricted to the band) and level_err_db
    (the mean over frames and the band's bins of 10 log10 P_gen - 10 log10 P_ref: + excess, - deficit)."""
    diff = _db_difference(reference, generated, n_fft)
    freqs = torch.arange(diff.shape[0], dtype=torch.float64) * sample_rate / n_fft
    nyquist = sample_rate / 2
    edges = [float(e) for e in edges_hz if e < nyquist] + [nyquist]
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        d = diff[(freqs >= lo) & ((freqs < hi) if hi < nyquist else (freqs <= hi))]
        bands.append(
            {"band_hz": [lo, hi], "lsd_db": float(d.square().mean(0).sqrt().mean()), "level_err_db": float(d.mean())}
        )
    return bands


PESQ_MIN_SAMPLES = 4000  # P.862's shortest input, 0.25 s at 16 kHz


def pesq_wb(reference: torch.Tensor, generated: torch.Tensor, sample_rate: int = 16000) -> float | None:
    """Wide-band PESQ (ITU-T P.862.2, the `pesq` package) of aligned 16 kHz clips: -0.5 .. 4.64.

    Returns None where PESQ finds no speech in the reference (silence, pure tones at low level).

    Raises:
        ValueError: another rate than 16 kHz, or clips shorter than PESQ's 0.25 s (4000 samples).
    """
    try:
        from pesq import NoUtterancesError, pesq
    except ImportError:
        raise ImportError(
            "metric 'pesq' needs the pesq package: pip install 'audiodiff[eval]' (pesq builds with a C compiler)"
        ) from None
    if sample_rate != 16000:
        raise ValueError(f"wide-band PESQ needs 16 kHz audio, got {sample_rate} Hz")
    n = min(reference.shape[-1], generated.shape[-1])
    if n < PESQ_MIN_SAMPLES:  # the pesq package would raise its own BufferTooShortError, a traceback at the CLI
        raise ValueError(f"wide-band PESQ needs clips of at least 0.25 s ({PESQ_MIN_SAMPLES} samples), got {n}")
    try:
        return float(pesq(16000, reference[:n].double().numpy(), generated[:n].double().numpy(), "wb"))
    except NoUtterancesError:
        return None
