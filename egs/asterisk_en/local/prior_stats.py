#!/usr/bin/env python
"""How PriorGrad's std, or SpecGrad's filter, spreads over the training frames.

    python local/prior_stats.py conf/priorgrad.yaml data/asterisk_en/data/train
    python local/prior_stats.py conf/specgrad.yaml data/asterisk_en/data/train

Reads the clips as `audiodiff train` does (data.train = the given directory). PriorGrad (mel_energy): takes
every frame's energy once per definition (audiodiff/diffusion/prior.py) and prints a markdown table: the range
that diffusion.prior.max_quantile gives, the share of frames at std_min and at 1, and the median std.
SpecGrad (spec_envelope, audiodiff/diffusion/spec_envelope.py): for each floor and max_quantile, the envelope
RMS range, the share of frames whose filter is the floor in every bin, the share of bins at the floor (all
frames; frames of envelope RMS at or above the median), the median filter RMS; then, with the config's
settings, how far whiten(colour(z)) is from z on 64 crops of data.segment samples. Cheap: only log-mels and
STFTs, no model.
"""

import argparse

import numpy as np
import torch

from audiodiff.builders import build_task
from audiodiff.config import load_config
from audiodiff.diffusion.prior import PRIOR_ENERGIES, energy_range, energy_std, frame_energy

QUANTILES = (1.0, 0.999, 0.99, 0.95)
FLOORS = (0.003, 0.01, 0.03, 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conf")
    parser.add_argument("train", help="a Kaldi-style data directory (wav.scp)")
    args = parser.parse_args()
    cfg = load_config(args.conf, ["name=stats", f"data.train={args.train}"])
    task = build_task(cfg)
    task.examples()  # reads and audits the clips (and takes the configured range; not used here)
    clips = task.clips
    feats = [task.features(clips.audio(i).to(torch.float64)[None]) for i in range(len(clips))]
    if cfg.diffusion.prior.kind == "spec_envelope":
        return spec_stats(cfg, task, feats)
    std_min = cfg.diffusion.prior.std_min
    print(f"{len(clips)} clips, {sum(f.shape[-1] for f in feats)} frames, std_min {std_min}\n")
    print("| energy | max_quantile | e_min .. e_max | frames at std_min | at std 1 | median std |")
    print("|---|---:|---|---:|---:|---:|")
    for energy in PRIOR_ENERGIES:
        frames = torch.cat([frame_energy(f, task.mel, energy).flatten() for f in feats])
        for q in QUANTILES:
            lo, hi = energy_range(feats, task.mel, energy, q)
            std = energy_std(frames, lo, hi, std_min).numpy()
            low, high = np.mean(std <= std_min), np.mean(std >= 1.0)
            print(f"| {energy} | {q:g} | {lo:g} .. {hi:g} | {low:.1%} | {high:.2%} | {np.median(std):.3f} |")


def spec_stats(cfg, task, feats: list[torch.Tensor]) -> None:
    """SpecGrad's filter over the training frames (module docstring)."""
    from torch.utils.data import default_collate

    from audiodiff.diffusion.prior import frame_range
    from audiodiff.diffusion.spec_envelope import SpecEnvelopePrior, envelope_filter, envelope_gain, spectral_envelope

    prior = cfg.diffusion.prior
    logmel = task.logmel.double()
    envs = [spectral_envelope(f, logmel, prior.lifter_order)[0] for f in feats]  # (bins, frames) each
    env = torch.cat(envs, -1)
    gain = envelope_gain(env[None])[0]
    loud = gain >= gain.median()
    print(f"{len(feats)} clips, {env.shape[-1]} frames, lifter order {prior.lifter_order}\n")
    print("| floor | max_quantile | envelope RMS range | frames all at floor | bins at floor | in loud frames "
          "| median filter RMS |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|")
    for q in QUANTILES[:3]:
        lo, hi = frame_range([gain[None]], q)
        for floor in FLOORS:
            filt = envelope_filter(env[None], hi, floor)[0]
            at = filt <= floor
            rms = filt.square().mean(0).sqrt().median()
            print(f"| {floor:g} | {q:g} | {lo:.4g} .. {hi:.4g} | {at.all(0).double().mean():.1%} | "
                  f"{at.double().mean():.1%} | {at[:, loud].double().mean():.1%} | {rms:.3f} |")  # fmt: skip
    examples = task.examples()  # crops of data.segment as training draws them, with their standard noise
    batch = default_collate([examples[i % len(examples), 1000 + i] for i in range(64)])
    x0, cond = task.to_model(batch)
    lo, hi = frame_range([gain[None]], prior.max_quantile)
    z = batch["noise"].double()
    frames = z.reshape(64, -1, task.mel.hop).square().sum(-1)
    print(f"\nwhiten(colour(z)) - z on 64 crops of {z.shape[-1]} samples (max_quantile {prior.max_quantile:g}), "
          "relative to z: over all samples, and per frame (hop)\n")  # fmt: skip
    print("| floor | all | frame median | 90th percentile | 99th | frames above 0.1 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for floor in FLOORS:
        op = SpecEnvelopePrior(task.mel, hi, floor, prior.lifter_order, task.features).operator(x0)
        err = (op.whiten(op.colour(z)) - z).reshape(64, -1, task.mel.hop).square().sum(-1)
        frame = (err / frames).sqrt().flatten()
        print(
            f"| {floor:g} | {float((err.sum() / frames.sum()).sqrt()):.3f} | {frame.median():.4f} | "
            f"{frame.quantile(0.9):.3f} | {frame.quantile(0.99):.3f} | {(frame > 0.1).double().mean():.1%} |"
        )


if __name__ == "__main__":
    main()
