"""SpecGrad's spectrally shaped prior for mel-conditioned DDPM vocoders (Koizumi et al., Interspeech 2022,
arXiv 2203.16749), `diffusion.prior.kind: spec_envelope`.

PriorGrad (`audiodiff.diffusion.prior`) scales white noise by one std per frame; SpecGrad filters it, frame by
frame, with the spectral envelope of the conditioning log-mel, so that the diffusion noise (and the residual
noise the sampler leaves at its lowest levels) has the speech's spectrum and is masked by it. The prior is
N(0, Sigma), Sigma = L L^T, L = G^+ M G with G the STFT, G^+ its inverse (iSTFT: the least-squares one) and
M = diag(H) one real filter H_f per STFT frame f:

    colour(z)   = iSTFT(H * STFT(z))        L z: training's eps, the sampler's start and every ancestral draw
    whiten(err) = iSTFT(STFT(err) / H)      about L^-1 err: the loss is |L^-1 (eps_hat - eps)| (L1) or its square

(whiten(colour(z)) is not exactly z: H * STFT(z) is not the STFT of any signal, and the iSTFT projects it onto
those that are. tests/diffusion/test_spec_envelope.py measures it on synthetic mels, egs/asterisk_en's README on
speech: the median frame within 6% at floor 0.01, the error gathered in the frames where the filter falls fast
from one frame to the next. The paper's inverse is approximate in the same way; it changes how much the loss
weighs those frames. Under the L2 loss it does not change what the loss is minimised by (the posterior mean of
eps, for any fixed invertible weighting); under the L1 loss (DiffWave's) the minimiser, a median, can move with a
weighting that mixes samples, as whiten does (PriorGrad's diagonal one leaves it).) The filter of a frame, from its raw
log-mel (whatever data.cond_scale), with the run's own MelConfig (n_fft, window, mel basis):

1. amplitude spectrum: the pseudo-inverse of the mel filterbank applied to the linear mel, clamped at 0 (as
   Griffin-Lim's start, `LogMel.mel_to_magnitude`), then at ENVELOPE_RANGE (1e-4, -80 dB) of the frame's peak,
   so bins the mels say nothing about (outside fmin..fmax) have a finite logarithm;
2. envelope E: the real cepstrum of its logarithm kept at quefrencies |q| < lifter_order (24, the paper's),
   back to a spectrum and exponentiated: the spectrum smoothed across frequency (formants, no harmonics);
3. scale: H = max(E / max(e_max, g_f), floor), g_f = sqrt(mean_k E_k^2) the envelope's RMS over the bins (the
   std per sample of white noise it filters), e_max the `max_quantile` quantile of g over the training frames,
   computed by `audiodiff train` from data.train and stored as diffusion.prior.energy_max (energy_min, the
   smallest, is stored beside it and not used): the loudest frames' noise has std 1, as N(0, I); louder frames
   are scaled down to it (PriorGrad's std is clamped at 1 the same way); `floor` bounds the filter below, in
   those units, so silence and the bins far below the envelope's peak keep some noise and whiten stays finite.

Zero phase (H real and positive), not the paper's minimum phase: the prior is Gaussian, and two filters of the
same magnitude differ by an all-pass, which maps white noise to white noise (exactly for one frame's circular
filtering), so the phase barely changes the prior's distribution; zero phase keeps whiten the exact per-bin
inverse of colour, without a cepstral phase computation, and does not delay a frame's noise against its mel frame
(a minimum-phase filter's energy comes at its start, a causal delay). It also keeps L symmetric (L = L^T, so
Sigma = L^2) where the window's squared overlap-add is constant (the iSTFT divides by it): Hann at hop n_fft / 4
(speech16k, hifigan, diffwave), away from a clip's first and last n_fft samples (the STFT's reflect padding);
not at speech8k's hop n_fft / 2 (L - L^T is 12% of L there, for a random filter).

Frames: the STFT is centred (torch.stft center=True), with the mel's n_fft, hop, win_length and Hann window, so
the noise's STFT frame k is centred on sample k*hop as mel frame k is. A vocoder's F mel frames cover F * hop
samples (the last, centred frame of its clip is dropped: `VocoderTask.features`), whose STFT has F + 1 frames:
the last takes frame F - 1's filter. A training crop of data.segment samples and its segment / hop mel frames
therefore line up as a whole utterance does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from audiodiff.audio.features import LogMel, MelConfig, log_to_linear

ENVELOPE_RANGE = 1e-4  # step 1's clamp: a frame's amplitude spectrum is kept within -80 dB of its peak


def spectral_envelope(features: Tensor, logmel: LogMel, lifter_order: int) -> Tensor:
    """The cepstrally smoothed amplitude envelope E (B, n_fft // 2 + 1, frames) of log-mels (B, n_mels, frames).

    Steps 1 and 2 of the module docstring: pinv(mel basis) @ linear mel, clamped; its real cepstrum kept at
    quefrencies |q| < lifter_order; back to the log spectrum and exponentiated.
    """
    cfg = logmel.config
    mag = logmel.mel_to_magnitude(log_to_linear(features, cfg))
    tiny = torch.finfo(mag.dtype).tiny
    peak = mag.amax(-2, keepdim=True)
    log_mag = torch.maximum(mag, peak * ENVELOPE_RANGE).clamp_min(tiny).log()
    cepstrum = torch.fft.irfft(log_mag, n=cfg.n_fft, dim=-2)  # real and even: c[q] = c[n_fft - q]
    quefrency = torch.arange(cfg.n_fft, device=mag.device)
    keep = (quefrency < lifter_order) | (quefrency > cfg.n_fft - lifter_order)
    return torch.fft.rfft(cepstrum * keep[:, None].to(mag.dtype), dim=-2).real.exp()


def envelope_gain(envelope: Tensor) -> Tensor:
    """g_f = sqrt(mean_k E_fk^2), the RMS over the bins of an envelope (B, bins, frames) -> (B, frames)."""
    return envelope.square().mean(-2).sqrt()


def envelope_filter(envelope: Tensor, energy_max: float, floor: float) -> Tensor:
    """Step 3 of the module docstring: H = max(E / max(e_max, g_f), floor) of an envelope (B, bins, frames)."""
    return (envelope / envelope_gain(envelope)[:, None].clamp_min(energy_max)).clamp_min(floor)


def envelope_gains(features: Iterable[Tensor], mel: MelConfig, lifter_order: int) -> Iterable[Tensor]:
    """The envelope RMS g (B, frames) of each log-mel batch (B, n_mels, frames), in float64: what
    `audiodiff train` takes the training range of (`audiodiff.diffusion.prior.frame_range`)."""
    logmel = None
    for feats in features:
        if logmel is None:
            logmel = LogMel(mel).to(feats.device)
        yield envelope_gain(spectral_envelope(feats.double(), logmel, lifter_order))


@dataclass(frozen=True)
class FilteredNoise:
    """The `NoiseOperator` of SpecGrad's prior for one batch: L = iSTFT diag(H) STFT (module docstring).

    Args:
        filt: H (B, n_fft // 2 + 1, stft_frames), real and positive.
        logmel: the LogMel of the run's mels: its n_fft, hop, win_length and window are the STFT's.
    """

    filt: Tensor
    logmel: LogMel

    def colour(self, z: Tensor) -> Tensor:
        return self._filter(z, self.filt)

    def whiten(self, err: Tensor) -> Tensor:
        return self._filter(err, self.filt.reciprocal())

    def _filter(self, x: Tensor, gain: Tensor) -> Tensor:
        """iSTFT(gain * STFT(x)) of x (B, C, T), each channel by its row's gain; half precision runs in float32."""
        cfg, length = self.logmel.config, x.shape[-1]
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        window = self.logmel.window.to(work.device, work.dtype)
        stft = {"n_fft": cfg.n_fft, "hop_length": cfg.hop, "win_length": cfg.win_length, "window": window}
        spec = torch.stft(work.reshape(-1, length), **stft, return_complex=True)
        spec = spec.unflatten(0, x.shape[:-1])
        if spec.shape[-1] != gain.shape[-1] or spec.shape[0] != gain.shape[0]:
            raise ValueError(
                f"spec_envelope prior: noise {tuple(x.shape)} has {spec.shape[-1]} STFT frames (hop {cfg.hop}), its "
                f"filter {tuple(gain.shape)} is for {gain.shape[-1]} (a condition of {gain.shape[-1] - 1} mel frames "
                f"covers {(gain.shape[-1] - 1) * cfg.hop} samples)"
            )
        spec = spec * append_channels(gain.to(work.dtype), spec.ndim)
        out = torch.istft(spec.flatten(0, -3), **stft, length=length)
        return out.reshape(x.shape).to(x.dtype)


def append_channels(gain: Tensor, ndim: int) -> Tensor:
    """(B, bins, frames) -> (B, 1, ..., bins, frames) to broadcast over the channel axes of an STFT of `ndim` axes."""
    return gain.reshape(gain.shape[0], *([1] * (ndim - 3)), *gain.shape[1:])


class SpecEnvelopePrior(nn.Module):
    """Condition (B, n_mels, frames) -> SpecGrad's filter H (B, n_fft // 2 + 1, frames); `operator` binds it.

    Args:
        mel: the log-mel settings of the condition (its STFT, mel basis, log scale and power).
        energy_max: e_max, the training frames' envelope RMS (their `max_quantile` quantile).
        floor: the smallest filter magnitude, in units where a frame of envelope RMS e_max has RMS 1.
        lifter_order: quefrencies |q| < lifter_order of the log spectrum's cepstrum are kept.
        to_features: the condition -> its raw log-mels (the inverse of data.cond_scale).
    """

    def __init__(self, mel: MelConfig, energy_max: float, floor: float, lifter_order: int, to_features) -> None:
        super().__init__()
        self.logmel, self.to_features = LogMel(mel), to_features
        self.energy_max, self.floor, self.lifter_order = float(energy_max), float(floor), int(lifter_order)

    def forward(self, cond: Tensor) -> Tensor:
        # float32 with autocast off: under bf16 autocast (train.bf16, train.fast_cpu) the mel basis's
        # pseudo-inverse would multiply in bf16, and training's filter would differ from generation's
        with torch.autocast(cond.device.type, enabled=False):
            features = self.to_features(cond)
            if features.dtype in (torch.float16, torch.bfloat16):
                features = features.float()
            envelope = spectral_envelope(features, self.logmel, self.lifter_order)
            return envelope_filter(envelope, self.energy_max, self.floor)

    def operator(self, cond: Tensor) -> FilteredNoise:
        """The prior for a batch condition: white noise filtered by H, the last STFT frame by the last mel frame's."""
        filt = self(cond)
        return FilteredNoise(torch.cat([filt, filt[..., -1:]], -1), self.logmel)
