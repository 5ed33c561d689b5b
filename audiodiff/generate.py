"""Generation to files: one file per seed (or per input), an overview grid, and the settings as JSON.

The loop is the same for every task: the task lists the jobs, says the sample shape, decodes
the samples and writes them (audiodiff/tasks/).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from audiodiff.builders import build_task, load_for_generation
from audiodiff.config import ExperimentConfig
from audiodiff.runfiles import writable_dir
from audiodiff.sampling import sample


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


def _settings(cfg: ExperimentConfig, ckpt: str, step: int, use_ema: bool, sampler, steps, seeds, paths) -> dict:
    """What settings.json records for every generation run (the task adds its own keys)."""
    return {
        "checkpoint": ckpt,
        "step": step,
        "weights": "ema" if use_ema else "raw",
        "sampler": sampler or cfg.sample.sampler,
        "steps": steps or cfg.sample.steps,
        "clip_denoised": cfg.sample.clip_denoised,
        "seeds": seeds,
        "files": [p.name for p in paths],
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
) -> list[Path]:
    """Write <seed>.wav/.png per seed (or <utt>.wav per input when vocoding), a grid PNG and settings.json.

    `clip_denoised` overrides the config's sample.clip_denoised (clamp x0_hat to [-1, 1] at every
    step, as Ho et al.'s image sampler does; an eps-prediction model's x0_hat at the top of a
    1000-step schedule is its eps error times sigma_max ~ 157, and unclamped it can push samples
    off the data range for good).

    `seconds` sets the clip length of unconditional waveform models (default: the training crop,
    data.segment); the network is fully convolutional, so a model trained on short crops can
    generate longer clips.

    Mel-spectrogram models are turned into audio by `vocoder` (a mel-conditioned DiffWave
    checkpoint with the same mel settings) when given, else by Griffin-Lim. Vocoders read the
    audio to vocode from `mels_from`.
    """
    from tqdm import tqdm

    cfg, net, formulation, step = load_for_generation(ckpt, device, use_ema)
    if clip_denoised is not None:
        cfg.sample.clip_denoised = clip_denoised
    out = writable_dir(out, "generate: output folder")
    options = {"seconds": seconds} if seconds is not None else {}
    if vocoder is not None:
        options.update(vocoder=vocoder, use_ema=use_ema)
    task = build_task(cfg, device, **options)
    jobs = task.jobs(seeds, mels_from)
    size = min(batch_size, task.max_batch or batch_size)
    paths, outputs = [], []
    bar = tqdm(total=len(jobs), desc="generate", disable=not progress)
    for start in range(0, len(jobs), size):
        chunk = jobs[start : start + size]
        chunk_seeds = [job.seed for job in chunk]
        cond = torch.stack([job.cond for job in chunk]) if chunk[0].cond is not None else None
        x = sample(net, formulation, cfg, chunk_seeds, task.shape(cond), cond, sampler, steps)
        decoded = task.decode(x, chunk_seeds)
        paths += task.write(out, [job.name for job in chunk], decoded)
        outputs += list(decoded)
        bar.update(len(chunk))
    bar.close()
    settings = _settings(cfg, str(ckpt), step, use_ema, sampler, steps, seeds, paths)
    settings.update(task.summarize(out, paths, outputs, mels_from))
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return paths
