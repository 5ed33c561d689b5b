"""Audio I/O: soundfile for reading/writing (plus a byte-stable float WAV writer), soxr for resampling."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor


def load_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Read any soundfile-readable file as mono float32 at `sample_rate`. -> (T,)

    Multi-channel audio is averaged; integer formats are scaled to [-1, 1].
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"cannot read audio {path}: {err}") from err
    mono = data.mean(axis=1)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(mono))


def native_rate(path: str | Path) -> int:
    """The sample rate a file is stored at, from its header (nothing is decoded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        return int(sf.info(str(path)).samplerate)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"cannot read audio {path}: {err}") from err


def save_audio(path: str | Path, audio: Tensor, sample_rate: int) -> None:
    """Write (T,) or (1, T) audio as 16-bit PCM WAV, clipped to [-1, 1]."""
    data = audio.detach().float().cpu().reshape(-1).clamp(-1, 1).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype="PCM_16")


def save_float_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono (T,) audio as a 32-bit float WAV, unclipped, the same bytes for the same samples.

    libsndfile (soundfile) adds a PEAK chunk to float WAVs that holds the time of writing, so
    a corpus written twice from one seed differed byte for byte whenever the two writes fell in
    different seconds. This writes the plain RIFF/WAVE layout for IEEE float (format 3, with
    the `fact` chunk non-PCM WAVs carry) and nothing else.
    """
    data = np.ascontiguousarray(np.asarray(audio, dtype="<f4").reshape(-1))
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: audio has NaN or inf samples; a float WAV would store them as they are")
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, 4 * sample_rate, 4, 32)
    fact = struct.pack("<I", data.size)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", len(fact)) + fact
    body += b"data" + struct.pack("<I", data.nbytes) + data.tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
