"""Generation to files: one file per seed (or per input), an overview grid, and the settings as JSON.

The loop is the same for every task: the task lists the jobs, says the sample shape, decodes
the samples and writes them (audiodiff/tasks/).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from audiodiff.builders import build_task, load_for_generation
from audiodiff.config import ExperimentConfig
from audiodiff.guidance import guidance_problem
from audiodiff.runfiles import writable_dir
from audiodiff.sampling import sample, sampler_settings, sampling_plan, start_level
from audiodiff.set_listing import claim_output, write_set_listing

GRIFFIN_LIM = {"iters": 64, "momentum": 0.99, "seed": 0}  # `audiodiff griffin-lim`'s defaults


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
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"seeds {text!r} name seed(s) {twice[:5]} more than once; each seed is one file")
    return seeds


def _settings(cfg: ExperimentConfig, ckpt: str, step: int, use_ema: bool, sampler: str, reads: dict, seeds) -> dict:
    """What settings.json records for every generation run (the task adds its own keys and the files)."""
    steps = len(reads["fast_betas"]) if "fast_betas" in reads else reads.get("steps")
    return {
        "complete": True,
        "checkpoint": ckpt,
        "step": step,
        "weights": "ema" if use_ema else "raw",
        "sampler": sampler,
        "steps": steps,
        "sampler_settings": reads,
        "clip_denoised": cfg.sample.clip_denoised,
        "guidance": cfg.sample.guidance,
        "seeds": seeds,
    }


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
    eta: float | None = None,
    churn: float | None = None,
    rho: float | None = None,
    log: Callable[[str], None] | None = None,
    guidance: float | None = None,
    init: str | None = None,
    init_level: int | None = None,
) -> list[Path]:
    """Write <seed>.wav/.png per seed (or <utt>.wav per input when vocoding), a grid PNG and settings.json.

    File names are zero-padded to the widest seed (00.wav .. 15.wav). settings.json lists exactly
    the files of the set under "files" (what `evaluate --gen` scores). An `out` holding a previous
    generated set is reused: its files that the new set does not overwrite are removed (said
    through `log`); clips that no settings.json lists make it a ValueError.

    `steps`, `eta`, `churn` and `rho` override the config's sample.* settings; one the sampler
    does not read (`steps` with "fast", `eta` with anything but "ddim") is a ValueError.

    `clip_denoised` overrides the config's sample.clip_denoised (clamp x0_hat to [-1, 1] at every
    step, as Ho et al.'s image sampler does; an eps-prediction model's x0_hat at the top of a
    1000-step schedule is its eps error times sigma_max ~ 157, and unclamped it can push samples
    off the data range for good).

    `guidance` overrides the config's sample.guidance (classifier-free guidance of a class-conditional
    model trained with label dropout; 1 = plain conditional). A model that cannot take it is a ValueError.

    `seconds` sets the clip length of unconditional waveform models (default: the training crop,
    data.segment); the network is fully convolutional, so a model trained on short crops can
    generate longer clips.

    Mel-spectrogram models are turned into audio by `vocoder` (a mel-conditioned DiffWave
    checkpoint with the same mel settings) when given, else by Griffin-Lim. Vocoders read the
    audio to vocode from `mels_from`.

    `init="griffin-lim"` with `init_level` K (DDPM vocoders): shallow diffusion. The sampler skips the
    first K steps of its grid and starts at its level K from the waveform `audiodiff griffin-lim` makes
    of the same mels (GRIFFIN_LIM settings), noised to that level (`audiodiff.sampling.run_plan`);
    K = 0 skips nothing (the usual start from noise). settings.json records it under "init".
    """
    if batch_size < 1:
        raise ValueError(f"generate: batch size must be >= 1, got {batch_size}")
    cfg, net, formulation, step = load_for_generation(ckpt, device, use_ema)
    if clip_denoised is not None:
        cfg.sample.clip_denoised = clip_denoised
    if guidance is not None:
        cfg.sample.guidance = guidance
    if problem := guidance_problem(cfg):
        raise ValueError(f"generate: {problem}")
    sampler = sampler or cfg.sample.sampler
    reads = sampler_settings(cfg, formulation, sampler, {"steps": steps, "eta": eta, "churn": churn, "rho": rho})
    options = {"seconds": seconds} if seconds is not None else {}
    if vocoder is not None:
        options.update(vocoder=vocoder, use_ema=use_ema)
    start = _init_record(cfg, formulation, sampler, init, init_level, mels_from)
    task = build_task(cfg, device, **options)
    jobs = task.jobs(seeds, mels_from)
    starts = _griffin_lim_starts(task, jobs, start, log)
    out = writable_dir(out, "generate: output folder")
    previous = claim_output(out, [job.name for job in jobs])
    size = min(batch_size, task.max_batch or batch_size)
    paths, outputs = _run_jobs(task, (net, formulation, cfg, sampler), jobs, size, out, progress, starts)
    _remove_stale(previous, paths, out, log)
    settings = _settings(cfg, str(ckpt), step, use_ema, sampler, reads, seeds)
    settings.update(task.summarize(out, paths, outputs, mels_from))
    if start is not None:
        settings["init"] = start
    if cfg.sample.guidance == 0 and settings.get("labels"):  # w = 0 samples the null label only: no class asked
        settings["labels"] = None
    settings["files"] = [p.relative_to(out).as_posix() for p in paths]
    write_set_listing(out, settings)
    return paths


def _init_record(cfg: ExperimentConfig, formulation, sampler: str, init, level, mels_from) -> dict | None:
    """generate's `init` and `init_level` checked against the model and sampler: what settings.json records.

    Raises:
        ValueError: one of the two without the other, an unknown init, a model that is not a DDPM
            vocoder, no `mels_from`, or a level outside 0..(levels of the sampler's grid - 1).
    """
    if init is None and level is None:
        return None
    if init != "griffin-lim":
        got = f"--init {init!r} is not allowed" if init else "--init-level needs --init"
        raise ValueError(f"generate: {got}; the one init is griffin-lim")
    if cfg.task != "vocoder" or not formulation.discrete:
        raise ValueError(
            "generate: --init griffin-lim applies to mel-conditioned DDPM vocoders "
            f"(task=vocoder, diffusion.kind=ddpm); this model is task={cfg.task}, diffusion.kind={cfg.diffusion.kind}"
        )
    if not mels_from or level is None:
        raise ValueError("generate: --init griffin-lim needs --mels-from DIR and --init-level K (steps to skip)")
    sigmas = sampling_plan(cfg, formulation, sampler, cfg.sample.steps)[1]
    start_level(sigmas, level, "generate: --init-level", f"--sampler {sampler}")
    sigma = float(sigmas[level])
    record = {"kind": "griffin-lim", "level": level, "levels": len(sigmas) - 1, "sigma": sigma}
    record.update(sqrt_abar=(1 + sigma**2) ** -0.5, griffin_lim=dict(GRIFFIN_LIM))
    if level == 0:
        record["note"] = "level 0 skips no step: the usual start from noise, Griffin-Lim unused"
    return record


def _griffin_lim_starts(task, jobs: list, start: dict | None, log) -> tuple[int, dict] | None:
    """(level, {job name: (1, T) Griffin-Lim waveform of its clip}) for a shallow start (`_init_record`) above
    level 0, else None; the clips are the ones the vocoder's jobs read (`Job.audio`)."""
    if start is None:
        return None
    if log:
        log(f"shallow diffusion: {start['level']} of {start['levels']} steps skipped, starting at sigma "
            f"{start['sigma']:.4g} (sqrt(abar) {start['sqrt_abar']:.4f}) from "
            + ("Griffin-Lim" if start["level"] else "noise (level 0)"))  # fmt: skip
    if start["level"] == 0:
        return None
    from audiodiff.audio.features import LogMel

    logmel = LogMel(task.mel)  # on the CPU, as `audiodiff griffin-lim` runs
    return start["level"], {job.name: griffin_lim_clip(logmel, job.audio, **GRIFFIN_LIM)[None] for job in jobs}


def _run_jobs(
    task, model: tuple, jobs: list, size: int, out: Path, progress: bool, starts: tuple | None = None
) -> tuple[list[Path], list]:
    """Sample, decode and write `jobs` in batches of `size`; (written paths, decoded outputs).

    `model` is (network, formulation, config, sampler name); `starts` (level, {job name: init}) from
    `_griffin_lim_starts` starts each job there (shallow diffusion), None from noise.
    """
    from tqdm import tqdm

    net, formulation, cfg, sampler = model
    paths, outputs = [], []
    bar = tqdm(total=len(jobs), desc="generate", disable=not progress)
    for begin in range(0, len(jobs), size):
        chunk = jobs[begin : begin + size]
        chunk_seeds = [job.seed for job in chunk]
        cond = torch.stack([job.cond for job in chunk]) if chunk[0].cond is not None else None
        start = (starts[0], torch.stack([starts[1][job.name] for job in chunk])) if starts else None
        x = sample(net, formulation, cfg, chunk_seeds, task.shape(cond), cond, sampler, start=start)
        decoded = task.decode(x, chunk_seeds)
        paths += task.write(out, [job.name for job in chunk], decoded)
        outputs += list(decoded)
        bar.update(len(chunk))
    bar.close()
    return paths, outputs


def _remove_stale(previous: list[Path], paths: list[Path], out: Path, log: Callable[[str], None] | None) -> None:
    """Delete the previous set's files in `out` that the new set did not overwrite (said through `log`)."""
    stale = [p for p in previous if p not in set(paths) and p.is_file()]
    for path in stale:
        path.unlink()
    if stale and log:
        log(f"removed {len(stale)} files of the previous set in {out} that this set does not replace")


def griffin_lim_clip(logmel, wav: torch.Tensor, iters: int = 64, momentum: float = 0.99, seed: int = 0):
    """`audiodiff griffin-lim` on one clip (T,) -> (T,): its log-mels (every STFT frame of `logmel`, a
    LogMel) inverted by fast Griffin-Lim, the initial phase drawn from `seed`, cut to the clip's length."""
    from audiodiff.audio.features import griffin_lim

    g = torch.Generator().manual_seed(seed)
    return griffin_lim(logmel, logmel(wav[None]), iters, momentum, length=wav.shape[0], generator=g)[0]


def griffin_lim_set(
    mels_from: str | Path,
    out: str | Path,
    mel_preset: str = "speech16k",
    iters: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Vocode the log-mels of every clip of `mels_from` with fast Griffin-Lim: a vocoder's no-training baseline.

    Each clip is read at the preset's rate and cut to whole hops, as `generate --mels-from` does for
    a vocoder; its log-mels (`mel_preset`; every STFT frame, the vocoder drops the last, centred one)
    are inverted by `audiodiff.audio.features.griffin_lim` with the initial phase drawn from `seed`.
    Writes <utt>.wav per clip, spectrograms.png and settings.json ("run": "griffin-lim"), so the set
    is scored by `evaluate --gen` and shown by `report` like a generated one; `out` is claimed and a
    previous set replaced as `generate` does.

    Raises:
        ValueError: `iters` < 1, `momentum` outside [0, 1), an unknown preset, a clip shorter than one
            STFT frame, or `out` holding clips that no settings.json lists. FileNotFoundError:
            `mels_from` is missing.
    """
    from audiodiff.audio.features import LogMel, mel_config
    from audiodiff.audio.io import save_audio
    from audiodiff.data.datasets import list_audio
    from audiodiff.tasks.audio import spectrogram_grid, vocoder_input

    if iters < 1 or not 0 <= momentum < 1:
        raise ValueError(f"griffin-lim: need iters >= 1 and 0 <= momentum < 1, got iters={iters}, momentum={momentum}")
    mel = mel_config(mel_preset)
    logmel = LogMel(mel)
    clips = {utt: vocoder_input(path, mel) for utt, path in list_audio(mels_from).items()}  # all checked first
    out = writable_dir(out, "griffin-lim: output folder")
    previous = claim_output(out, list(clips))
    paths, outputs = [], []
    for utt, wav in clips.items():
        audio = griffin_lim_clip(logmel, wav, iters, momentum, seed)
        save_audio(out / f"{utt}.wav", audio, mel.sample_rate)
        paths.append(out / f"{utt}.wav")
        outputs.append(audio)
    _remove_stale(previous, paths, out, log)
    spectrogram_grid(outputs, mel.sample_rate, out / "spectrograms.png", [p.stem for p in paths])
    settings = {
        "complete": True,
        "run": "griffin-lim",
        "sampler": "griffin-lim",
        "steps": iters,
        "sampler_settings": {"momentum": momentum, "mel_preset": mel_preset, "seed": seed},
        "sample_rate": mel.sample_rate,
        "mels_from": str(mels_from),
        "files": [p.relative_to(out).as_posix() for p in paths],
    }
    write_set_listing(out, settings)
    return paths
