"""Sampling to files: one file per seed, a spectrogram grid, and the settings as JSON."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from audiodiff.audio.features import LogMel, display_logmel, mel_config
from audiodiff.audio.io import load_audio, save_audio
from audiodiff.config import ExperimentConfig, from_yaml
from audiodiff.diffusion import DDPM, EDM
from audiodiff.diffusion.samplers import (
    SAMPLERS,
    SeededNoise,
    ddpm_sigmas,
    fast_sigmas,
    karras_sigmas,
)
from audiodiff.models import DiffWave, UNet
from audiodiff.models.diffwave_infer import DiffWaveInference
from audiodiff.runfiles import writable_dir

SAMPLER_NAMES = ("fast", "ddpm", "ddim", "euler", "heun")


def parse_seeds(text: str) -> list[int]:
    """'0-63' / '1,5,9' / '0-3,10' -> list of non-negative ints."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"seeds {text!r}: use ranges and lists like '0-63' or '1,5,9'")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise ValueError(f"seeds {text!r} selects nothing")
    return seeds


def mel_to_unit(features: Tensor, mel_range) -> Tensor:
    """Log-mel features -> model space: the range [lo, hi] maps to [-1, 1]."""
    lo, hi = mel_range
    return (features - lo) * (2 / (hi - lo)) - 1


def unit_to_mel(x: Tensor, mel_range) -> Tensor:
    """Inverse of `mel_to_unit`."""
    lo, hi = mel_range
    return (x + 1) * ((hi - lo) / 2) + lo


def build_network(cfg: ExperimentConfig) -> nn.Module:
    if cfg.model.kind == "diffwave":
        from audiodiff.models.diffwave import DiffWaveConfig, resolve_embed_interp

        sizes = dict(cfg.model.diffwave)  # "auto" is resolved by load_config, not in configs built in code
        sizes["embed_interp"] = resolve_embed_interp(sizes["embed_interp"], cfg.diffusion.kind)
        return DiffWave(DiffWaveConfig(**sizes))
    from audiodiff.models.unet import UNetConfig

    unet = dict(cfg.model.unet)
    unet["channel_mult"], unet["attn_levels"] = tuple(unet["channel_mult"]), tuple(unet["attn_levels"])
    return UNet(UNetConfig(**unet))


def build_formulation(cfg: ExperimentConfig) -> DDPM | EDM:
    d = cfg.diffusion
    if d.kind == "ddpm":
        return DDPM.from_preset(d.schedule, prediction=d.prediction, loss_type=d.loss_type)
    return EDM(d.sigma_data, d.p_mean, d.p_std, d.sigma_min, d.sigma_max)


def sampling_plan(cfg: ExperimentConfig, formulation: DDPM | EDM, sampler: str, steps: int) -> tuple:
    """(sampler function, sigma grid, extra kwargs) for a sampler name and step count."""
    if sampler not in SAMPLER_NAMES:
        raise ValueError(f"sampler {sampler!r} is not allowed; choose one of {list(SAMPLER_NAMES)}")
    ddpm = isinstance(formulation, DDPM)
    if sampler in ("fast", "ddpm") and not ddpm:
        raise ValueError(f"sampler {sampler!r} needs a DDPM model; use heun, euler or ddim with EDM")
    if sampler == "fast":
        return SAMPLERS["ddpm"], fast_sigmas(cfg.sample.fast_betas), {}
    if sampler == "ddpm":
        return SAMPLERS["ddpm"], ddpm_sigmas(formulation.sigmas, min(steps, formulation.num_steps)), {}
    if sampler == "ddim" and ddpm:
        return (
            SAMPLERS["ddim"],
            ddpm_sigmas(formulation.sigmas, min(steps, formulation.num_steps)),
            {"eta": cfg.sample.eta},
        )
    grid = karras_sigmas(steps, formulation.sigma_min, formulation.sigma_max, cfg.sample.rho)
    extra = {"eta": cfg.sample.eta} if sampler == "ddim" else {}
    if sampler == "heun" and cfg.sample.churn:
        extra["s_churn"] = cfg.sample.churn
    return SAMPLERS[sampler], grid, extra


