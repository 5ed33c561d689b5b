"""Embedders behind published FAD numbers: VGGish, PANNs Cnn14 (16 kHz), EnCodec (24 kHz), LAION-CLAP.

VGGish, Cnn14 and the EnCodec encoder are defined here and receive the published weights under
their original parameter names (tests check the name/shape mapping with state dicts they build).
CLAP (an HTS-AT Swin transformer) goes through Hugging Face `transformers` (optional dependency).

Weights are found as `audiodiff.eval.weights` says (the path given, the cache, the official URL).
Each embedder gives one vector per file: the mean over its frames
(VGGish 0.96 s examples, Cnn14 clip-level, EnCodec 75 Hz frames, CLAP clip-level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from audiodiff.audio.mel import mel_filterbank
from audiodiff.eval.weights import Published


def _fixed_length(wavs: Sequence[Tensor], minimum: int) -> list[Tensor]:
    return [w.float() if w.shape[-1] >= minimum else F.pad(w.float(), (0, minimum - w.shape[-1])) for w in wavs]


# ------------------------------------------------------------------------------------------ VGGish


def vggish_mel_matrix(sample_rate=16000, n_fft=512, n_mels=64, fmin=125.0, fmax=7500.0) -> Tensor:
    """VGGish's mel matrix (n_fft//2+1, n_mels): HTK mel, triangles in the mel domain, DC row zeroed."""

    def hz_to_mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    bins_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rise = (bins_mel[:, None] - lower) / (center - lower)
    fall = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rise, fall))
    weights[0, :] = 0.0
    return torch.from_numpy(weights)


