"""A plain eager DiffWave and its fast sampler, the speed reference for bench/sampling.py.

Written the straightforward way (as the DiffWave paper describes the network, with
lmnt-com/diffwave's parameter names), with no caching, compilation or mixed precision: what a
user's own implementation would do. Weights come from an audiodiff DiffWave through
`audiodiff.models.lmnt.ours_to_lmnt`, so the two produce the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Embedding(nn.Module):
    def __init__(self, max_steps: int) -> None:
        super().__init__()
        steps = torch.arange(max_steps).unsqueeze(1).float()
        dims = torch.arange(64).unsqueeze(0).float()
        table = steps * 10.0 ** (dims * 4.0 / 63.0)
        self.register_buffer("embedding", torch.cat([table.sin(), table.cos()], 1), persistent=False)
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    def forward(self, t):
        low = t.floor().long()
        high = (low + 1).clamp(max=self.embedding.shape[0] - 1)
        x = torch.lerp(self.embedding[low], self.embedding[high], (t - low).unsqueeze(1))
        return F.silu(self.projection2(F.silu(self.projection1(x))))


class Upsampler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])

    def forward(self, mel):
        x = F.leaky_relu(self.conv1(mel.unsqueeze(1)), 0.4)
        return F.leaky_relu(self.conv2(x), 0.4).squeeze(1)


class Residual(nn.Module):
    def __init__(self, n_mels: int, channels: int, dilation: int) -> None:
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, channels)
        self.conditioner_projection = nn.Conv1d(n_mels, 2 * channels, 1)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x, step, cond):
        y = x + self.diffusion_projection(step).unsqueeze(-1)
        y = self.dilated_conv(y) + self.conditioner_projection(cond)
        gate, filt = torch.chunk(y, 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class ReferenceDiffWave(nn.Module):
    def __init__(self, layers: int = 30, channels: int = 64, cycle: int = 10, n_mels: int = 80, steps: int = 50):
        super().__init__()
        self.input_projection = nn.Conv1d(1, channels, 1)
        self.diffusion_embedding = Embedding(steps)
        self.spectrogram_upsampler = Upsampler()
        self.residual_layers = nn.ModuleList(Residual(n_mels, channels, 2 ** (i % cycle)) for i in range(layers))
        self.skip_projection = nn.Conv1d(channels, channels, 1)
        self.output_projection = nn.Conv1d(channels, 1, 1)

    def forward(self, audio, t, mel):
        x = F.relu(self.input_projection(audio))
        step = self.diffusion_embedding(t)
        cond = self.spectrogram_upsampler(mel)
        skips = []
        for layer in self.residual_layers:
            x, skip = layer(x, step, cond)
            skips.append(skip)
        x = sum(skips) / math.sqrt(len(self.residual_layers))
        return self.output_projection(F.relu(self.skip_projection(x)))


@torch.no_grad()
def reference_fast_sample(model, mel, train_betas, infer_betas, hop: int = 256):
    """DiffWave's fast sampling (Algorithm 2) in VP space, the straightforward way."""
    talpha_cum = torch.cumprod(1 - torch.as_tensor(train_betas, dtype=torch.float64), 0)
    beta = torch.as_tensor(infer_betas, dtype=torch.float64)
    alpha, alpha_cum = 1 - beta, torch.cumprod(1 - beta, 0)
    steps = []
    for s in range(len(beta)):
        for t in range(len(talpha_cum) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                hi, lo = talpha_cum[t].sqrt(), talpha_cum[t + 1].sqrt()
                steps.append(t + ((hi - alpha_cum[s].sqrt()) / (hi - lo)).item())
                break
    audio = torch.randn(mel.shape[0], 1, hop * mel.shape[-1], device=mel.device)
    for n in reversed(range(len(beta))):
        t = torch.full((mel.shape[0],), steps[n], device=mel.device)
        eps = model(audio, t, mel)
        audio = (audio - float(beta[n] / (1 - alpha_cum[n]).sqrt()) * eps) / float(alpha[n].sqrt())
        if n > 0:
            sigma = float(((1 - alpha_cum[n - 1]) / (1 - alpha_cum[n]) * beta[n]).sqrt())
            audio = audio + sigma * torch.randn_like(audio)
    return audio.clamp(-1, 1)
