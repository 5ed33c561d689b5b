"""DiffWave (Kong et al. 2021, arXiv 2009.09761): a non-causal dilated-convolution WaveNet.

Shapes: audio (B, 1, T); diffusion step t (B,) float (fractional steps allowed); mel condition
(B, n_mels, frames) with T = frames * hop. Each residual layer adds a projection of the step
embedding, applies a dilated convolution (dilation 2^(i mod cycle)), adds the projected
(upsampled) mel, a gated tanh/sigmoid unit, and splits a 1x1 output into residual and skip
paths. The summed skips go through two 1x1 convolutions to the output (zero-initialised).

With `wave_cond` W > 0 the condition also carries W sample-rate channels (e.g. the Griffin-Lim
waveform of the mels), packed at frame rate by `pack_waveform` as W * hop extra channels per frame
so that the condition stays one (B, n_mels + W * hop, frames) tensor (batching, cropping and
`project_condition` are unchanged); they join the upsampled mel as W more inputs of every layer's
condition projection.
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
EMBED_FREQS = ("diffwave", "edm")
EmbedFreqs = Literal[EMBED_FREQS]


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
        embed_freqs: the 64 sinusoid frequencies of the step embedding (`step_frequencies`).
            "diffwave" (default): 1 .. 10^4 rad per unit, made for integer DDPM steps 0..T-1. "edm":
            1 .. 10^-4, NVlabs/edm's PositionalEmbedding (DDPM++, ADM) for c_noise = ln(sigma) / 4,
            which spans about 2 units, where DiffWave's higher frequencies turn many times and make
            most features a hash of sigma. A non-persistent buffer: state dicts do not change. Not with
            embed_interp "lerp" (made for integer steps; a one-line error).
        wave_cond: sample-rate condition channels (0: the mel alone, today's network; 1: a vocoder
            conditioned on its mels' Griffin-Lim waveform, data.cond_waveform=griffin_lim). They
            enter every layer's condition projection (in-channels n_mels + wave_cond) beside the
            upsampled mel, not the input convolution: the projection already hands them to the
            first layer's gate and to every later one, it is computed once per utterance
            (`project_condition`), and the input stays x_t alone, which the fast CPU path
            (diffwave_infer.py) folds into a per-channel scale. Needs n_mels > 0.
    """

    layers: int = 30
    channels: int = 64
    cycle: int = 10
    n_mels: int = 80
    hop: int = 256
    embed_dim: int = 512
    embed_interp: EmbedInterp = "lerp"
    wave_cond: int = 0
    embed_freqs: EmbedFreqs = "diffwave"


def pack_waveform(cond: Tensor, wave: Tensor, hop: int) -> Tensor:
    """A frame-rate condition and a sample-rate one as one frame-rate tensor (inverse: `unpack_waveform`).

    Sample f * hop + j of channel w goes to channel n + w * hop + j of frame f, so cropping or
    batching whole frames crops or batches the waveform with them.

    Args:
        cond: (B, n, frames), e.g. the mel condition.
        wave: (B, W, frames * hop), e.g. the Griffin-Lim waveform (W = 1).
        hop: samples per frame.

    Returns:
        (B, n + W * hop, frames).
    """
    b, w, t = wave.shape
    frames = cond.shape[-1]
    if t != frames * hop:
        raise ValueError(
            f"pack_waveform: {t} waveform samples, the condition's {frames} frames x hop {hop} = {frames * hop}"
        )
    return torch.cat([cond, wave.reshape(b, w, frames, hop).transpose(2, 3).reshape(b, w * hop, frames)], dim=1)


def unpack_waveform(cond: Tensor, n: int, hop: int) -> tuple[Tensor, Tensor]:
    """(B, n + W * hop, frames) from `pack_waveform` -> ((B, n, frames), (B, W, frames * hop))."""
    b, c, frames = cond.shape
    w, rest = divmod(c - n, hop)
    if w < 0 or rest:
        raise ValueError(f"unpack_waveform: {c} channels are not {n} frame-rate channels plus whole hops of {hop}")
    wave = cond[:, n:].reshape(b, w, hop, frames).transpose(2, 3).reshape(b, w, frames * hop)
    return cond[:, :n], wave


def upsample_condition(upsampler: nn.Module, cond: Tensor, config: DiffWaveConfig) -> Tensor:
    """A packed condition (B, n_mels + wave_cond * hop, frames) -> (B, n_mels + wave_cond, frames * hop):
    the mel upsampled by `upsampler`, the waveform channels (if any) unpacked beside it."""
    want = config.n_mels + config.wave_cond * config.hop
    if cond.shape[1] != want:
        extra = f" + wave_cond {config.wave_cond} x hop {config.hop}" if config.wave_cond else ""
        raise ValueError(
            f"DiffWave: the condition has {cond.shape[1]} channels, the model takes n_mels {config.n_mels}{extra}"
            f" = {want}"
        )
    if not config.wave_cond:
        return upsampler(cond)
    mel, wave = unpack_waveform(cond, config.n_mels, config.hop)
    return torch.cat([upsampler(mel), wave], dim=1)


