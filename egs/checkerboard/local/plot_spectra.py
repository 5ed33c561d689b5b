#!/usr/bin/env python
"""Radially averaged power spectra of the ablation groups vs the real test images (paper Fig. 2).

    python local/plot_spectra.py exp/ablation data/checkerboard32/data/test out.png

Each group's curve pools the generated images of all its seeds; the shaded band is the spread
(min..max) of the per-seed curves.
"""

import sys
from pathlib import Path

import matplotlib
import numpy as np

from audiodiff.eval.images import load_images, radial_power_spectrum

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(exp: str, ref: str, out: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    real = radial_power_spectrum(load_images(ref))[1:]
    ax.semilogy(np.arange(1, len(real) + 1), real, "k-", lw=2, label="real (test)")
    for group in sorted(p for p in Path(exp).iterdir() if p.is_dir()):
        curves = [radial_power_spectrum(load_images(s / "generated"))[1:] for s in sorted(group.glob("seed*"))
                  if (s / "generated").is_dir()]  # fmt: skip
        if not curves:
            continue
        c = np.stack(curves)
        r = np.arange(1, c.shape[1] + 1)
        (line,) = ax.semilogy(r, np.exp(np.log(c).mean(0)), label=f"{group.name} ({len(curves)} seeds)")
        ax.fill_between(r, c.min(0), c.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("spatial frequency (radius)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
