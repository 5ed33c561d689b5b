"""DiffWave (Kong et al. 2021, arXiv 2009.09761): a non-causal dilated-convolution WaveNet.

Shapes: audio (B, 1, T); diffusion step t (B,) float (fractional steps allowed); mel condition
(B, n_mels, frames) with T = frames * hop. Each residual layer adds a projection of the step
embedding, applies a dilated convolution (dilation 2^(i mod cycle)), adds the projected
(upsampled) mel, a gated tanh/sigmoid unit, and splits a 1x1 output into residual and skip
paths. The summed skips go through two 1x1 convolutions to the output (zero-initialised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EMBED_INTERPS = ("exact", "lerp")
EmbedInterp = Literal[("auto", *EMBED_INTERPS)]  # "auto" only in experiment configs (resolved on load)


@dataclass
class DiffWaveConfig:
    """DiffWave sizes. `n_mels = 0` builds the unconditional model.

    Attributes:
        layers: residual layers (base 30).
        channels: residual channels (base 64).
        cycle: dilation cycle length (base 10: dilations 1, 2, ..., 512, repeated).
        n_mels: mel bands of the condition (80), or 0 for unconditional.
        hop: samples per mel frame; the upsampler's strides multiply to it (256 = 16 x 16).
        embed_dim: width of the step-embedding MLP (512).
        embed_interp: how a fractional step t is embedded. "lerp" (default): linear
            interpolation between the embeddings of the integer steps floor(t) and floor(t) + 1,
            lmnt-com/diffwave's behaviour; right for DDPM training, which only ever sees integer
            steps, while the fast and Euler/Heun samplers ask for fractional ones. "exact":
            sinusoids of t itself, for continuous conditioning (EDM's c_noise); on a model
            trained on integer steps its sinusoids (up to 10^4 rad per step) make a fractional
            step's embedding unrelated to every trained one. Experiment configs default to
            "auto", resolved by `resolve_embed_interp` from the formulation.
    """

    layers: int = 30
    channels: int = 64
    cycle: int = 10
    n_mels: int = 80
    hop: int = 256
    embed_dim: int = 512
    embed_interp: EmbedInterp = "lerp"


def resolve_embed_interp(interp: str, formulation: str) -> str:
    """An experiment config's embed_interp for the diffusion formulation ("ddpm" or "edm").

    "auto" means "lerp" for DDPM (trained on integer steps 0..T-1, sampled at fractional ones)
    and "exact" for EDM (continuous c_noise = ln(sigma) / 4, which has no integer grid).
    """
    if interp not in ("auto", *EMBED_INTERPS):
        raise ValueError(f"embed_interp={interp!r} is not allowed; choose one of ['auto', 'exact', 'lerp']")
    if interp == "auto":
        return "lerp" if formulation == "ddpm" else "exact"
    if interp == "lerp" and formulation == "edm":
        raise ValueError(
            "embed_interp='lerp' interpolates between integer DDPM steps, but EDM conditions on the continuous "
            "c_noise = ln(sigma) / 4; use 'exact' or 'auto'"
        )
    return interp


DIFFWAVE_PRESETS: dict[str, DiffWaveConfig] = {
    "base": DiffWaveConfig(),  # vocoder, 2.62M parameters (the paper's 2.64M "base")
    "large": DiffWaveConfig(channels=128),
    "unconditional": DiffWaveConfig(layers=36, channels=256, cycle=12, n_mels=0),  # SC09 in the paper
    "small": DiffWaveConfig(layers=12, channels=32, cycle=6),
    "small_uncond": DiffWaveConfig(layers=12, channels=32, cycle=6, n_mels=0),
}


def upsample_factors(hop: int, max_factor: int = 16) -> list[int]:
    """Split a hop into upsampling strides <= max_factor (256 -> [16, 16], 300 -> [5, 15, 4])."""
    if hop < 1:
        raise ValueError(f"hop must be >= 1, got {hop}")
    primes, n, p = [], hop, 2
    while n > 1:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    if any(q > max_factor for q in primes):
        raise ValueError(f"hop={hop} has a prime factor above {max_factor}; choose a hop that factors (e.g. 256, 200)")
    stages, cur = [], 1
    for q in sorted(primes, reverse=True):
        if cur * q > max_factor:
            stages.append(cur)
            cur = 1
        cur *= q
    return stages + [cur] if cur > 1 or not stages else stages


class StepEmbedding(nn.Module):
    """Sinusoidal embedding of the (fractional) step, 64 frequencies 10^(4 i / 63), then a 2-layer MLP.

    Computed in the module's precision (float32, or float64 after `.double()`); see
    DiffWaveConfig.embed_interp for "exact" and "lerp".
    """

    def __init__(self, embed_dim: int, interp: str = "lerp") -> None:
        super().__init__()
        if interp not in EMBED_INTERPS:
            hint = "; 'auto' must be resolved first (resolve_embed_interp)" if interp == "auto" else ""
            raise ValueError(f"embed_interp={interp!r} is not allowed; choose one of {list(EMBED_INTERPS)}{hint}")
        self.interp = interp
        self.register_buffer("freqs", 10.0 ** (torch.arange(64) * 4.0 / 63.0), persistent=False)
        self.fc1 = nn.Linear(128, embed_dim)
        self.fc2 = nn.Linear(embed_dim, embed_dim)

    def sinusoids(self, t: Tensor) -> Tensor:
        """(B,) -> (B, 128), in the dtype of `t` (which the caller has cast)."""
        arg = t[:, None] * self.freqs[None].to(t.dtype)
        return torch.cat([arg.sin(), arg.cos()], dim=1)

    def forward(self, t: Tensor) -> Tensor:
        """(B,) steps -> (B, embed_dim)."""
        t = t.to(torch.promote_types(self.fc1.weight.dtype, torch.float32))
        if self.interp == "lerp":
            lo = t.floor()
            emb = torch.lerp(self.sinusoids(lo), self.sinusoids(lo + 1), (t - lo)[:, None])
        else:
            emb = self.sinusoids(t)
        return F.silu(self.fc2(F.silu(self.fc1(emb))))


class MelUpsampler(nn.Module):
    """Transposed 2-D convolutions over (mel, time) that stretch frames by the hop, leaky ReLU 0.4."""

    def __init__(self, hop: int) -> None:
        super().__init__()
        self.factors = upsample_factors(hop)
        self.stages = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, (3, 2 * f), stride=(1, f), padding=(1, f // 2)) for f in self.factors
        )

    def forward(self, mel: Tensor) -> Tensor:
        """(B, n_mels, frames) -> (B, n_mels, frames * hop)."""
        x = mel[:, None]
        for stage, f in zip(self.stages, self.factors):
            x = F.leaky_relu(stage(x), 0.4)
            x = x[..., : x.shape[-1] - (f % 2)] if f % 2 else x  # odd strides overshoot by one sample
        return x[:, 0]


class ResidualLayer(nn.Module):
    def __init__(self, channels: int, dilation: int, embed_dim: int, n_mels: int) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.step_proj = nn.Linear(embed_dim, channels)
        self.cond_proj = nn.Conv1d(n_mels, 2 * channels, 1) if n_mels else None
        self.out_proj = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: Tensor, emb: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """x (B, C, T), emb (B, E), cond: this layer's projected condition (B, 2C, T) or None.

        Returns (residual out, skip), each (B, C, T).
        """
        y = self.dilated(x + self.step_proj(emb)[:, :, None])
        if cond is not None:
            y = y + cond
        gate, filt = y.chunk(2, dim=1)
        y = self.out_proj(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) * (1 / math.sqrt(2)), skip


class DiffWave(nn.Module):
    """DiffWave network `net(x, t, cond) -> (B, 1, T)` (eps, x0 or v, by the formulation).

    Args:
        config: sizes; see DiffWaveConfig and DIFFWAVE_PRESETS.
    """

    def __init__(self, config: DiffWaveConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiffWaveConfig()
        if cfg.layers < 1 or cfg.channels < 1 or cfg.cycle < 1:
            raise ValueError(f"DiffWave: layers, channels and cycle must be >= 1, got {cfg}")
        self.inp = nn.Conv1d(1, cfg.channels, 1)
        self.step_embed = StepEmbedding(cfg.embed_dim, cfg.embed_interp)
        self.upsampler = MelUpsampler(cfg.hop) if cfg.n_mels else None
        self.layers = nn.ModuleList(
            ResidualLayer(cfg.channels, 2 ** (i % cfg.cycle), cfg.embed_dim, cfg.n_mels) for i in range(cfg.layers)
        )
        self.skip_out = nn.Conv1d(cfg.channels, cfg.channels, 1)
        self.out = nn.Conv1d(cfg.channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output sample: 1 + 2 * sum of dilations (kernel 3)."""
        return 1 + 2 * sum(2 ** (i % self.config.cycle) for i in range(self.config.layers))

    def project_condition(self, mel: Tensor) -> Tensor:
        """Upsample a mel and apply every layer's condition projection, in one stacked convolution.

        The result does not depend on the diffusion step: pass it as `cond` to reuse it across
        all sampling steps. (B, n_mels, frames) -> (B, layers, 2C, frames * hop)
        """
        if self.upsampler is None:
            raise ValueError("project_condition needs a mel-conditioned DiffWave (n_mels > 0)")
        up = self.upsampler(mel)
        weight = torch.cat([layer.cond_proj.weight for layer in self.layers])
        bias = torch.cat([layer.cond_proj.bias for layer in self.layers])
        out = F.conv1d(up, weight, bias)
        return out.unflatten(1, (len(self.layers), -1))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x (B, 1, T), t (B,) -> (B, 1, T).

        cond: the mel (B, n_mels, T / hop), or `project_condition(mel)` (B, layers, 2C, T)
        precomputed once for many calls; None for the unconditional model.
        """
        if (cond is None) != (self.upsampler is None):
            need = "a mel condition (B, n_mels, frames)" if self.upsampler is not None else "no condition"
            raise ValueError(f"DiffWave(n_mels={self.config.n_mels}) needs {need}")
        conds: list[Tensor | None] = [None] * len(self.layers)
        if cond is not None:
            if cond.ndim == 4:
                projected = cond
            elif cond.ndim == 3:
                up = self.upsampler(cond)
                if up.shape[-1] != x.shape[-1]:
                    raise ValueError(
                        f"DiffWave: mel frames x hop = {up.shape[-1]} samples, but audio has {x.shape[-1]}"
                    )
                conds = [layer.cond_proj(up) for layer in self.layers]
                projected = None
            else:
                raise ValueError(f"DiffWave: cond must be (B, n_mels, frames) or (B, layers, 2C, T), got {cond.shape}")
            if projected is not None:
                if projected.shape[-1] != x.shape[-1] or projected.shape[1] != len(self.layers):
                    raise ValueError(
                        f"DiffWave: projected condition {tuple(projected.shape)} does not fit audio {tuple(x.shape)}"
                    )
                conds = list(projected.unbind(1))
        h = F.relu(self.inp(x))
        emb = self.step_embed(t)
        skips = None
        for layer, layer_cond in zip(self.layers, conds):
            h, skip = layer(h, emb, layer_cond)
            skips = skip if skips is None else skips + skip
        h = F.relu(self.skip_out(skips * (1 / math.sqrt(len(self.layers)))))
        return self.out(h)
