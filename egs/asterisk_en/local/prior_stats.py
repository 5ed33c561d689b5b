#!/usr/bin/env python
"""How PriorGrad's std spreads over the training frames, for each energy definition and max_quantile.

    python local/prior_stats.py conf/priorgrad.yaml data/asterisk_en/data/train

Reads the clips as `audiodiff train` does (data.train = the given directory), takes every frame's energy
once per definition (audiodiff/diffusion/prior.py) and prints a markdown table: the range that
diffusion.prior.max_quantile gives, the share of frames at std_min and at 1, and the median std. Cheap:
only log-mels, no model.
"""

import argparse

import numpy as np
import torch

from audiodiff.builders import build_task
from audiodiff.config import load_config
from audiodiff.diffusion.prior import PRIOR_ENERGIES, energy_range, energy_std, frame_energy

QUANTILES = (1.0, 0.999, 0.99, 0.95)


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


if __name__ == "__main__":
    main()
