"""What `evaluate` writes: metrics.json/.md, spectrum plots, and a self-contained report.html with the
metrics table and generated vs reference clips to hear and see."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audiodiff.audio.io import load_audio, native_rate


def _wav_uri(audio: np.ndarray, sample_rate: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def _spectrogram_uri(audio: np.ndarray, logmel) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    feats = logmel(torch.from_numpy(audio)[None].float())[0].numpy()
    fig, ax = plt.subplots(figsize=(3, 1.6))
    ax.imshow(feats, origin="lower", aspect="auto")
    ax.axis("off")
    fig.tight_layout(pad=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _column(title: str, paths: list[str], logmels: dict) -> str:
    """Clips at their native rates; `logmels` caches one display LogMel per rate."""
    from audiodiff.audio.features import display_logmel

    cells = []
    for p in paths:
        rate = native_rate(p)
        audio = load_audio(p, rate).numpy()
        if rate not in logmels:  # built once per rate: its filterbank and pseudo-inverse are not free
            logmels[rate] = display_logmel(rate)
        name = html.escape(Path(p).name)
        cells.append(
            f'<div class="clip"><div class="name">{name}</div>'
            f'<audio controls preload="metadata" src="{_wav_uri(audio, rate)}"></audio>'
            f'<img alt="log-mel spectrogram of {name}" src="{_spectrogram_uri(audio, logmels[rate])}">'
            "</div>"
        )
    return f'<div class="column"><h2>{html.escape(title)}</h2>{"".join(cells)}</div>'


def write_report(path: Path, report: dict, ref_paths: list[str], gen_paths: list[str], clips: int = 8) -> None:
    """Write report.html with the metrics and up to `clips` generated and reference clips side by side.

    Clips are embedded at their native sample rates, not resampled.
    """
    logmels: dict = {}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in report["metrics"].items())
    embedder = report.get("embedder", {}).get("name", "-")
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>audiodiff evaluation</title><style>"
        "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:4px 10px}"
        ".columns{display:flex;gap:2em} .clip{margin:0.6em 0} .clip img{display:block;width:300px}"
        ".name{font-size:0.8em;color:#555}</style></head><body>"
        f"<h1>audiodiff evaluation</h1><p>generated: {html.escape(report['gen'])} ({report['n_gen']} files); "
        f"reference: {html.escape(report['ref'])} ({report['n_ref']} files); embedder: {html.escape(embedder)}</p>"
        f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"
        f'<div class="columns">{_column("generated", gen_paths[:clips], logmels)}'
        f"{_column('reference', ref_paths[:clips], logmels)}</div></body></html>"
    )
    path.write_text(body)


def write_metrics(out: Path, report: dict, header: str) -> None:
    """metrics.json (the whole report) and metrics.md (a header line and the metrics table: value,
    which way is better, and the real-data floor when a real-vs-real evaluation was given)."""
    from audiodiff.eval.context import direction

    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    floor = report.get("floor", {}).get("metrics")
    rows = []
    for k, v in report["metrics"].items():
        cells = [k, f"{v:.4g}", f"{direction(k)} is better"]
        if floor is not None:
            cells.append(f"{floor[k]:.4g}" if k in floor else "-")
        rows.append("| " + " | ".join(cells) + " |\n")
    columns = "| metric | value | better |" + (" real-data floor |" if floor is not None else "")
    rule = "|---|---:|---|" + ("---:|" if floor is not None else "")
    (out / "metrics.md").write_text(f"{header}\n\n{columns}\n{rule}\n{''.join(rows)}")


def plot_pair(x, ref, gen, xlabel: str, ylabel: str, path: Path, log: bool = False, size=(6, 3)) -> None:
    """A reference and a generated curve over `x` (log y axis if `log`) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    plot = ax.semilogy if log else ax.plot
    plot(x, ref, label="reference")
    plot(x, gen, label="generated")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
