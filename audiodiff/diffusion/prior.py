"""PriorGrad's data-dependent prior for mel-conditioned DDPM vocoders (Lee et al., ICLR 2022, arXiv 2106.06406).

The standard prior N(0, I) becomes N(0, Sigma_c), Sigma_c = diag(std^2), with a per-sample std that
follows the frame energy of the conditioning log-mel, so that silent frames start (and are noised)
near silence and the network need not learn to remove noise there:

    energy_f = sqrt(sum_b P_fb)                     P: the frame's linear mel power
    std_f    = clamp((energy_f - e_min) / (e_max - e_min), std_min, 1), repeated hop times per sample

with e_min, e_max the smallest and largest frame energy of the training data (computed once by
`audiodiff train` and stored in the run's config, so generation needs no training data). With it:

- forward process x_t = sqrt(abar) x0 + sqrt(1 - abar) std * z: the "eps" the network predicts is std * z;
- the denoising error is weighted by Sigma^-1/2: |err| / std (L1) or (err / std)^2 (L2);
- sampling starts from std * z and every ancestral step adds its noise times std (the posterior mean
  is unchanged: every coordinate keeps the schedule, only its variance is scaled).

Choices that differ from the reference code (microsoft/NeuralSpeech, PriorGrad-vocoder):
- the energy is the root of the mel *power* (the magnitude squared for our power-1 mels), so it
  scales with the frame's RMS (twice the signal, twice the energy); the reference takes
  sqrt(sum exp(logmel)) of HiFi-GAN's magnitude mels, which grows only as the amplitude's root;
- std is also clamped at 1: a frame louder than any training frame gets the training maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import Tensor, nn

from audiodiff.audio.features import MelConfig, log_to_linear, mel_config

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig

PRIOR_KINDS = ("none", "mel_energy")
PriorKind = Literal[PRIOR_KINDS]
STATS_DIGITS = 6  # e_min, e_max are rounded to this many significant digits: recomputed on resume, they match


@dataclass
class PriorConfig:
    """`diffusion.prior`: the diffusion prior. "none" is N(0, I); "mel_energy" is PriorGrad's (module docstring)."""

    kind: PriorKind = "none"
    std_min: float = 0.1  # the smallest std (silent frames), in (0, 1]
    # frame-energy range of the training data; null: `audiodiff train` computes it from data.train
    energy_min: float | None = None
    energy_max: float | None = None


def frame_energy(features: Tensor, mel: MelConfig) -> Tensor:
    """Frame energies sqrt(sum_b P_b) of log-mel features (B, n_mels, frames) -> (B, frames).

    P is the linear mel power: the magnitude squared for power-1 mels (`mel.power`), so the energy
    is proportional to the frame's RMS within the mel band range.
    """
    return log_to_linear(features, mel).pow(2 / mel.power).sum(-2).sqrt()


def energy_range(features: Iterable[Tensor], mel: MelConfig) -> tuple[float, float]:
    """(smallest, largest) frame energy of log-mel features (each (B, n_mels, frames)), in float64,
    rounded to STATS_DIGITS significant digits."""
    lo, hi = float("inf"), float("-inf")
    for feats in features:
        energy = frame_energy(feats.double(), mel)
        lo, hi = min(lo, float(energy.min())), max(hi, float(energy.max()))
    if lo > hi:
        raise ValueError("diffusion.prior: no frames to take the energy range from (data.train is empty)")
    return float(f"{lo:.{STATS_DIGITS}g}"), float(f"{hi:.{STATS_DIGITS}g}")


def energy_std(energy: Tensor, energy_min: float, energy_max: float, std_min: float) -> Tensor:
    """PriorGrad's std of a frame energy: (energy - e_min) / (e_max - e_min) clamped to [std_min, 1]."""
    return ((energy - energy_min) / (energy_max - energy_min)).clamp(std_min, 1.0)


class MelEnergyPrior(nn.Module):
    """Condition (B, n_mels, frames) -> the prior's per-sample std (B, 1, frames * hop).

    Args:
        mel: the log-mel settings of the condition (its log scale and power).
        energy_min, energy_max: the training data's frame-energy range.
        std_min: the smallest std.
        to_features: the condition -> its raw log-mels (the inverse of data.cond_scale).
    """

    def __init__(self, mel: MelConfig, energy_min: float, energy_max: float, std_min: float, to_features) -> None:
        super().__init__()
        self.mel, self.to_features = mel, to_features
        self.energy_min, self.energy_max, self.std_min = float(energy_min), float(energy_max), float(std_min)

    def forward(self, cond: Tensor) -> Tensor:
        energy = frame_energy(self.to_features(cond), self.mel)
        std = energy_std(energy, self.energy_min, self.energy_max, self.std_min)
        return std.repeat_interleave(self.mel.hop, -1)[:, None]


def prior_problem(cfg: ExperimentConfig) -> str | None:
    """What in diffusion.prior does not fit the rest of `cfg` (one line), or None."""
    prior = cfg.diffusion.prior
    if prior.kind == "none":
        return None
    key = f"diffusion.prior.kind={prior.kind}"
    if cfg.diffusion.kind != "ddpm":
        return f"{key} is a DDPM prior (PriorGrad): it needs diffusion.kind=ddpm, got {cfg.diffusion.kind}"
    if cfg.task != "vocoder":
        return f"{key} follows the energy of a conditioning mel: it needs task=vocoder, got task={cfg.task}"
    if not 0 < prior.std_min <= 1:
        return f"diffusion.prior.std_min={prior.std_min} must be in (0, 1]"
    stats = (prior.energy_min, prior.energy_max)
    if (stats[0] is None) != (stats[1] is None):
        return f"diffusion.prior.energy_min/energy_max: set both or neither (null: train computes them), got {stats}"
    if stats[0] is not None and not 0 <= stats[0] < stats[1] < math.inf:  # inf: std_min (or nan) everywhere
        return (
            f"diffusion.prior: need 0 <= energy_min < energy_max < inf, got energy_min={stats[0]}, "
            f"energy_max={stats[1]}"
        )
    return None


def build_prior(cfg: ExperimentConfig) -> MelEnergyPrior | None:
    """The prior diffusion.prior names (None for "none"), with the energy range stored in `cfg`.

    Raises:
        ValueError: "mel_energy" without diffusion.prior.energy_min/energy_max (train sets them).
    """
    prior = cfg.diffusion.prior
    if prior.kind == "none":
        return None
    if prior.energy_min is None or prior.energy_max is None:
        raise ValueError(
            f"diffusion.prior.kind={prior.kind} needs diffusion.prior.energy_min and energy_max: `audiodiff train` "
            "computes them from data.train (a model built outside training must set them)"
        )
    from audiodiff.tasks.audio import vocoder_features

    data = cfg.data
    mel = mel_config(data.mel_preset, sample_rate=data.sample_rate)
    return MelEnergyPrior(mel, prior.energy_min, prior.energy_max, prior.std_min, lambda c: vocoder_features(c, data))
