"""Mel filterbanks from librosa, as torch tensors."""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import Tensor


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Mel filterbank matrix of shape (n_mels, n_fft // 2 + 1), float32 unless `dtype` says otherwise.

    Args:
        sample_rate: sampling rate in Hz.
        n_fft: FFT size the filters apply to.
        n_mels: number of mel bands.
        fmin, fmax: band edges in Hz (fmax defaults to sample_rate / 2).
        htk: HTK mel scale (True) or Slaney's (False, librosa's default).
        norm: "slaney" area normalisation (librosa's default) or None (peak 1, torchaudio's default).
    """
    if fmax is not None and not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"mel filterbank: need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    fb = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float64
    )
    return torch.from_numpy(fb).to(dtype)