class VGGish(nn.Module):
    """VGGish (torchvggish parameter names): (B, 1, 96, 64) log-mel examples -> (B, 128).

    The embedding layer is linear, as TF's vggish_slim (fc2, activation_fn=None) and the
    frechet-audio-distance package; torchvggish 0.2 still applies a ReLU after it.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for item in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(prev, item, 3, padding=1), nn.ReLU(inplace=True)]
                prev = item
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # TF (NHWC) flattening order, as the released weights expect
        return self.embeddings(x)


class VGGishEmbedder(Published):
    """VGGish (torchvggish port of the AudioSet model): the mean of its 128-d vectors over 0.96 s examples."""

    name, version, sample_rate, dim = "vggish", "torchvggish-10086976", 16000, 128
    FILE, SHA256 = "vggish-10086976.pth", "10086976"
    URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        super().__init__(weights, device)
        self.window = torch.hann_window(400, periodic=True, dtype=torch.float64)
        self.mel = vggish_mel_matrix()

    def network(self) -> nn.Module:
        return VGGish()

    def examples(self, wav: Tensor) -> Tensor:
        """(T,) at 16 kHz -> (n, 1, 96, 64) log-mel examples (25 ms windows, 10 ms hop, 0.96 s, no overlap)."""
        wav = wav.double()
        frames = wav.unfold(0, 400, 160) * self.window  # (F, 400), no centring (as vggish_input)
        spec = torch.fft.rfft(frames, 512).abs()
        logmel = torch.log(spec @ self.mel + 0.01)
        n = max(1, logmel.shape[0] // 96)
        if logmel.shape[0] < 96:
            logmel = F.pad(logmel, (0, 0, 0, 96 - logmel.shape[0]), value=math.log(0.01))
        return logmel[: n * 96].reshape(n, 1, 96, 64).float()

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        out = []
        for w in _fixed_length(wavs, 400):
            out.append(self.net(self.examples(w).to(self.device)).mean(0).cpu().numpy())
        return np.stack(out)


# -------------------------------------------------------------------------------- PANNs Cnn14 16k


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, pool: int) -> Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """PANNs Cnn14 (audioset_tagging_cnn parameter names): (B, 1, frames, 64) log-mel -> (B, 2048).

    The clip embedding is ReLU(fc1(max_t + mean_t)) of the frequency-averaged block-6 maps, with no
    smoothing over time (that 3-frame max+avg pooling belongs to the DecisionLevel variants).
    """

    def __init__(self, classes: int = 527) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(64)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)

    def forward(self, logmel: Tensor) -> Tensor:
        x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, 2 if i < 5 else 1)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        return F.relu(self.fc1(x))


class PANNEmbedder(Published):
    """PANNs Cnn14 (16 kHz): its 2048-d clip-level embedding."""

    # "-2": the embedding lost a time smoothing that the reference Cnn14 does not have (cache key).
    name, version, sample_rate, dim = "pann", "cnn14-16k-mAP0.438-2", 16000, 2048
    FILE = "Cnn14_16k_mAP=0.438.pth"
    URL = "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        self.window = torch.hann_window(512)
        self.fb = mel_filterbank(16000, 512, 64, 50.0, 8000.0)
        super().__init__(weights, device)

    def network(self) -> nn.Module:
        return Cnn14()

    def state(self, full: dict, path: Path) -> dict:
        """Cnn14's weights; the checkpoint's mel matrix (torchlibrosa's) must be our filterbank."""
        mel_w = full.get("logmel_extractor.melW")
        if mel_w is not None and not torch.allclose(mel_w.float().T, self.fb, rtol=1e-4, atol=1e-6):
            raise ValueError(f"embedder 'pann': {path} uses another mel filterbank than Cnn14 16 kHz")
        return {k: v for k, v in full.items() if not k.startswith(("spectrogram_", "logmel_"))}

    def logmel(self, wav: Tensor) -> Tensor:
        """(T,) -> (1, frames, 64): power mel in dB (10 log10, floor 1e-10), as torchlibrosa."""
        spec = torch.stft(wav, 512, 160, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        mel = self.fb @ spec.abs().square()
        return (10 * torch.log10(mel.clamp_min(1e-10))).T[None]

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        out = []
        for w in _fixed_length(wavs, 16000 // 2):  # at least 32 frames survive the five 2x poolings
            out.append(self.net(self.logmel(w)[None].to(self.device))[0].cpu().numpy())
        return np.stack(out)


# ---------------------------------------------------------------------------------- EnCodec 24 kHz


class _WNConv1d(nn.Module):
    """A weight-normalised Conv1d holding weight_g / weight_v as the released checkpoint does."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(c_out, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(c_out, c_in, kernel) / math.sqrt(c_in * kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.stride, self.dilation = stride, dilation

    def forward(self, x: Tensor) -> Tensor:
        v = self.weight_v
        w = self.weight_g * v / v.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        return F.conv1d(x, w, self.bias, self.stride, dilation=self.dilation)


class _SConv1d(nn.Module):
    """EnCodec's streamable conv: causal reflect padding plus the extra padding for whole frames."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Module()
        self.conv.conv = _WNConv1d(c_in, c_out, kernel, stride, dilation)
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def forward(self, x: Tensor) -> Tensor:
        k = (self.kernel - 1) * self.dilation + 1
        total = k - self.stride
        length = x.shape[-1]
        frames = (length - k + total) / self.stride + 1
        extra = (math.ceil(frames) - 1) * self.stride + (k - total) - length
        pad = (total, extra)
        if length <= max(pad):  # reflect needs the input longer than the padding
            x = F.pad(x, (0, max(pad) - length + 1))
            x = F.pad(x, pad, mode="reflect")[..., : length + total + extra]
        else:
            x = F.pad(x, pad, mode="reflect")
        return self.conv.conv(x)


class _ResBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = dim // 2
        self.block = nn.Sequential(nn.ELU(), _SConv1d(dim, hidden, 3), nn.ELU(), _SConv1d(hidden, dim, 1))
        self.shortcut = _SConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class _SLSTM(nn.Module):
    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x: Tensor) -> Tensor:
        y = x.permute(2, 0, 1)
        out, _ = self.lstm(y)
        return (out + y).permute(1, 2, 0)


class EncodecEncoder(nn.Module):
    """SEANet encoder of EnCodec 24 kHz (causal, weight norm; `encoder.*` names of the checkpoint).

    (B, 1, T) at 24 kHz -> (B, 128, ceil(T / 320)) latent frames (75 Hz), before quantisation.
    """

    def __init__(self, filters: int = 32, dimension: int = 128, ratios=(2, 4, 5, 8)) -> None:
        super().__init__()
        mods: list[nn.Module] = [_SConv1d(1, filters, 7)]
        mult = 1
        for r in ratios:
            mods += [_ResBlock(mult * filters), nn.ELU(), _SConv1d(mult * filters, mult * filters * 2, 2 * r, r)]
            mult *= 2
        mods += [_SLSTM(mult * filters), nn.ELU(), _SConv1d(mult * filters, dimension, 7)]
        self.model = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class EncodecEmbedder(Published):
    """The EnCodec 24 kHz encoder: the mean of its 128-d latent frames (75 Hz) over the clip."""

    name, version, sample_rate, dim = "encodec", "encodec-24khz-d7cc33bc", 24000, 128
    FILE, SHA256 = "encodec_24khz-d7cc33bc.th", "d7cc33bc"
    URL = "https://dl.fbaipublicfiles.com/encodec/v0/encodec_24khz-d7cc33bc.th"

    def network(self) -> nn.Module:
        return EncodecEncoder()

    def state(self, full: dict, path: Path) -> dict:
        """The encoder's weights of the full codec's."""
        return {k[len("encoder.") :]: v for k, v in full.items() if k.startswith("encoder.")}

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        return np.stack([self.net(w[None, None].to(self.device))[0].mean(-1).cpu().numpy() for w in wavs])


# ------------------------------------------------------------------------------------- LAION-CLAP


class ClapEmbedder:
    """LAION-CLAP audio embeddings (512-d, unit norm, 48 kHz) through `transformers` (ClapModel).

    Only the feature extractor (preprocessor_config.json) is loaded besides the model: no tokenizer.
    A clip longer than the model's 10 s is embedded as the mean over 10 s windows (hop 10 s, the last
    one ending at the clip's end), not the feature extractor's unseeded random 10 s crop, so a file
    always gets the same vector; shorter clips are repeat-padded to 10 s as LAION-CLAP does.
    """

    name, sample_rate, dim = "clap", 48000, 512
    MODEL = "laion/clap-htsat-unfused"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        try:
            from transformers import ClapFeatureExtractor, ClapModel
        except ImportError:
            raise ImportError(
                "embedder 'clap' needs Hugging Face transformers: pip install 'audiodiff[eval]' "
                f"(weights: {self.MODEL} from the Hub cache, or --embedder-weights DIR)"
            ) from None
        source = str(weights) if weights else self.MODEL
        try:
            self.model = ClapModel.from_pretrained(source).to(device).eval()
            self.features = ClapFeatureExtractor.from_pretrained(source)
        except OSError as err:
            raise FileNotFoundError(
                f"embedder 'clap': cannot load {source} ({str(err).splitlines()[0]}); download it with "
                f"`huggingface-cli download {self.MODEL}` or pass --embedder-weights DIR"
            ) from None
        self.version = f"{Path(source).name}-win10s"
        self.device = device

    def windows(self, wav: Tensor) -> list[Tensor]:
        """(T,) -> 10 s windows covering the clip (the clip itself when it is not longer)."""
        n = self.features.nb_max_samples
        if wav.shape[-1] <= n:
            return [wav]
        starts = list(range(0, wav.shape[-1] - n + 1, n))
        if starts[-1] != wav.shape[-1] - n:
            starts.append(wav.shape[-1] - n)
        return [wav[s : s + n] for s in starts]

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        per_file = [self.windows(w) for w in wavs]
        clips = [c.numpy() for windows in per_file for c in windows]
        inputs = self.features(clips, sampling_rate=48000, return_tensors="pt")
        out = self.model.get_audio_features(**{k: v.to(self.device) for k, v in inputs.items()})
        feats = (out if isinstance(out, Tensor) else out.pooler_output).cpu()  # transformers 5: a ModelOutput
        return np.stack([chunk.mean(0).numpy() for chunk in feats.split([len(w) for w in per_file])])
