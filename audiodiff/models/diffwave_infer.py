"""A fast inference path for a trained DiffWave on CPUs: the same function, computed cache-friendly.

`DiffWave.forward` runs each residual layer over the whole clip (a dilated Conv1d, the gate, a
1x1 Conv1d, each writing a full-length (B, 2C, T) tensor), so on a CPU a 1 s clip streams
hundreds of MB through memory per network call and the elementwise work costs about as much as
the convolutions. `DiffWaveInference` computes the same network time-major, in time tiles: per
layer and tile, the dilated convolution is three matrix products over shifted row windows of a
zero-padded (T, C) buffer, and the gate and both halves of the 1x1 output run while the tile is
in cache; the skip sum is accumulated by the output matrix product itself. Exact rewrites only:
  - the step projection and the residual-path biases are constants per channel: they are folded
    into the dilated convolution's bias (corrected at the zero-padded edges), and the conv bias
    into the mel projection;
  - tanh(f) = 2 sigmoid(2 f) - 1, so one sigmoid covers both halves of the gate; the factors,
    the 1/sqrt(2) residual scale, 1/sqrt(layers) and the skip biases go into the weights.
Outputs equal `DiffWave.forward` to float rounding (tests/models/test_diffwave_infer.py); on a
2-core CPU a DiffWave-base call on 1 s of audio takes about half the time of the eager module
(bench/sampling.py). Inference only, and a snapshot of the weights: build it again after
changing them. `audiodiff.generate.sample` uses it for every DiffWave on a CPU.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from audiodiff.models.diffwave import DiffWave, upsample_condition


class DiffWaveInference:
    """`engine(x, t, cond) -> (B, 1, T)`, the same as `net(x, t, cond)`, without autograd.

    Args:
        net: a DiffWave (its weights are copied, folded, at construction).
        tile: time samples per tile (2048 keeps a layer's per-tile work in a 512 KiB L2 at C = 64).

    `cond` is None (unconditional), a mel (B, n_mels, frames), or `engine.project_condition(mel)`
    (B, layers, T, 2C), computed once per utterance and reused at every sampling step.
    """

    def __init__(self, net: DiffWave, tile: int = 2048) -> None:
        if not isinstance(net, DiffWave):
            raise TypeError(f"DiffWaveInference needs a DiffWave, got {type(net).__name__}")
        if tile < 1:
            raise ValueError(f"DiffWaveInference: tile must be >= 1, got {tile}")
        self.tile = tile
        self.config = cfg = net.config
        c, n = cfg.channels, len(net.layers)
        self.dilations = [layer.dilated.dilation[0] for layer in net.layers]
        self.pad = max(self.dilations)
        with torch.no_grad():
            p = next(net.parameters())
            gate = torch.ones(2 * c, dtype=p.dtype, device=p.device)
            gate[c:] = 2  # tanh(f) = 2 sigmoid(2f) - 1: the filter half's pre-activation doubled
            # (L, 3, C, 2C): tap k of layer l multiplies x[t + (k - 1) d]; each (C, 2C) slice is contiguous
            self.taps = torch.stack(
                [(layer.dilated.weight * gate[:, None, None]).permute(2, 1, 0) for layer in net.layers]
            )
            conv_bias = torch.stack([layer.dilated.bias * gate for layer in net.layers])  # (L, 2C)
            if cfg.n_mels:
                projs = [layer.cond_proj for layer in net.layers]
                self.cond_weight = [(proj.weight[:, :, 0] * gate[:, None]).T.contiguous() for proj in projs]
                self.cond_bias = [proj.bias * gate + conv_bias[i] for i, proj in enumerate(projs)]
                self.bias = torch.zeros_like(conv_bias)
            else:
                self.bias = conv_bias
            # the gate computes z/2 = sigmoid(g) (sigmoid(2f) - 1/2): the output weights take the 2
            out_w = [layer.out_proj.weight[:, :, 0] for layer in net.layers]
            self.res_weight = [(w[:c] * (2 / math.sqrt(2))).T.contiguous() for w in out_w]
            self.skip_weight = [(w[c:] * 2).T.contiguous() for w in out_w]
            # constant offsets of the residual stream from the residual biases: h_l = h~_l + offset_l
            offsets, o = [], torch.zeros(c, dtype=p.dtype, device=p.device)
            for layer in net.layers:
                offsets.append(o)
                o = (o + layer.out_proj.bias[:c]) / math.sqrt(2)
            self.offsets = torch.stack(offsets)  # (L, C)
            self.step_weight = torch.cat([layer.step_proj.weight for layer in net.layers])  # (L C, E)
            self.step_bias = torch.cat([layer.step_proj.bias for layer in net.layers])
            skip_bias = sum(layer.out_proj.bias[c:] for layer in net.layers)
            k = 1 / math.sqrt(n)
            self.head_weight = (net.skip_out.weight[:, :, 0] * k).T.contiguous()
            self.head_bias = net.skip_out.bias + net.skip_out.weight[:, :, 0] @ skip_bias * k
            self.in_weight, self.in_bias = net.inp.weight[:, 0, 0].clone(), net.inp.bias.clone()
            self.out_weight, self.out_bias = net.out.weight[:, :, 0].T.clone(), net.out.bias.clone()
            self.step_embed = copy.deepcopy(net.step_embed)
            self.upsampler = copy.deepcopy(net.upsampler)

    @torch.no_grad()
    def project_condition(self, mel: Tensor) -> Tensor:
        """(B, n_mels + wave_cond * hop, frames) -> every layer's folded projection, time-major (B, layers, T, 2C)."""
        if not self.config.n_mels:
            raise ValueError("project_condition needs a mel-conditioned DiffWave (n_mels > 0)")
        up = upsample_condition(self.upsampler, mel, self.config).transpose(1, 2)  # (B, T, n_mels + wave_cond)
        b, t = up.shape[:2]
        out = up.new_empty(b, len(self.taps), t, 2 * self.config.channels)
        for i in range(b):
            for j, (w, bias) in enumerate(zip(self.cond_weight, self.cond_bias)):
                torch.addmm(bias, up[i], w, out=out[i, j])
        return out

    @torch.no_grad()
    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        cfg, c, n = self.config, self.config.channels, len(self.taps)
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"DiffWaveInference: x must be (B, 1, T), got {tuple(x.shape)}")
        if (cond is None) != (cfg.n_mels == 0):
            need = "a mel condition (B, n_mels, frames)" if cfg.n_mels else "no condition"
            raise ValueError(f"DiffWave(n_mels={cfg.n_mels}) needs {need}")
        batch, length = x.shape[0], x.shape[-1]
        if cond is not None:
            if cond.ndim == 3:
                cond = self.project_condition(cond)
            if cond.ndim != 4 or tuple(cond.shape) != (batch, n, length, 2 * c):
                raise ValueError(
                    f"DiffWaveInference: cond must be a mel or project_condition(mel) of shape "
                    f"{(batch, n, length, 2 * c)}, got {tuple(cond.shape)}"
                )
        emb = self.step_embed(t)
        # per example and layer: the constant input u = step projection + residual offset, and
        # its products with the three taps (the bias, and the edge corrections where taps see padding)
        u = (emb @ self.step_weight.T + self.step_bias).view(batch, n, c) + self.offsets
        const = torch.einsum("blc,lkco->blko", u, self.taps)  # (B, L, 3, 2C)
        bias = const.sum(2) + self.bias  # (B, L, 2C)
        out = x.new_empty(batch, 1, length)
        buf = x.new_zeros(2, length + 2 * self.pad, c)
        skip = x.new_empty(length, c)
        lo, hi = self.pad, self.pad + length
        for b in range(batch):
            cur = 0
            torch.addmm(self.in_bias, x[b, 0, :, None], self.in_weight[None], out=buf[cur, lo:hi]).relu_()
            for i, d in enumerate(self.dilations):
                src, dst = buf[cur], buf[1 - cur, lo:hi]
                w0, w1, w2 = self.taps[i]
                for a in range(0, length, self.tile):
                    e = min(a + self.tile, length)
                    if cond is None:
                        y = torch.addmm(bias[b, i], src[lo + a - d : lo + e - d], w0)
                    else:
                        y = torch.addmm(cond[b, i, a:e], src[lo + a - d : lo + e - d], w0).add_(bias[b, i])
                    y.addmm_(src[lo + a : lo + e], w1).addmm_(src[lo + a + d : lo + e + d], w2)
                    if a < d:  # rows whose left tap reads the zero padding
                        y[: d - a] -= const[b, i, 0]
                    if e > length - d:  # rows whose right tap reads the zero padding
                        y[max(length - d - a, 0) :] -= const[b, i, 2]
                    y = y.sigmoid_()
                    z = y[:, c:].sub_(0.5).mul_(y[:, :c])
                    if i < n - 1:  # the last layer's residual output is never used
                        torch.addmm(src[lo + a : lo + e], z, self.res_weight[i], beta=1 / math.sqrt(2), out=dst[a:e])
                    if i == 0:
                        torch.mm(z, self.skip_weight[i], out=skip[a:e])
                    else:
                        skip[a:e].addmm_(z, self.skip_weight[i])
                cur = 1 - cur
            h = torch.relu(torch.addmm(self.head_bias, skip, self.head_weight))
            out[b, 0] = torch.addmm(self.out_bias, h, self.out_weight)[:, 0]
        return out
