"""Audio tasks: unconditional waveforms, mel-conditioned vocoding, and log-mel spectrograms."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from audiodiff.audio.features import LogMel, display_logmel, griffin_lim, mel_config
from audiodiff.audio.io import load_audio, save_audio
from audiodiff.data.datasets import AudioClips, DiffusionExamples, list_audio
from audiodiff.data.kaldi import label_names, read_labels
from audiodiff.models.diffwave import pack_waveform, unpack_waveform
from audiodiff.tasks.base import Job, Task

# data.cond_waveform -> the sample-rate channels it adds to a vocoder's condition (model.diffwave.wave_cond)
COND_WAVEFORMS = {"none": 0, "griffin_lim": 1}


def wave_cond_channels(cfg) -> int:
    """model.diffwave.wave_cond as data.cond_waveform sets it: the sample-rate channels of the condition.

    Raises:
        ValueError: data.cond_waveform other than "none" on a task other than vocoder, or
            model.diffwave.wave_cond set to another value than 0 or that one.
    """
    kind, given = cfg.data.cond_waveform, cfg.model.diffwave.wave_cond
    if kind not in COND_WAVEFORMS:
        raise ValueError(f"data.cond_waveform={kind!r} is not allowed; choose one of {list(COND_WAVEFORMS)}")
    if kind != "none" and cfg.task != "vocoder":
        raise ValueError(
            f"data.cond_waveform={kind} adds a waveform made from a vocoder's mels to its condition: "
            f"it needs task=vocoder, got task={cfg.task}"
        )
    if given not in (0, COND_WAVEFORMS[kind]):
        raise ValueError(
            f"model.diffwave.wave_cond={given} does not fit data.cond_waveform={kind} ({COND_WAVEFORMS[kind]} "
            "channels); leave wave_cond out, data.cond_waveform sets it"
        )
    return COND_WAVEFORMS[kind]


def mel_to_unit(features: Tensor, mel_range) -> Tensor:
    """Log-mel features -> model space: the range [lo, hi] maps to [-1, 1]."""
    lo, hi = mel_range
    return (features - lo) * (2 / (hi - lo)) - 1


def unit_to_mel(x: Tensor, mel_range) -> Tensor:
    """Inverse of `mel_to_unit`."""
    lo, hi = mel_range
    return (x + 1) * ((hi - lo) / 2) + lo


def vocoder_input(path: Path, mel) -> Tensor:
    """A clip (T,) read at the mel preset's rate and cut to whole hops, as a vocoder's mels are taken.

    Raises:
        ValueError: the cut clip is shorter than one STFT frame (mel.n_fft samples), too short for
            log-mels (training audits such clips out the same way).
    """
    wav = load_audio(path, mel.sample_rate)
    wav = wav[: wav.shape[0] // mel.hop * mel.hop]
    if wav.shape[0] < mel.n_fft:
        raise ValueError(
            f"{path}: {wav.shape[0]} samples in whole hops of {mel.hop}, shorter than one STFT frame "
            f"({mel.n_fft} samples at {mel.sample_rate} Hz): too short to take its mels"
        )
    return wav


def vocoder_condition(features: Tensor, data, logmel: LogMel | None = None) -> Tensor:
    """Log-mels (B, n_mels, frames) -> a vocoder's condition, as `data.cond_scale` and `data.cond_waveform` say.

    cond_scale "raw": as computed (lmnt-com/diffwave's convention; its db_unit mels already lie in
    [0, 1]); "mel_range": mapped by `data.mel_range` to [-1, 1], as the mel task's model space
    (natural-log mels span about -11.5..2.5 and would otherwise enter the upsampler unscaled).
    cond_waveform "griffin_lim": the mels' `condition_waveform` packed behind them
    (`pack_waveform`: (B, n_mels + hop, frames)); `logmel` is the LogMel of `data.mel_preset`
    (built when not given).
    """
    cond = mel_to_unit(features, data.mel_range) if data.cond_scale == "mel_range" else features
    if data.cond_waveform == "none":
        return cond
    logmel = logmel or LogMel(mel_config(data.mel_preset, sample_rate=data.sample_rate)).to(features.device)
    return pack_waveform(cond, condition_waveform(logmel, features, data)[:, None], logmel.config.hop)


def vocoder_features(cond: Tensor, data) -> Tensor:
    """Inverse of `vocoder_condition`: a vocoder's condition -> its log-mels (as computed), the
    waveform channels of data.cond_waveform left out."""
    if data.cond_waveform != "none":
        mel = mel_config(data.mel_preset, sample_rate=data.sample_rate)
        cond = unpack_waveform(cond, mel.n_mels, mel.hop)[0]
    return unit_to_mel(cond, data.mel_range) if data.cond_scale == "mel_range" else cond


@torch.no_grad()
def condition_waveform(logmel: LogMel, features: Tensor, data) -> Tensor:
    """The Griffin-Lim waveform (B, frames * hop) of a vocoder's log-mels (B, n_mels, frames), as
    `data.cond_griffin_lim` says (iters, momentum, seed): a parameter-free function of the mels alone.

    A vocoder's frames are one per hop (the last, centred STFT frame of its clip is dropped), so
    the last frame is repeated once and the inversion cut to frames * hop samples. The initial
    phase is drawn, for each row on its own, from a generator seeded with `seed` at every call: the
    same mels give the same waveform, in any batch (a training crop gets what it would get alone, as
    generation computes it, and a mel model's samples vocoded in one batch do not depend on each other).
    Training crops are inverted without the context around them; generation inverts each whole utterance.
    """
    gl = data.cond_griffin_lim
    padded = torch.cat([features, features[..., -1:]], dim=-1)
    generator = [torch.Generator(features.device).manual_seed(gl.seed) for _ in range(features.shape[0])]
    length = features.shape[-1] * logmel.config.hop
    return griffin_lim(logmel, padded, gl.iters, gl.momentum, length=length, generator=generator)


def spectrogram_grid(audios: list[Tensor], sample_rate: int, path: Path, titles: list[str]) -> None:
    """Save log-mel spectrograms of up to 16 clips as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logmel = display_logmel(sample_rate)
    n = min(len(audios), 16)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, audio, title in zip(axes.flat, audios[:n], titles):
        ax.imshow(logmel(audio.reshape(1, -1).float().cpu())[0].numpy(), origin="lower", aspect="auto")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class AudioTask(Task):
    """Shared by the audio tasks: clips of data.train, audio outputs at data.sample_rate."""

    suffix = ".wav"

    def __init__(self, cfg, device="cpu", **options) -> None:
        super().__init__(cfg, device, **options)
        self.mel = mel_config(cfg.data.mel_preset, sample_rate=cfg.data.sample_rate)
        self.sample_rate, self.segment = cfg.data.sample_rate, cfg.data.segment

    def noise_shape(self) -> tuple[int, ...]:
        """Shape of a training example's diffusion noise (the model input)."""
        return self.shape()

    def examples(self):
        d = self.cfg.data
        seconds = self.mel.n_fft / self.mel.sample_rate  # audited up front; shorter than one STFT frame is unusable
        self.clips = AudioClips(d.train, d.sample_rate, d.segment, True, True, d.on_bad_audio, seconds)
        self.bad = self.clips.bad
        return DiffusionExamples(self.clips, self.noise_shape())

    def write(self, out: Path, names: list[str], outputs: Tensor) -> list[Path]:
        paths = [out / f"{name}{self.suffix}" for name in names]
        for path, wav in zip(paths, outputs):
            save_audio(path, wav, self.sample_rate)
        return paths

    def summarize(self, out: Path, paths: list[Path], outputs: list[Tensor], source: str | None) -> dict:
        spectrogram_grid(outputs, self.sample_rate, out / "spectrograms.png", [p.stem for p in paths])
        return {"sample_rate": self.sample_rate, **self.settings(source)}

    def settings(self, source: str | None) -> dict:
        """What settings.json records besides the sample rate."""
        return {"mels_from": source}

    def log_samples(self, writer, out: Path, seeds: list[int], outputs: Tensor, step: int) -> None:
        import matplotlib.image

        sr = self.sample_rate
        for seed, wav in zip(seeds, outputs):
            save_audio(out / f"{seed}.wav", wav, sr)
            writer.add_audio(f"samples/{seed}", wav.float().cpu().clamp(-1, 1).reshape(1, -1), step, sr)
        spectrogram_grid(list(outputs), sr, out / "spectrograms.png", [str(s) for s in seeds])
        image = matplotlib.image.imread(out / "spectrograms.png")[..., :3]
        writer.add_image("samples/spectrograms", image, step, dataformats="HWC")


class WaveformTask(AudioTask):
    """Unconditional waveforms (B, 1, T); `seconds` sets the generated length (default data.segment)."""

    networks = ("diffwave",)
    waveform = True

    def __init__(self, cfg, device="cpu", seconds: float | None = None, **options) -> None:
        super().__init__(cfg, device, **options)
        if seconds is not None:
            if seconds <= 0:
                raise ValueError(f"generate: seconds must be > 0, got {seconds}")
            self.segment = int(round(seconds * self.sample_rate))

    def check_loss(self, spectral: torch.nn.Module) -> None:
        probe = torch.zeros(1, 1, self.cfg.data.segment, device=self.device)
        for label, loss in spectral.losses.items():
            try:
                with torch.no_grad():
                    loss(probe, probe)
            except RuntimeError as err:
                raise ValueError(
                    f"data.segment={self.cfg.data.segment} is too short for the regularizer '{label}': "
                    f"{str(err).splitlines()[0]}"
                ) from err

    def to_model(self, batch):
        return batch["x"].to(self.device, non_blocking=True), None

    def shape(self, cond=None):
        return (1, self.segment)

    def decode(self, x, seeds):
        return x


class VocoderTask(WaveformTask):
    """Waveforms conditioned on their log-mels (DiffWave as a vocoder); generation vocodes `--mels-from`."""

    max_batch = 1  # utterances differ in length: one at a time

    def __init__(self, cfg, device="cpu", **options) -> None:
        if "seconds" in options:
            raise ValueError("generate: --seconds applies to unconditional waveform models only")
        super().__init__(cfg, device, **options)
        self.logmel = LogMel(self.mel).to(self.device)
        self.hop = self.mel.hop

    @classmethod
    def problems(cls, cfg) -> list[str]:
        hop = mel_config(cfg.data.mel_preset, sample_rate=cfg.data.sample_rate).hop
        if cfg.model.kind != "diffwave" or cfg.model.diffwave.hop != hop:
            return [f"task=vocoder needs model.kind=diffwave with model.diffwave.hop={hop} (data.mel_preset's hop)"]
        if cfg.data.segment % hop:
            return [f"data.segment={cfg.data.segment} must be a multiple of the mel hop {hop}"]
        lo_hi = list(cfg.data.mel_range)
        if cfg.data.cond_scale == "mel_range" and not (len(lo_hi) == 2 and lo_hi[0] < lo_hi[1]):
            return [f"data.cond_scale=mel_range needs data.mel_range=[lo, hi] with lo < hi, got {lo_hi}"]
        return []

    def features(self, audio: Tensor) -> Tensor:
        """The log-mels (B, n_mels, T // hop) of audio (B, 1, T) or (B, T), one frame per hop."""
        return self.logmel(audio)[..., : audio.shape[-1] // self.hop]

    def condition(self, audio: Tensor) -> Tensor:
        """The condition (B, n_mels [+ hop], T // hop) of audio (B, 1, T) or (B, T): log-mels by `vocoder_condition`."""
        return vocoder_condition(self.features(audio), self.cfg.data, self.logmel)

    def examples(self):
        """The clips; with diffusion.prior and no stored energy range, the range over their frames (recorded:
        `audiodiff.diffusion.prior.record_training_range`)."""
        examples = super().examples()
        prior = self.cfg.diffusion.prior
        if prior.kind != "none" and prior.energy_min is None:
            from audiodiff.diffusion.prior import record_training_range

            clips = (self.clips.audio(i).to(self.device, torch.float64)[None] for i in range(len(self.clips)))
            record_training_range(prior, (self.features(c) for c in clips), self.mel)
        return examples

    def to_model(self, batch):
        x0 = batch["x"].to(self.device, non_blocking=True)
        return x0, self.condition(x0)

    def preview_condition(self, seeds):
        audio = torch.stack([self.clips[i][0] for i in seeds]).to(self.device)
        return self.condition(audio)

    def shape(self, cond=None):
        return (1, (cond.shape[-1] if cond is not None else self.segment // self.hop) * self.hop)

    def jobs(self, seeds, source=None):
        if not source:
            raise ValueError("generate: this model is a vocoder (task=vocoder); pass --mels-from DIR")
        jobs = []
        for i, (utt, path) in enumerate(list_audio(source).items()):
            wav = vocoder_input(path, self.mel)
            jobs.append(Job(utt, seeds[i % len(seeds)], self.condition(wav.to(self.device)[None])[0], wav))
        return jobs

    def settings(self, source):
        d = self.cfg.data
        if d.cond_waveform == "none":
            return super().settings(source)
        return {"mels_from": source, "cond_waveform": d.cond_waveform, "cond_griffin_lim": dict(d.cond_griffin_lim)}


class MelTask(AudioTask):
    """Log-mel spectrograms (B, 1, n_mels, frames) normalized to [-1, 1] by data.mel_range.

    With model.unet.num_classes the model is class-conditional: labels from data.train's utt2label
    (or text), names in data.labels; generated file k gets class seed_k mod classes (settings.json
    "labels" lists each file's). Audio comes from Griffin-Lim, or from `vocoder` (a mel-conditioned
    DiffWave checkpoint with the same mel preset) at generation.
    """

    networks = ("unet",)

    def __init__(self, cfg, device="cpu", vocoder: str | Path | None = None, use_ema: bool = True, **options) -> None:
        if "seconds" in options:
            raise ValueError("generate: --seconds applies to unconditional waveform models only")
        super().__init__(cfg, device, **options)
        self.logmel = LogMel(self.mel).to(self.device)
        self.frames = self.segment // self.mel.hop + 1
        self.vocoder_path, self.vocoder = vocoder, None
        if vocoder:
            from audiodiff.builders import load_for_generation

            self.vocoder = load_for_generation(vocoder, self.device, use_ema)
            if self.vocoder[0].task != "vocoder" or self.vocoder[0].data.mel_preset != cfg.data.mel_preset:
                raise ValueError(
                    f"--vocoder {vocoder}: needs a mel-conditioned DiffWave with mel_preset {cfg.data.mel_preset}"
                )

    def examples(self):
        examples = super().examples()
        examples.labels = self.class_ids(self.clips.ids)
        return examples

    def class_ids(self, ids: list[str]) -> Tensor | None:
        """Class ids (len(ids),) of data.train's utterances `ids` for a class-conditional model, else None.

        The names come from data.train's utt2label (or text); data.labels, when empty, is set to
        them sorted (recorded in the run's config and checkpoints).

        Raises:
            FileNotFoundError / ValueError: no label file, an utterance without a label, a label
                outside data.labels, or model.unet.num_classes unlike the number of classes.
        """
        if not self.classes:
            return None
        raw, label_file = read_labels(self.cfg.data.train, ids)
        found = label_names(raw[u] for u in ids)
        if not self.cfg.data.labels:
            self.cfg.data.labels = found
        known = list(self.cfg.data.labels)
        unknown = sorted(set(found) - set(known))
        if unknown:
            raise ValueError(f"{label_file}: labels {unknown} are not among data.labels {known}")
        if len(known) != self.classes:
            raise ValueError(
                f"model.unet.num_classes={self.classes} but {label_file} gives {len(known)} classes {known}; "
                f"set model.unet.num_classes={len(known)}"
            )
        index = {name: i for i, name in enumerate(known)}
        return torch.tensor([index[raw[u]] for u in ids])

    def to_model(self, batch):
        x0 = batch["x"].to(self.device, non_blocking=True)
        return mel_to_unit(self.logmel(x0), self.cfg.data.mel_range)[:, None], self.batch_labels(batch)

    def summarize(self, out, paths, outputs, source):
        settings = super().summarize(out, paths, outputs, source)
        return settings | {"labels": self.label_names([int(p.stem) for p in paths])}

    def shape(self, cond=None):
        return (1, self.mel.n_mels, self.frames)

    def decode(self, x, seeds):
        mels = unit_to_mel(x[:, 0], self.cfg.data.mel_range)
        if self.vocoder is None:  # the initial phase drawn from each output's own seed, as the sample was
            gens = [torch.Generator(mels.device).manual_seed(int(seed)) for seed in seeds]
            return torch.cat(
                [griffin_lim(self.logmel, m[None], length=self.segment, generator=g) for m, g in zip(mels, gens)]
            )
        from audiodiff.sampling import sample

        vcfg, vnet, vform, _ = self.vocoder
        cut = vocoder_condition(mels[..., : self.segment // self.mel.hop], vcfg.data)
        return sample(vnet, vform, vcfg, seeds, (1, cut.shape[-1] * self.mel.hop), cut)[:, 0]

    def settings(self, source):
        return {"mel_to_audio": str(self.vocoder_path) if self.vocoder_path else "griffin-lim"}


class MelFeaturesTask(MelTask):
    """`MelTask` trained on log-mels dumped by `audiodiff dump-features` (feats.scp) instead of audio."""

    def examples(self):
        from audiodiff.data.features import MelFeatureExamples

        AudioTask.examples(self)  # the audio is audited as for every audio task
        d = self.cfg.data
        examples = MelFeatureExamples(d.train, d.mel_preset, d.sample_rate, self.frames)
        examples.labels = self.class_ids(examples.ids)
        return examples

    def to_model(self, batch):
        x0 = batch["x"].to(self.device, non_blocking=True)
        return mel_to_unit(x0, self.cfg.data.mel_range)[:, None], self.batch_labels(batch)