def warn_fractional_steps(net: nn.Module, formulation: DDPM | EDM, sigmas: Tensor) -> None:
    """Warn when a DDPM DiffWave with embed_interp "exact" is asked for fractional steps.

    DDPM trains on integer steps only; with "exact" sinusoids (up to 10^4 rad per step) a
    fractional step's embedding is unrelated to any trained one, and the eps error there was
    measured up to 27x that of the neighbouring integer steps. Checkpoints from before "lerp"
    became the DDPM default store "exact" and still sample as they did, with this warning.
    """
    if not (isinstance(net, DiffWave) and isinstance(formulation, DDPM) and net.config.embed_interp == "exact"):
        return
    t = formulation.sigma_to_t(sigmas[sigmas > 0].double())
    off = (t - t.round()).abs()
    if bool((off > 1e-3).any()):
        warnings.warn(
            f"DiffWave with embed_interp='exact' trained on integer DDPM steps is sampled at fractional steps "
            f"{[round(v, 3) for v in t[off > 1e-3].tolist()]}: their embeddings were never trained, expect worse "
            "samples; sample with --sampler ddpm or ddim (integer steps), or retrain with embed_interp lerp/auto",
            stacklevel=3,
        )


@torch.no_grad()
def sample(
    net: nn.Module,
    formulation: DDPM | EDM,
    cfg: ExperimentConfig,
    seeds: list[int],
    shape: tuple[int, ...],
    cond: Tensor | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    callback=None,
) -> Tensor:
    """Generate len(seeds) samples of `shape` (without the batch axis); sample k depends only on seeds[k]."""
    fn, sigmas, extra = sampling_plan(cfg, formulation, sampler or cfg.sample.sampler, steps or cfg.sample.steps)
    warn_fractional_steps(net, formulation, sigmas)
    device = next(net.parameters()).device
    noise = SeededNoise(seeds)
    x = noise(torch.zeros(len(seeds), *shape, device=device)) * formulation.prior_std(float(sigmas[0]))
    if isinstance(net, DiffWave):
        if device.type == "cpu":
            net = DiffWaveInference(net)  # the same function, about 2x faster on CPUs
        if cond is not None:
            cond = net.project_condition(cond)  # the mel projections are the same at every step

    clip = cfg.sample.clip_denoised

    def denoiser(x, s, c):
        x0_hat = formulation.denoise(net, x, s, c)
        return x0_hat.clamp(-1, 1) if clip else x0_hat

    return fn(denoiser, x, sigmas, cond=cond, noise=noise, callback=callback, **extra)


def load_for_generation(ckpt: str | Path, device: str = "cpu", use_ema: bool = True):
    """(config, network with EMA or raw weights, formulation, checkpoint step) from a checkpoint."""
    from audiodiff.checkpoint import load_checkpoint, load_weights

    state = load_checkpoint(ckpt, map_location=device)
    cfg = from_yaml(state["config"], f"{state['path']}: stored config")
    net = build_network(cfg).to(device).eval()
    weights = state["ema"] if use_ema and "ema" in state else state["model"]
    load_weights(net, weights, state["path"])
    return cfg, net, build_formulation(cfg).to(device), int(state["step"])


def class_labels(cfg: ExperimentConfig, seeds: list[int], device) -> Tensor | None:
    """Labels for class-conditional image models: seed k gets class k mod num_classes."""
    if cfg.model.kind != "unet" or not cfg.model.unet.num_classes:
        return None
    return torch.tensor([s % cfg.model.unet.num_classes for s in seeds], device=device)


def generate_images(
    net: nn.Module,
    formulation: DDPM | EDM,
    cfg: ExperimentConfig,
    seeds: list[int],
    sampler: str | None = None,
    steps: int | None = None,
) -> Tensor:
    """Images in [-1, 1], (len(seeds), C, H, W); class-conditional models get class seed % classes."""
    device = next(net.parameters()).device
    labels = class_labels(cfg, seeds, device)
    return sample(net, formulation, cfg, seeds, tuple(cfg.data.image_shape), labels, sampler, steps).clamp(-1, 1)


def to_uint8(images: Tensor):
    """(N, C, H, W) in [-1, 1] -> numpy uint8 (N, H, W, C)."""
    return ((images.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(images: Tensor, path: Path, cols: int = 8) -> None:
    """Save up to 64 images as one PNG grid."""
    from PIL import Image

    pics = to_uint8(images[:64])
    n, h, w, c = pics.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + 2), min(n, cols) * (w + 2), c), np.uint8)
    for i, pic in enumerate(pics):
        r, col = divmod(i, cols)
        grid[r * (h + 2) : r * (h + 2) + h, col * (w + 2) : col * (w + 2) + w] = pic
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)


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


