"""Log-mel features (torch.stft + librosa filters) and Griffin-Lim inversion.

`LogMel` maps audio (B, T) or (B, C, T) to (B, n_mels, frames) (channels are averaged first)
and back to linear mel magnitudes with `to_linear`, so mel-spectrogram diffusion models can be
turned into audio by Griffin-Lim (dependency-free fallback) or a DiffWave vocoder.

Presets:
- "diffwave": the settings of lmnt-com/diffwave's preprocessing for LJSpeech: 22.05 kHz,
  n_fft 1024, hop 256, win 1024, 80 HTK mel bands 20 Hz..11025 Hz without filter normalisation,
  magnitude STFT normalised by the window's L2 norm, then 20 log10(max(m, 1e-5)) - 20 mapped from
  [-100, 0] dB to [0, 1] and clipped.
- "hifigan": HiFi-GAN/most TTS vocoders at 22.05 kHz: 80 Slaney mel bands 0..8000 Hz, natural
  log of max(m, 1e-5).
- "speech16k": 16 kHz speech: n_fft 512, hop 128, win 512, 80 Slaney bands 20..7600 Hz, natural log.
- "speech8k": telephone-band speech small enough for CPU mel diffusion: 8 kHz, n_fft 512, hop 256,
  win 512, 32 Slaney bands 20..4000 Hz, natural log (a 1 s clip is 32 x 32).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from audiodiff.audio.mel import mel_filterbank

LOG_SCALES = ("ln", "db_unit")


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings. See the module docstring for the presets."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    power: float = 1.0
    htk: bool = False
    filter_norm: str | None = "slaney"
    normalize_window: bool = False
    log_floor: float = 1e-5
    log_scale: str = "ln"  # "ln": natural log; "db_unit": DiffWave's dB mapped to [0, 1]


MEL_PRESETS = {
    "diffwave": MelConfig(22050, 1024, 256, 1024, 80, 20.0, 11025.0, 1.0, True, None, True, 1e-5, "db_unit"),
    "hifigan": MelConfig(22050, 1024, 256, 1024, 80, 0.0, 8000.0, 1.0, False, "slaney", False, 1e-5, "ln"),
    "speech16k": MelConfig(16000, 512, 128, 512, 80, 20.0, 7600.0, 1.0, False, "slaney", False, 1e-5, "ln"),
    "speech8k": MelConfig(8000, 512, 256, 512, 32, 20.0, 4000.0, 1.0, False, "slaney", False, 1e-5, "ln"),
}


def mel_config(preset: str | None = None, **overrides) -> MelConfig:
    """A preset (or the defaults) with fields overridden; unknown fields are an error."""
    if preset is not None and preset not in MEL_PRESETS:
        raise ValueError(f"unknown mel preset {preset!r}; choose one of {sorted(MEL_PRESETS)}")
    base = asdict(MEL_PRESETS[preset]) if preset else asdict(MelConfig())
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ValueError(f"mel config: unknown key(s) {unknown}; allowed: {sorted(base)}")
    cfg = MelConfig(**(base | overrides))
    if cfg.log_scale not in LOG_SCALES:
        raise ValueError(f"mel config: log_scale={cfg.log_scale!r} is not allowed; choose one of {list(LOG_SCALES)}")
    if not 0 < cfg.win_length <= cfg.n_fft or cfg.hop < 1:
        raise ValueError(f"mel config: need 0 < win_length <= n_fft and hop >= 1, got {cfg}")
    return cfg


class LogMel(nn.Module):
    """Audio -> log-mel spectrogram. (B, T) or (B, C, T) -> (B, n_mels, frames), frames = T // hop + 1."""

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MelConfig()
        # float64 buffers, cast to the input's dtype on use: float64 input gets exact filters.
        self.register_buffer("window", torch.hann_window(cfg.win_length, dtype=torch.float64), persistent=False)
        fb = mel_filterbank(
            cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.htk, cfg.filter_norm, torch.float64
        )
        self.register_buffer("fb", fb, persistent=False)
        self.register_buffer("fb_pinv", torch.linalg.pinv(fb), persistent=False)

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Complex STFT (B, n_fft // 2 + 1, frames), window-normalised if configured."""
        if audio.ndim == 3:
            audio = audio.mean(1)
        if audio.ndim != 2:
            raise ValueError(f"LogMel expects audio (B, T) or (B, C, T), got {tuple(audio.shape)}")
        cfg = self.config
        if audio.dtype in (torch.float16, torch.bfloat16):
            audio = audio.float()
        window = self.window.to(audio.dtype)
        spec = torch.stft(audio, cfg.n_fft, cfg.hop, cfg.win_length, window, return_complex=True)
        if cfg.normalize_window:
            spec = spec / window.pow(2).sum().sqrt()
        return spec

    def mel_magnitude(self, audio: Tensor) -> Tensor:
        """Linear mel magnitudes (power 1) or powers (power 2). -> (B, n_mels, frames)"""
        mag = self.spectrogram(audio).abs().pow(self.config.power)
        return torch.matmul(self.fb.to(mag.dtype), mag)

    def forward(self, audio: Tensor) -> Tensor:
        return self.compress(self.mel_magnitude(audio))

    def compress(self, mel: Tensor) -> Tensor:
        """Linear mel -> log features."""
        cfg = self.config
        if cfg.log_scale == "ln":
            return mel.clamp_min(cfg.log_floor).log()
        db = 20 * torch.log10(mel.clamp_min(cfg.log_floor)) - 20
        return ((db + 100) / 100).clamp(0.0, 1.0)

    def to_linear(self, features: Tensor) -> Tensor:
        """Inverse of `compress` (up to the floor/clipping): log features -> linear mel."""
        return log_to_linear(features, self.config)

    def mel_to_magnitude(self, mel: Tensor) -> Tensor:
        """Linear mel -> linear STFT magnitude (B, n_fft // 2 + 1, frames) by the pseudo-inverse, clipped at 0."""
        mag = torch.matmul(self.fb_pinv.to(mel.dtype), mel).clamp_min(0)
        return mag.pow(1 / self.config.power) if self.config.power != 1 else mag


def log_to_linear(features: Tensor, config: MelConfig) -> Tensor:
    """Log-mel features of `config` -> linear mel magnitudes (power 1) or powers (power 2), any shape."""
    if config.log_scale == "ln":
        return features.exp()
    return 10 ** ((features * 100 - 100 + 20) / 20)


def griffin_lim(
    logmel: LogMel,
    features: Tensor,
    iters: int = 64,
    momentum: float = 0.99,
    length: int | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from log-mel features. (B, n_mels, frames) -> (B, T).

    Args:
        logmel: the LogMel that produced the features (its settings are inverted).
        features: log-mel features.
        iters: phase-retrieval iterations.
        momentum: fast Griffin-Lim momentum (0 is classic Griffin-Lim).
        length: output length in samples (default (frames - 1) * hop).
        generator: for the random initial phase; a list of B generators draws each row's from its own,
            so that a row's result does not depend on the rest of the batch (row 0 draws what one
            generator draws for the whole batch).
    """
    cfg = logmel.config
    target = logmel.mel_to_magnitude(logmel.to_linear(features))
    win = logmel.window.to(target.dtype)
    if cfg.normalize_window:
        target = target * win.pow(2).sum().sqrt()
    length = length or (features.shape[-1] - 1) * cfg.hop
    phase = _uniform(target, generator) * 2 * math.pi
    angles = torch.polar(torch.ones_like(target), phase)
    prev = torch.zeros_like(angles)
    for _ in range(iters):
        audio = torch.istft(target * angles, cfg.n_fft, cfg.hop, cfg.win_length, win, length=length)
        rebuilt = torch.stft(audio, cfg.n_fft, cfg.hop, cfg.win_length, win, return_complex=True)
        accel = rebuilt + momentum * (rebuilt - prev)  # t_n = c_n + alpha (c_n - c_{n-1})
        angles = accel / accel.abs().clamp_min(1e-16)
        prev = rebuilt
    return torch.istft(target * angles, cfg.n_fft, cfg.hop, cfg.win_length, win, length=length)


def _uniform(like: Tensor, generator: torch.Generator | list[torch.Generator] | None) -> Tensor:
    """U[0, 1) draws shaped like `like` (B, ...): from `generator`, or row b from generator[b] (a list of B)."""
    rand = {"device": like.device, "dtype": like.dtype}
    if not isinstance(generator, list):
        return torch.rand(like.shape, generator=generator, **rand)
    if len(generator) != like.shape[0]:
        raise ValueError(f"griffin_lim: {len(generator)} generators for a batch of {like.shape[0]}; give one per row")
    return torch.stack([torch.rand(like.shape[1:], generator=g, **rand) for g in generator])


def display_logmel(sample_rate: int) -> LogMel:
    """The log-mel used for spectrogram pictures: speech16k settings, top band kept below Nyquist."""
    return LogMel(mel_config("speech16k", sample_rate=sample_rate, fmax=min(7600.0, sample_rate / 2 - 1)))
