"""Real-looking test signals: tones, noise bursts, silence segments, DC, clipping."""

import math

import torch


def tone(n: int, freq_bin: float, amp: float = 0.5, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64)
    return amp * torch.cos(2 * math.pi * freq_bin * t / n + phase)


def speechlike(n: int = 16000, seed: int = 0) -> torch.Tensor:
    """A few harmonic tones with an envelope, a noise burst and a silent stretch. (n,)"""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / 16000
    f0 = 110 + 40 * torch.rand((), generator=g, dtype=torch.float64)
    x = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6))
    x = x * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t))
    burst = slice(n // 3, n // 3 + n // 10)
    x[burst] += 0.3 * torch.randn(n // 10, generator=g, dtype=torch.float64)
    x[n // 2 : n // 2 + n // 5] = 0.0
    return (0.3 * x).float()


def hard_cases(b: int, c: int, n: int) -> dict[str, torch.Tensor]:
    """Targets on which gradients must stay finite: silence, DC, clipped full scale."""
    return {
        "silence": torch.zeros(b, c, n),
        "dc": torch.full((b, c, n), 0.5),
        "clipped": (3 * torch.randn(b, c, n)).clamp(-1, 1),
    }