def generate(
    ckpt: str | Path,
    out: str | Path,
    seeds: list[int],
    sampler: str | None = None,
    steps: int | None = None,
    batch_size: int = 16,
    mels_from: str | None = None,
    device: str = "cpu",
    use_ema: bool = True,
    progress: bool = True,
    vocoder: str | Path | None = None,
    seconds: float | None = None,
    clip_denoised: bool | None = None,
) -> list[Path]:
    """Write <seed>.wav per seed (or <utt>.wav per input when vocoding), a grid PNG and settings.json.

    `clip_denoised` overrides the config's sample.clip_denoised (clamp x0_hat to [-1, 1] at every
    step, as Ho et al.'s image sampler does; an eps-prediction model's x0_hat at the top of a
    1000-step schedule is its eps error times sigma_max ~ 157, and unclamped it can push samples
    off the data range for good).

    `seconds` sets the clip length of unconditional waveform models (default: the training crop,
    data.segment); the network is fully convolutional, so a model trained on short crops can
    generate longer clips.

    Mel-spectrogram (UNet) models are turned into audio by `vocoder` (a mel-conditioned DiffWave
    checkpoint with the same mel settings) when given, else by Griffin-Lim.
    """
    from tqdm import tqdm

    cfg, net, formulation, step = load_for_generation(ckpt, device, use_ema)
    if clip_denoised is not None:
        cfg.sample.clip_denoised = clip_denoised
    out = writable_dir(out, "generate: output folder")
    sr, seg = cfg.data.sample_rate, cfg.data.segment
    if seconds is not None:
        if seconds <= 0:
            raise ValueError(f"generate: seconds must be > 0, got {seconds}")
        if cfg.data.kind == "images" or cfg.model.kind == "unet" or cfg.data.condition == "mel":
            raise ValueError("generate: --seconds applies to unconditional waveform models only")
        seg = int(round(seconds * sr))
    jobs: list[tuple[str, int, Tensor | None]] = []
    if cfg.data.kind == "images":
        return _generate_images(
            cfg, net, formulation, step, out, seeds, sampler, steps, batch_size, use_ema, str(ckpt), progress
        )
    if cfg.model.kind == "unet":
        return _generate_mels(
            cfg,
            net,
            formulation,
            step,
            out,
            seeds,
            sampler,
            steps,
            batch_size,
            device,
            vocoder,
            use_ema,
            str(ckpt),
            progress,
        )
    if cfg.data.condition == "mel":
        if not mels_from:
            raise ValueError("generate: this model is a vocoder (data.condition=mel); pass --mels-from DIR")
        from audiodiff.data.datasets import list_audio

        logmel = LogMel(mel_config(cfg.data.mel_preset, sample_rate=sr)).to(device)
        hop = logmel.config.hop
        for i, (utt, path) in enumerate(list_audio(mels_from).items()):
            wav = load_audio(path, sr)
            wav = wav[: (wav.shape[0] // hop) * hop].to(device)
            jobs.append((utt, seeds[i % len(seeds)], logmel(wav[None])[..., : wav.shape[0] // hop]))
    else:
        jobs = [(str(s), s, None) for s in seeds]
    paths, audios = [], []
    bar = tqdm(total=len(jobs), desc="generate", disable=not progress)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        if chunk[0][2] is not None:  # vocoding: one utterance at a time (lengths differ)
            for name, seed, mel in chunk:
                wav = sample(net, formulation, cfg, [seed], (1, mel.shape[-1] * hop), mel, sampler, steps)[0]
                paths.append(out / f"{name}.wav")
                save_audio(paths[-1], wav, sr)
                audios.append(wav)
                bar.update(1)
            continue
        wavs = sample(net, formulation, cfg, [s for _, s, _ in chunk], (1, seg), None, sampler, steps)
        for (name, _, _), wav in zip(chunk, wavs):
            paths.append(out / f"{name}.wav")
            save_audio(paths[-1], wav, sr)
            audios.append(wav)
        bar.update(len(chunk))
    bar.close()
    settings = {"mels_from": mels_from}
    _write_summary(out, paths, audios, cfg, str(ckpt), step, use_ema, sampler, steps, seeds, settings)
    return paths


def _generate_mels(
    cfg, net, formulation, step, out, seeds, sampler, steps, batch_size, device, vocoder, use_ema, ckpt, progress
) -> list[Path]:
    """Sample log-mels with a UNet, then vocode them (DiffWave checkpoint) or run Griffin-Lim."""
    from tqdm import tqdm

    from audiodiff.audio.features import griffin_lim

    sr, seg = cfg.data.sample_rate, cfg.data.segment
    logmel = LogMel(mel_config(cfg.data.mel_preset, sample_rate=sr)).to(device)
    frames = seg // logmel.config.hop + 1
    voc = load_for_generation(vocoder, device, use_ema) if vocoder else None
    if voc is not None and (voc[0].data.condition != "mel" or voc[0].data.mel_preset != cfg.data.mel_preset):
        raise ValueError(f"--vocoder {vocoder}: needs a mel-conditioned DiffWave with mel_preset {cfg.data.mel_preset}")
    paths, audios = [], []
    for start in tqdm(range(0, len(seeds), batch_size), desc="generate", disable=not progress):
        chunk = seeds[start : start + batch_size]
        mels = unit_to_mel(
            sample(net, formulation, cfg, chunk, (1, logmel.config.n_mels, frames), None, sampler, steps)[:, 0],
            cfg.data.mel_range,
        )
        if voc is None:
            wavs = griffin_lim(logmel, mels, length=seg)
        else:
            vcfg, vnet, vform, _ = voc
            cut = mels[..., : seg // logmel.config.hop]
            wavs = sample(vnet, vform, vcfg, chunk, (1, cut.shape[-1] * logmel.config.hop), cut)[:, 0]
        for seed, wav in zip(chunk, wavs):
            paths.append(out / f"{seed}.wav")
            save_audio(paths[-1], wav, sr)
            audios.append(wav)
    settings = {"mel_to_audio": str(vocoder) if vocoder else "griffin-lim"}
    _write_summary(out, paths, audios, cfg, ckpt, step, use_ema, sampler, steps, seeds, settings)
    return paths


def _settings(paths, cfg, ckpt, step, use_ema, sampler, steps, seeds, extra) -> dict:
    """What settings.json records for a generation run."""
    return {
        "checkpoint": ckpt,
        "step": step,
        "weights": "ema" if use_ema else "raw",
        "sampler": sampler or cfg.sample.sampler,
        "steps": steps or cfg.sample.steps,
        "clip_denoised": cfg.sample.clip_denoised,
        "seeds": seeds,
        "files": [p.name for p in paths],
        **extra,
    }


def _write_summary(out, paths, audios, cfg, ckpt, step, use_ema, sampler, steps, seeds, extra) -> None:
    """The spectrogram grid of the written clips and settings.json."""
    spectrogram_grid(audios, cfg.data.sample_rate, out / "spectrograms.png", [p.stem for p in paths])
    extra = {"sample_rate": cfg.data.sample_rate, **extra}
    settings = _settings(paths, cfg, ckpt, step, use_ema, sampler, steps, seeds, extra)
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def _generate_images(
    cfg, net, formulation, step, out, seeds, sampler, steps, batch_size, use_ema, ckpt, progress
) -> list[Path]:
    """<seed>.png per seed, grid.png and settings.json."""
    from PIL import Image
    from tqdm import tqdm

    paths, all_images = [], []
    for start in tqdm(range(0, len(seeds), batch_size), desc="generate", disable=not progress):
        chunk = seeds[start : start + batch_size]
        images = generate_images(net, formulation, cfg, chunk, sampler, steps)
        for seed, pic in zip(chunk, to_uint8(images)):
            paths.append(out / f"{seed}.png")
            Image.fromarray(pic[..., 0] if pic.shape[-1] == 1 else pic).save(paths[-1])
        all_images.append(images.cpu())
    image_grid(torch.cat(all_images), out / "grid.png")
    labels = class_labels(cfg, seeds, "cpu")
    extra = {"labels": labels.tolist() if labels is not None else None}
    settings = _settings(paths, cfg, ckpt, step, use_ema, sampler, steps, seeds, extra)
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return paths
