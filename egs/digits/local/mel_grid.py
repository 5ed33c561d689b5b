#!/usr/bin/env python
"""Log-mels of real clips above those of generated ones, each titled with the classifier's digit.

    python local/mel_grid.py --real data/digits8/data/test --gen exp/mel_small/generated \\
        --classifier data/digits8/classifier --preset speech8k --out mel_grid.png

Both sets are read at the preset's rate and shown through the same LogMel (the model's own
features), so what the model learned and what Griffin-Lim made of it can be compared by eye.
"""

import argparse
from pathlib import Path

import matplotlib
import torch

from audiodiff.audio.features import LogMel, mel_config
from audiodiff.audio.io import load_audio
from audiodiff.data.datasets import list_audio
from audiodiff.eval.classifier import fit_samples, load_classifier

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True)
    ap.add_argument("--gen", type=Path, required=True)
    ap.add_argument("--classifier", type=Path, default=None)
    ap.add_argument("--preset", default="speech8k")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = mel_config(args.preset)
    logmel = LogMel(cfg)
    model = load_classifier(args.classifier)[0] if args.classifier else None
    fig, axes = plt.subplots(2, args.n, figsize=(1.3 * args.n, 3.0), squeeze=False)
    for row, folder in enumerate((args.real, args.gen)):
        for ax, path in zip(axes[row], list(list_audio(folder).values())[: args.n]):
            wav = load_audio(path, cfg.sample_rate)
            ax.imshow(logmel(wav[None])[0].numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
            if model is not None:
                x = fit_samples(load_audio(path, model.config.sample_rate), model.config.samples)[None]
                with torch.no_grad():
                    probs = model(x).softmax(1)[0]
                ax.set_title(f"{int(probs.argmax())} ({probs.max():.2f})", fontsize=7)
        axes[row][0].set_ylabel(["real", "generated"][row], fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
