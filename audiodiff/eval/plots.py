"""The evaluation's figures: reference vs generated curves, per-band levels, and spectrograms on one
colour scale (with frequency and time axes, up to each clip's Nyquist) for report.html."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

# Spectrogram display: dB below the loudest bin of all clips on a page (one colour scale for all).
DYNAMIC_RANGE_DB = 80.0
# Octave bands of the per-band plot (Hz); the last band ends at the Nyquist frequency.
BAND_EDGES = (0, 250, 500, 1000, 2000, 4000, 8000, 16000)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, path: Path | None = None, dpi: int = 90) -> str:
    """Save `fig` to `path` (when given) and return it as a data: URI."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plot_pair(x, ref, gen, xlabel: str, ylabel: str, path: Path, log: bool = False, size=(6, 3), marks=()) -> None:
    """A reference and a generated curve over `x` (log y axis if `log`), dotted vertical lines at `marks`, to a PNG."""
    fig, ax = _pyplot().subplots(figsize=size)
    plot = ax.semilogy if log else ax.plot
    plot(x, ref, label="reference")
    plot(x, gen, label="generated")
    for mark in marks:
        ax.axvline(mark, color="gray", ls=":", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    _png(fig, path)


def band_levels(freqs: np.ndarray, ref_db: np.ndarray, gen_db: np.ndarray) -> list[dict]:
    """Mean level (dB) of each octave band of two mean spectra, up to the Nyquist `freqs[-1]`.

    Returns:
        [{"band_hz": [lo, hi], "ref_db": r, "gen_db": g}, ...]
    """
    nyquist = float(freqs[-1])
    edges = [e for e in BAND_EDGES if e < nyquist] + [nyquist]
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (freqs >= lo) & (freqs < hi) if hi < nyquist else (freqs >= lo)
        bands.append({"band_hz": [lo, hi], "ref_db": float(ref_db[sel].mean()), "gen_db": float(gen_db[sel].mean())})
    return bands


def plot_bands(bands: list[dict], path: Path) -> None:
    """Bars of each octave band's mean level, reference beside generated, to a PNG."""
    fig, ax = _pyplot().subplots(figsize=(6, 3))
    x = np.arange(len(bands))
    ax.bar(x - 0.2, [b["ref_db"] for b in bands], 0.4, label="reference")
    ax.bar(x + 0.2, [b["gen_db"] for b in bands], 0.4, label="generated")
    ax.set_xticks(x, [f"{b['band_hz'][0] / 1000:g}-{b['band_hz'][1] / 1000:g}" for b in bands])
    ax.set_xlabel("band (kHz)")
    ax.set_ylabel("mean power (dB)")
    ax.legend()
    fig.tight_layout()
    _png(fig, path)


def spectrogram_db(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Power spectrogram (dB) of a clip, about 46 ms windows, 75% overlap. -> ((freqs, frames), hop)"""
    import torch

    n_fft = 1 << int(np.ceil(np.log2(0.046 * rate)))
    hop = n_fft // 4
    x = torch.from_numpy(np.asarray(audio, np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)
    return (10 * torch.log10(spec.abs().square() + 1e-12)).numpy(), hop


def spectrogram_uris(clips: list[tuple[np.ndarray, int]]) -> tuple[list[str], str]:
    """Spectrogram PNGs (time and frequency axes, 0 Hz to each clip's Nyquist) on one colour scale.

    Args:
        clips: (audio (T,), sample rate) pairs.

    Returns:
        (one data: URI per clip, a data: URI of the shared colour bar)
    """
    specs = [(*spectrogram_db(audio, rate), rate) for audio, rate in clips]
    top = max(float(s.max()) for s, _, _ in specs) if specs else 0.0
    scale = {"vmin": top - DYNAMIC_RANGE_DB, "vmax": top, "cmap": "magma"}
    plt = _pyplot()
    uris = []
    for spec, hop, rate in specs:
        fig, ax = plt.subplots(figsize=(3.2, 1.9))
        extent = (0, spec.shape[1] * hop / rate, 0, rate / 2000)
        ax.imshow(spec, origin="lower", aspect="auto", extent=extent, interpolation="nearest", **scale)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.tight_layout(pad=0.3)
        uris.append(_png(fig, dpi=100))
    fig, ax = plt.subplots(figsize=(3.2, 0.55))
    fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(scale["vmin"], scale["vmax"]), scale["cmap"]), cax=ax,
                 orientation="horizontal", label="power (dB), shared by every spectrogram")  # fmt: skip
    ax.tick_params(labelsize=6)
    ax.xaxis.label.set_size(7)
    fig.tight_layout(pad=0.3)
    return uris, _png(fig, dpi=100)


def plot_groups(rows: list[dict], keys: list[str], path: Path, baseline: str | None = None) -> list[str]:
    """An ablation grid's results: one panel per metric, one bar per group (the mean over seeds, the seed std
    as error bar, each seed's value a dot), the `baseline` group's mean a dashed line across the panel.

    Args:
        rows: one dict per group, as `recipes/ablate.py`'s report writes them: {"group": name,
            key: {"mean", "std", "values"}, ...}; a group without a key has no bar in that panel, a std
            of None (one seed) no error bar.
        keys: the metric keys (metrics.json paths such as "metrics.fad_ge2e"), one panel each, in order.
        baseline: the name of the group drawn as the reference line (None: no line).

    Returns:
        The panels' titles, in order (the metric names without "metrics.").
    """
    from audiodiff.eval.context import BETTER, direction

    plt = _pyplot()
    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    width = max(2.8, 0.45 * len(rows) + 1.2)
    fig, axes = plt.subplots(nrows, cols, figsize=(width * cols, 3.2 * nrows), squeeze=False)
    titles = []
    for ax, key in zip(axes.flat, keys):
        x = np.arange(len(rows))
        stats = [r.get(key) for r in rows]
        means = [s["mean"] if s else np.nan for s in stats]
        colors = ["0.6" if r["group"] == baseline else "C0" for r in rows]
        yerr = [s["std"] if s and s["std"] is not None else np.nan for s in stats]  # one seed: no bar
        ax.bar(x, means, 0.6, yerr=yerr, color=colors, capsize=3)
        for i, s in enumerate(stats):
            if s:
                ax.plot([i] * len(s["values"]), s["values"], "k.", ms=4)
        base = next((s for r, s in zip(rows, stats) if r["group"] == baseline and s), None)
        if base:
            ax.axhline(base["mean"], color="0.3", ls="--", lw=1, label=f"{baseline} (mean)")
            ax.legend(fontsize=7)
        name = key.removeprefix("metrics.")
        if direction(name) == "zero":
            ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{name} ({BETTER[direction(name)]})", fontsize=8)
        ax.set_xticks(x, [r["group"] for r in rows], rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        titles.append(name)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    _png(fig, path, dpi=110)
    return titles
