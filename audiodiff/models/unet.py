"""A DDPM++-style 2-D UNet for log-mels (B, 1, n_mels, frames) and images (B, C, H, W).

Residual blocks (group norm, SiLU, 3x3 convolutions, the noise embedding added between the
convolutions, skip scaled by 1/sqrt(2)), self-attention at chosen levels, strided-convolution
down-sampling and nearest+convolution up-sampling, a positional (DDPM timesteps) or random
Fourier (EDM's c_noise) noise embedding, and an optional class label. Inputs whose sides are
not multiples of 2^(levels-1) are zero-padded at the bottom/right and the output is cropped
back, so an 80 x 62 mel works with three levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EMBEDDINGS = ("positional", "fourier")


@dataclass
class UNetConfig:
    """UNet sizes.

    Attributes:
        in_channels, out_channels: input/output channels (out defaults to in).
        channels: base width; level i has channels * channel_mult[i].
        channel_mult: width multiplier per resolution level (its length sets the depth).
        num_res_blocks: residual blocks per level.
        attn_levels: levels (0 = full resolution) with self-attention after each block.
        head_channels: channels per attention head.
        dropout: dropout inside the residual blocks.
        embedding: "positional" (for DDPM step indices) or "fourier" (for EDM's c_noise).
        fourier_scale: std of the random Fourier frequencies.
        num_classes: > 0 adds a class-label embedding (cond = labels (B,) long).
        label_dropout: training-time probability of replacing a label by the null label
            (index num_classes, an extra embedding row when > 0), so that the model also learns
            the unconditional denoiser that classifier-free guidance needs. Drawn from the global
            RNG in train mode, as nn.Dropout draws (the run's seed; restored on resume).
        groups: group-norm groups (capped by the channel count).
    """

    in_channels: int = 1
    out_channels: int | None = None
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2,)
    head_channels: int = 64
    dropout: float = 0.0
    embedding: str = "positional"
    fourier_scale: float = 16.0
    num_classes: int = 0
    label_dropout: float = 0.0
    groups: int = 32


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = math.gcd(channels, min(groups, channels))
    return nn.GroupNorm(g, channels)


class NoiseEmbedding(nn.Module):
    """(B,) noise conditioning -> (B, dim): sinusoids (positional) or random Fourier features, then an MLP."""

    def __init__(self, channels: int, dim: int, kind: str, fourier_scale: float) -> None:
        super().__init__()
        if kind not in EMBEDDINGS:
            raise ValueError(f"embedding={kind!r} is not allowed; choose one of {list(EMBEDDINGS)}")
        self.kind = kind
        half = channels // 2
        if kind == "positional":
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
        else:
            freqs = torch.randn(half) * fourier_scale * 2 * math.pi
        self.register_buffer("freqs", freqs, persistent=kind == "fourier")
        self.mlp = nn.Sequential(nn.Linear(2 * half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, noise_cond: Tensor) -> Tensor:
        arg = noise_cond.float()[:, None] * self.freqs[None]
        return self.mlp(torch.cat([arg.cos(), arg.sin()], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(x) + h) * (1 / math.sqrt(2))


class Attention(nn.Module):
    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(out)) * (1 / math.sqrt(2))


def null_label(cfg) -> int | None:
    """The null (unconditional) label index of a UNet config (model.unet), or None if it has none."""
    return cfg.num_classes if cfg.num_classes and cfg.label_dropout else None


class UNet(nn.Module):
    """`net(x, noise_cond, cond) -> like x`: x (B, C, H, W), noise_cond (B,), cond labels (B,) or None."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UNetConfig()
        if not cfg.channel_mult or cfg.num_res_blocks < 1:
            raise ValueError(f"UNet: channel_mult must be non-empty and num_res_blocks >= 1, got {cfg}")
        bad = [lvl for lvl in cfg.attn_levels if not 0 <= lvl < len(cfg.channel_mult)]
        if bad:
            raise ValueError(f"UNet: attn_levels {bad} outside 0..{len(cfg.channel_mult) - 1}")
        out_ch = cfg.out_channels or cfg.in_channels
        emb_dim = 4 * cfg.channels
        self.embed = NoiseEmbedding(cfg.channels, emb_dim, cfg.embedding, cfg.fourier_scale)
        if not 0 <= cfg.label_dropout < 1 or (cfg.label_dropout and not cfg.num_classes):
            raise ValueError(
                f"UNet: label_dropout={cfg.label_dropout} must be in [0, 1) and needs num_classes > 0 "
                f"(num_classes={cfg.num_classes})"
            )
        rows = cfg.num_classes + (1 if cfg.label_dropout else 0)
        self.label = nn.Embedding(rows, emb_dim) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1)
        widths = [cfg.channels * m for m in cfg.channel_mult]
        self.down = nn.ModuleList()
        skip_widths, ch = [cfg.channels], cfg.channels
        for lvl, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                self.down.append(self._block(ch, width, emb_dim, lvl))
                ch = width
                skip_widths.append(ch)
            if lvl < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)
        self.mid = nn.ModuleList(
            [
                ResBlock(ch, ch, emb_dim, cfg.dropout, cfg.groups),
                Attention(ch, cfg.head_channels, cfg.groups),
                ResBlock(ch, ch, emb_dim, cfg.dropout, cfg.groups),
            ]
        )
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(widths))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(self._block(ch + skip_widths.pop(), widths[lvl], emb_dim, lvl))
                ch = widths[lvl]
            if lvl > 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1))
                )
        self.norm_out = _norm(ch, cfg.groups)
        self.conv_out = nn.Conv2d(ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _block(self, cin: int, cout: int, emb_dim: int, level: int) -> nn.Module:
        cfg = self.config
        res = ResBlock(cin, cout, emb_dim, cfg.dropout, cfg.groups)
        if level in cfg.attn_levels:
            return _BlockWithAttention(res, Attention(cout, cfg.head_channels, cfg.groups))
        return _BlockWithAttention(res, None)

    @property
    def null_label(self) -> int | None:
        """The label index of the unconditional (null) class, or None if the model has none."""
        return null_label(self.config)

    @property
    def multiple(self) -> int:
        """Spatial sides are padded up to a multiple of this."""
        return 2 ** (len(self.config.channel_mult) - 1)

    def forward(self, x: Tensor, noise_cond: Tensor, cond: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"UNet expects (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        if (cond is None) != (self.label is None):
            need = f"class labels (B,) in 0..{self.config.num_classes - 1}" if self.label is not None else "no labels"
            raise ValueError(f"UNet(num_classes={self.config.num_classes}) needs {need}")
        height, width = x.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        emb = self.embed(noise_cond)
        if self.label is not None:
            if self.training and self.config.label_dropout:
                # Drawn from the global RNG (seeded by train.seed): every DDP rank draws the same mask, so
                # unlike the per-example draws a run's drops depend on its process count. Moving the draw
                # into the Example changes the stream that digits_mel_cond's replay test pins (retrain then).
                drop = torch.rand(cond.shape, device=cond.device) < self.config.label_dropout
                cond = torch.where(drop, torch.full_like(cond, self.config.num_classes), cond)
            emb = emb + self.label(cond)
        h = self.conv_in(x)
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, _BlockWithAttention) else module(h)
            skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for module in self.up:
            if isinstance(module, _BlockWithAttention):
                h = module(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = module(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[..., :height, :width]


class _BlockWithAttention(nn.Module):
    def __init__(self, res: ResBlock, attn: Attention | None) -> None:
        super().__init__()
        self.res, self.attn = res, attn

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h
