"""Data-dependent priors for mel-conditioned DDPM vocoders: PriorGrad's here (Lee et al., ICLR 2022, arXiv
2106.06406), SpecGrad's in `audiodiff.diffusion.spec_envelope`; the config, checks and builder of both.

A prior is N(0, L L^T) for the batch's condition, handed to the DDPM as a `NoiseOperator`: colour(z) = L z
(white noise -> the prior's noise), whiten(err) = L^-1 err (the loss's Sigma^-1/2 weighting). PriorGrad's
L = diag(std) (`ScaledNoise`); SpecGrad's filters the noise with the mel's spectral envelope (`FilteredNoise`).

The standard prior N(0, I) becomes N(0, Sigma_c), Sigma_c = diag(std^2), with a per-sample std that
follows the frame energy of the conditioning log-mel, so that silent frames start (and are noised)
near silence and the network need not learn to remove noise there:

    energy_f = sqrt(sum_b P_fb)                     P: the frame's linear mel power
    std_f    = clamp((energy_f - e_min) / (e_max - e_min), std_min, 1), frame f's std on its hop of samples

with e_min the smallest frame energy of the training data and e_max the largest, or its `max_quantile`
quantile (one loud outlier then no longer sets the scale; frames above it get std 1), computed
once by `audiodiff train` and stored in the run's config, so generation needs no training data. With it:

- forward process x_t = sqrt(abar) x0 + sqrt(1 - abar) std * z: the "eps" the network predicts is std * z;
- the denoising error is weighted by Sigma^-1/2: |err| / std (L1) or (err / std)^2 (L2, PriorGrad's);
- sampling starts from std * z and every ancestral step adds its noise times std (the posterior mean
  is unchanged: every coordinate keeps the schedule, only its variance is scaled).

Where a frame's std sits (`align`): our STFT frames are centred (torch.stft center=True: frame k's
window is centred on sample k*hop), so "centre" gives frame k the samples [k*hop - hop/2, k*hop + hop/2)
(the first half hop frame 0's, the last half hop the last frame's); "hold", the first version, gave it
[k*hop, (k+1)*hop), half a hop late. The reference's hold is aligned: its STFT pads (n_fft - hop) / 2
and does not centre, so its frame k is centred on k*hop + hop/2. Runs made before `align` existed
store a range and no align: they read as "hold", sample as they were trained, and resume as "hold" with
a config that leaves align unset (`audiodiff.runfiles.keep_prior_align`).

Choices that differ from the reference code (microsoft/NeuralSpeech, PriorGrad-vocoder):
- the energy is the root of the mel *power* (`energy: rms`; the magnitude squared for our power-1 mels),
  so it scales with the frame's RMS (twice the signal, twice the energy); the reference takes
  sqrt(sum exp(logmel)) of HiFi-GAN's magnitude mels, which grows only as the amplitude's root
  (`energy: reference` computes that, for comparison);
- the reference caps outliers with a fixed energy (max_energy_override=4 for its volume-normalised
  LJSpeech); `max_quantile` does the same from the data;
- std is also clamped at 1: a frame louder than any training frame gets the training maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor, nn

from audiodiff.audio.features import MelConfig, log_to_linear, mel_config
from audiodiff.diffusion.spec_envelope import SpecEnvelopePrior, envelope_gains

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig

PRIOR_KINDS = ("none", "mel_energy", "spec_envelope")
PriorKind = Literal[PRIOR_KINDS]
PRIOR_ENERGIES = ("rms", "reference")
PriorEnergy = Literal[PRIOR_ENERGIES]
PRIOR_ALIGNS = ("centre", "hold")
PriorAlign = Literal[PRIOR_ALIGNS]
STATS_DIGITS = 6  # e_min, e_max are rounded to this many significant digits: recomputed on resume, they match


@dataclass
class PriorConfig:
    """`diffusion.prior`: the diffusion prior. "none" is N(0, I); "mel_energy" is PriorGrad's (module docstring);
    "spec_envelope" SpecGrad's (`audiodiff.diffusion.spec_envelope`). Each kind reads its own keys (KIND_KEYS)
    and the shared ones (max_quantile, the range)."""

    kind: PriorKind = "none"
    std_min: float = 0.1  # the smallest std (silent frames), in (0, 1]
    energy: PriorEnergy = "rms"  # rms: sqrt(sum of mel power); reference: sqrt(sum of mel magnitude) (docstring)
    max_quantile: float = 1.0  # e_max: this quantile of the training frame energies (1: the loudest frame)
    # frame k's std on [k*hop - hop/2, k*hop + hop/2) ("centre") or [k*hop, (k+1)*hop) ("hold");
    # null: `audiodiff train` records "centre" with the range; a stored range without it reads as "hold"
    align: PriorAlign | None = None
    # spec_envelope: quefrencies |q| < lifter_order of the log spectrum are kept (24: SpecGrad's); the filter's
    # smallest magnitude, where the training frames' max_quantile envelope RMS is 1, in (0, 1]
    lifter_order: int = 24
    floor: float = 0.01
    # range of the training data's frame energies (spec_envelope: of its envelopes' RMS; only the top is used);
    # null: `audiodiff train` computes it from data.train
    energy_min: float | None = None
    energy_max: float | None = None


# the keys only one kind reads; set on another kind they are an error (prior_problem)
KIND_KEYS = {"mel_energy": ("std_min", "energy", "align"), "spec_envelope": ("lifter_order", "floor")}
PRIOR_PAPERS = {"mel_energy": "PriorGrad", "spec_envelope": "SpecGrad"}
PRIOR_FOLLOWS = {"mel_energy": "the energy", "spec_envelope": "the spectral envelope"}


def frame_energy(features: Tensor, mel: MelConfig, energy: str = "rms") -> Tensor:
    """Frame energies of log-mel features (B, n_mels, frames) -> (B, frames).

    "rms": sqrt(sum_b P_b), P the linear mel power (the magnitude squared for power-1 mels, `mel.power`),
    proportional to the frame's RMS within the mel band range; "reference": sqrt(sum_b M_b), M the mel
    magnitude, as microsoft/NeuralSpeech's PriorGrad-vocoder (it grows as the RMS's root).
    """
    return log_to_linear(features, mel).pow((2 if energy == "rms" else 1) / mel.power).sum(-2).sqrt()


def energy_range(
    features: Iterable[Tensor], mel: MelConfig, energy: str = "rms", max_quantile: float = 1.0
) -> tuple[float, float]:
    """(smallest, largest) frame energy of log-mel features (each (B, n_mels, frames)), in float64,
    rounded to STATS_DIGITS significant digits; the largest is the `max_quantile` quantile (numpy's
    linear interpolation) when that is below 1."""
    return frame_range((frame_energy(feats.double(), mel, energy) for feats in features), max_quantile)


def frame_range(frames: Iterable[Tensor], max_quantile: float = 1.0) -> tuple[float, float]:
    """(smallest, largest) of per-frame values (each (B, frames)), rounded to STATS_DIGITS significant
    digits; the largest is the `max_quantile` quantile (numpy's linear interpolation) when that is below 1."""
    lo, hi, kept = float("inf"), float("-inf"), []
    for frame in frames:
        lo, hi = min(lo, float(frame.min())), max(hi, float(frame.max()))
        if max_quantile < 1:
            kept.append(frame.flatten().cpu().numpy())
    if lo > hi:
        raise ValueError("diffusion.prior: no frames to take the energy range from (data.train is empty)")
    if kept:
        hi = float(np.quantile(np.concatenate(kept), max_quantile))
    lo, hi = float(f"{lo:.{STATS_DIGITS}g}"), float(f"{hi:.{STATS_DIGITS}g}")
    if hi <= lo:
        raise ValueError(
            f"diffusion.prior.max_quantile={max_quantile}: that quantile of the training frame energies ({hi:g}) "
            f"is not above the smallest ({lo:g}): more frames are silent than that; raise it"
        )
    return lo, hi


def record_training_range(prior: PriorConfig, features: Iterable[Tensor], mel: MelConfig) -> None:
    """Store the range of the training features' frame energies in `prior`: what `audiodiff train` records
    for a new run. mel_energy: of `frame_energy` (see `energy_range`), and align "centre" unless it is set;
    spec_envelope: of the envelopes' RMS (`spec_envelope.envelope_gains`)."""
    if prior.kind == "spec_envelope":
        gains = envelope_gains(features, mel, prior.lifter_order)
        prior.energy_min, prior.energy_max = frame_range(gains, prior.max_quantile)
        return
    prior.energy_min, prior.energy_max = energy_range(features, mel, prior.energy, prior.max_quantile)
    prior.align = prior.align or "centre"


def spread_frames(std: Tensor, hop: int, align: str) -> Tensor:
    """Per-frame values (B, frames) -> per-sample (B, frames * hop): frame k on [k*hop - hop//2,
    k*hop + hop - hop//2) ("centre", the last frame also on the last half hop) or [k*hop, (k+1)*hop) ("hold")."""
    shift = hop // 2 if align == "centre" else 0
    index = ((torch.arange(std.shape[-1] * hop, device=std.device) + shift) // hop).clamp_max(std.shape[-1] - 1)
    return std[..., index]


def energy_std(energy: Tensor, energy_min: float, energy_max: float, std_min: float) -> Tensor:
    """PriorGrad's std of a frame energy: (energy - e_min) / (e_max - e_min) clamped to [std_min, 1]."""
    return ((energy - energy_min) / (energy_max - energy_min)).clamp(std_min, 1.0)


@dataclass(frozen=True)
class ScaledNoise:
    """The `NoiseOperator` of N(0, diag(std^2)) (PriorGrad): L = diag(std), colour multiplies by the std, whiten
    divides by it.

    Args:
        std: the per-sample std, broadcast against the noise ((B, 1, T) from `MelEnergyPrior`).
    """

    std: Tensor

    def colour(self, z: Tensor) -> Tensor:
        return z * self.std

    def whiten(self, err: Tensor) -> Tensor:
        return err / self.std


class MelEnergyPrior(nn.Module):
    """Condition (B, n_mels, frames) -> the prior's per-sample std (B, 1, frames * hop).

    Args:
        mel: the log-mel settings of the condition (its log scale and power).
        energy_min, energy_max: the training data's frame-energy range.
        std_min: the smallest std.
        to_features: the condition -> its raw log-mels (the inverse of data.cond_scale).
        energy: the frame energy, "rms" or "reference" (`frame_energy`).
        align: where a frame's std sits, "centre" or "hold" (`spread_frames`).
    """

    def __init__(
        self,
        mel: MelConfig,
        energy_min: float,
        energy_max: float,
        std_min: float,
        to_features,
        energy: str = "rms",
        align: str = "hold",
    ) -> None:
        super().__init__()
        self.mel, self.to_features, self.energy, self.align = mel, to_features, energy, align
        self.energy_min, self.energy_max, self.std_min = float(energy_min), float(energy_max), float(std_min)

    def forward(self, cond: Tensor) -> Tensor:
        energy = frame_energy(self.to_features(cond), self.mel, self.energy)
        std = energy_std(energy, self.energy_min, self.energy_max, self.std_min)
        return spread_frames(std, self.mel.hop, self.align)[:, None]

    def operator(self, cond: Tensor) -> ScaledNoise:
        """The prior for a batch condition: its noise is the std times white noise."""
        return ScaledNoise(self(cond))


def prior_problem(cfg: ExperimentConfig) -> str | None:
    """What in diffusion.prior does not fit the rest of `cfg` (one line), or None."""
    prior = cfg.diffusion.prior
    if prior.kind == "none":
        return None
    key = f"diffusion.prior.kind={prior.kind}"
    if cfg.diffusion.kind != "ddpm":
        paper = PRIOR_PAPERS[prior.kind]
        return f"{key} is a DDPM prior ({paper}): it needs diffusion.kind=ddpm, got {cfg.diffusion.kind}"
    if cfg.task != "vocoder":
        follows = PRIOR_FOLLOWS[prior.kind]
        return f"{key} follows {follows} of a conditioning mel: it needs task=vocoder, got task={cfg.task}"
    if problem := _kind_problem(cfg, prior):
        return problem
    if not 0 < prior.max_quantile <= 1:
        return f"diffusion.prior.max_quantile={prior.max_quantile} must be in (0, 1] (1: the loudest training frame)"
    stats = (prior.energy_min, prior.energy_max)
    if (stats[0] is None) != (stats[1] is None):
        return f"diffusion.prior.energy_min/energy_max: set both or neither (null: train computes them), got {stats}"
    if stats[0] is not None and not 0 <= stats[0] < stats[1] < math.inf:  # inf: std_min (or nan) everywhere
        return (
            f"diffusion.prior: need 0 <= energy_min < energy_max < inf, got energy_min={stats[0]}, "
            f"energy_max={stats[1]}"
        )
    return None


def _kind_problem(cfg: ExperimentConfig, prior: PriorConfig) -> str | None:
    """A key of another kind set away from its default, or a bad value of this kind's keys (one line), or None."""
    default = PriorConfig()
    for kind, keys in KIND_KEYS.items():
        for name in keys:
            if kind != prior.kind and getattr(prior, name) != getattr(default, name):
                return (
                    f"diffusion.prior.{name}={getattr(prior, name)} applies to kind={kind} ({PRIOR_PAPERS[kind]}), "
                    f"not kind={prior.kind}; leave it out (keys of {prior.kind}: {', '.join(KIND_KEYS[prior.kind])})"
                )
    if prior.kind == "mel_energy" and not 0 < prior.std_min <= 1:
        return f"diffusion.prior.std_min={prior.std_min} must be in (0, 1]"
    if prior.kind != "spec_envelope":
        return None
    half = mel_config(cfg.data.mel_preset, sample_rate=cfg.data.sample_rate).n_fft // 2
    if not 1 <= prior.lifter_order <= half:
        return (
            f"diffusion.prior.lifter_order={prior.lifter_order} must be in 1..{half} (quefrencies kept, up to half "
            f"the n_fft of data.mel_preset={cfg.data.mel_preset})"
        )
    if not 0 < prior.floor <= 1:
        return f"diffusion.prior.floor={prior.floor} must be in (0, 1] (the filter's smallest magnitude)"
    return None


def build_prior(cfg: ExperimentConfig) -> MelEnergyPrior | SpecEnvelopePrior | None:
    """The prior diffusion.prior names (None for "none"), with the energy range stored in `cfg`.

    Raises:
        ValueError: a prior without diffusion.prior.energy_min/energy_max (train sets them).
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
    to_features = partial(vocoder_features, data=data)
    if prior.kind == "spec_envelope":
        return SpecEnvelopePrior(mel, prior.energy_max, prior.floor, prior.lifter_order, to_features)
    align = prior.align or "hold"  # a range stored without align: a run from before align existed
    return MelEnergyPrior(mel, prior.energy_min, prior.energy_max, prior.std_min, to_features, prior.energy, align)