def resolve_embed_interp(interp: str, formulation: str, freqs: str = "diffwave") -> str:
    """An experiment config's embed_interp for the diffusion formulation ("ddpm" or "edm") and embed_freqs.

    "auto" means "lerp" for DDPM (trained on integer steps 0..T-1, sampled at fractional ones)
    and "exact" for EDM (continuous c_noise = ln(sigma) / 4, which has no integer grid) or for
    embed_freqs "edm" (at most 1 rad per unit: smooth between integer steps).
    """
    if interp not in ("auto", *EMBED_INTERPS):
        raise ValueError(f"embed_interp={interp!r} is not allowed; choose one of ['auto', 'exact', 'lerp']")
    if interp == "auto":
        interp = "lerp" if formulation == "ddpm" and freqs == "diffwave" else "exact"
    if interp == "lerp" and formulation == "edm":
        raise ValueError(
            "embed_interp='lerp' interpolates between integer DDPM steps, but EDM conditions on the continuous "
            "c_noise = ln(sigma) / 4; use 'exact' or 'auto'"
        )
    check_embed_freqs(freqs, interp)
    return interp


def check_embed_freqs(freqs: str, interp: str) -> None:
    """ValueError unless `freqs` is an embed_freqs choice that goes with the (resolved) embed_interp."""
    if freqs not in EMBED_FREQS:
        raise ValueError(f"embed_freqs={freqs!r} is not allowed; choose one of {list(EMBED_FREQS)}")
    if freqs == "edm" and interp == "lerp":
        raise ValueError(
            "embed_freqs='edm' does not go with embed_interp='lerp', which interpolates between integer DDPM "
            "steps; EDM's frequencies embed a continuous input: use embed_interp 'exact' or 'auto'"
        )


def step_frequencies(freqs: str = "diffwave") -> Tensor:
    """The 64 frequencies (rad per unit of input) of DiffWave's step embedding, float32.

    "diffwave": 10^(4 i / 63), 1 .. 10^4 (Kong et al. 2021). "edm": (1 / 10^4)^(i / 63), 1 .. 10^-4,
    computed as NVlabs/edm's PositionalEmbedding(max_positions=10000, endpoint=True) does.
    """
    if freqs == "edm":
        return (1 / 10000) ** (torch.arange(64, dtype=torch.float32) / 63)
    return 10.0 ** (torch.arange(64) * 4.0 / 63.0)


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
    """Sinusoidal embedding of the (fractional) step at 64 frequencies (`step_frequencies`), then a 2-layer MLP.

    Computed in the module's precision (float32, or float64 after `.double()`); see
    DiffWaveConfig.embed_interp for "exact" and "lerp", DiffWaveConfig.embed_freqs for the frequencies.
    """

    def __init__(self, embed_dim: int, interp: str = "lerp", freqs: str = "diffwave") -> None:
        super().__init__()
        if interp not in EMBED_INTERPS:
            hint = "; 'auto' must be resolved first (resolve_embed_interp)" if interp == "auto" else ""
            raise ValueError(f"embed_interp={interp!r} is not allowed; choose one of {list(EMBED_INTERPS)}{hint}")
        check_embed_freqs(freqs, interp)
        self.interp = interp
        self.register_buffer("freqs", step_frequencies(freqs), persistent=False)
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
        if cfg.wave_cond < 0 or (cfg.wave_cond and not cfg.n_mels):
            raise ValueError(f"DiffWave: wave_cond={cfg.wave_cond} must be >= 0, and > 0 only with n_mels > 0")
        self.inp = nn.Conv1d(1, cfg.channels, 1)
        self.step_embed = StepEmbedding(cfg.embed_dim, cfg.embed_interp, cfg.embed_freqs)
        self.upsampler = MelUpsampler(cfg.hop) if cfg.n_mels else None
        self.layers = nn.ModuleList(
            ResidualLayer(cfg.channels, 2 ** (i % cfg.cycle), cfg.embed_dim, cfg.n_mels + cfg.wave_cond)
            for i in range(cfg.layers)
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
        all sampling steps. (B, n_mels + wave_cond * hop, frames) -> (B, layers, 2C, frames * hop)
        """
        if self.upsampler is None:
            raise ValueError("project_condition needs a mel-conditioned DiffWave (n_mels > 0)")
        up = upsample_condition(self.upsampler, mel, self.config)
        weight = torch.cat([layer.cond_proj.weight for layer in self.layers])
        bias = torch.cat([layer.cond_proj.bias for layer in self.layers])
        out = F.conv1d(up, weight, bias)
        return out.unflatten(1, (len(self.layers), -1))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x (B, 1, T), t (B,) -> (B, 1, T).

        cond: the mel (B, n_mels, T / hop) (with wave_cond: `pack_waveform(mel, wave, hop)`,
        (B, n_mels + wave_cond * hop, T / hop)), or `project_condition(cond)` (B, layers, 2C, T)
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
                up = upsample_condition(self.upsampler, cond, self.config)
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
